import Glibc
import ONCRPC
import Runtime

/// A decoded RPC reply: the accepted body as a retained slice of the receive buffer (released
/// by `release()` once decoded), or a failure.
struct RPCReply: @unchecked Sendable {
    var status: OpStatus
    var slice: ByteSlice?
    var bodyStart: Int
    var firstByte: UInt64

    /// A decoder over the procedure's result (after the RPC reply header).
    func decoder() -> XDRDecoder {
        let bytes = slice!.unsafeBytes
        return XDRDecoder(UnsafeRawBufferPointer(rebasing: bytes[bodyStart...]))
    }

    func release() { slice?.release() }
}

/// ONC RPC over TCP (record marking), many calls in flight on one connection: calls are
/// matched to replies by xid. Loop thread only.
final class RPCClientHandler: ConnectionHandler, @unchecked Sendable {
    private struct Pending {
        var continuation: UnsafeContinuation<RPCReply, Never>
        var firstByte: UInt64
    }
    private var pending: [UInt32: Pending] = [:]
    private var nextXID: UInt32
    private(set) var connection: Connection?
    /// AUTH_SYS credential body, encoded once.
    private let credential: [UInt8]
    private var lost = false

    init(uid: UInt32 = 0, gid: UInt32 = 0) {
        nextXID = UInt32(truncatingIfNeeded: monotonicNanoseconds() &* 2_654_435_761)
        var body = [UInt8](repeating: 0, count: 64)
        let length = body.withUnsafeMutableBytes { raw -> Int in
            var e = XDREncoder(raw)
            e.uint32(0)              // stamp
            e.string("dmanoel-load") // machine name
            e.uint32(uid)
            e.uint32(gid)
            e.uint32(0)              // no supplementary groups
            return e.offset
        }
        credential = Array(body[0..<length])
    }

    func attach(_ connection: Connection) { self.connection = connection }

    /// Sends a call whose arguments `encode` writes (at most `capacity` bytes), followed by
    /// `payload` sent by reference (WRITE data, padded to 4 bytes), and waits for the reply.
    func call(program: UInt32, version: UInt32, procedure: UInt32, capacity: Int,
              payload: UnsafeRawBufferPointer? = nil, owner: AnyObject? = nil,
              _ encode: (inout XDREncoder) -> Void) async -> RPCReply {
        guard let connection, !lost, !connection.isClosing else {
            return RPCReply(status: .connectionLost, slice: nil, bodyStart: 0, firstByte: monotonicNanoseconds())
        }
        nextXID &+= 1
        let xid = nextXID
        let payloadCount = payload?.count ?? 0
        let padding = (4 - payloadCount % 4) % 4
        return await withUnsafeContinuation { (continuation: UnsafeContinuation<RPCReply, Never>) in
            pending[xid] = Pending(continuation: continuation, firstByte: 0)
            connection.write(capacity: 64 + credential.count + capacity) { raw in
                var e = XDREncoder(raw)
                let marker = e.reserveUInt32()
                e.uint32(xid)
                e.uint32(0)          // CALL
                e.uint32(2)          // RPC version
                e.uint32(program)
                e.uint32(version)
                e.uint32(procedure)
                e.uint32(1)          // AUTH_SYS
                credential.withUnsafeBytes { e.opaque($0) }
                e.uint32(0)          // verifier AUTH_NONE
                e.uint32(0)
                encode(&e)
                e.patch(0x8000_0000 | UInt32(e.offset - 4 + payloadCount + padding), at: marker)
                return e.offset
            }
            if let payload, payloadCount > 0 {
                connection.send(payload, keepingAlive: owner!)
                if padding > 0 {
                    connection.write(capacity: padding) { raw in
                        for i in 0..<padding { raw[i] = 0 }
                        return padding
                    }
                }
            }
        }
    }

    override func received(_ bytes: ByteSlice, on connection: Connection) -> Int {
        let raw = bytes.unsafeBytes
        var offset = 0
        while raw.count - offset >= 4 {
            let marker = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            let length = Int(marker & 0x7FFF_FFFF)
            guard raw.count - offset - 4 >= length else {
                // Partial record: note when its first bytes came, and ask for room for all of it.
                if raw.count - offset >= 8 {
                    let xid = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
                    if pending[xid]?.firstByte == 0 { pending[xid]!.firstByte = monotonicNanoseconds() }
                }
                connection.expect(bytes: length + 4)
                break
            }
            deliver(bytes.slice((offset + 4)..<(offset + 4 + length)))
            offset += 4 + length
        }
        return offset
    }

    /// Decodes one reply record (single fragment: what servers send) and resumes its caller.
    private func deliver(_ record: ByteSlice) {
        var d = XDRDecoder(record.unsafeBytes)
        guard let xid = try? d.uint32(), let entry = pending.removeValue(forKey: xid) else { return }
        let now = monotonicNanoseconds()
        let first = entry.firstByte == 0 ? now : entry.firstByte
        func header() throws(XDRError) -> OpStatus {
            guard try d.uint32() == 1 else { throw XDRError() }                // REPLY
            guard try d.uint32() == 0 else { return .rpcError }                // MSG_ACCEPTED
            _ = try d.uint32()                                                  // verifier flavor
            _ = try d.opaque(maximum: 400)
            return try d.uint32() == 0 ? .ok : .rpcError                       // SUCCESS
        }
        let status = (try? header()) ?? .badReply
        if status.isOK {
            record.retain()
            entry.continuation.resume(returning: RPCReply(status: .ok, slice: record, bodyStart: d.offset, firstByte: first))
        } else {
            entry.continuation.resume(returning: RPCReply(status: status, slice: nil, bodyStart: 0, firstByte: first))
        }
    }

    private(set) var closeError: Int32?

    override func closed(_ connection: Connection, error: Int32) {
        lost = true
        closeError = error
        let waiting = pending
        pending.removeAll()
        let now = monotonicNanoseconds()
        for (_, entry) in waiting {
            entry.continuation.resume(returning: RPCReply(status: .connectionLost, slice: nil, bodyStart: 0, firstByte: now))
        }
    }

    var isLost: Bool { lost }
}
