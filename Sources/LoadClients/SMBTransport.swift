import Crypto
import Runtime

/// One SMB2 response: the NTSTATUS, and the message (64-byte header first) as a retained
/// slice of the receive buffer, released by `release()`.
struct SMBResponse: @unchecked Sendable {
    var status: UInt32
    var slice: ByteSlice?
    var firstByte: UInt64
    /// Set when the connection failed or the response could not be used.
    var failure: OpStatus?

    var bytes: UnsafeRawBufferPointer { slice!.unsafeBytes }
    func u8(_ at: Int) -> UInt8 { at < bytes.count ? bytes[at] : 0 }
    func u16(_ at: Int) -> UInt16 { at + 2 <= bytes.count ? UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self)) : 0 }
    func u32(_ at: Int) -> UInt32 { at + 4 <= bytes.count ? UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)) : 0 }
    func u64(_ at: Int) -> UInt64 { at + 8 <= bytes.count ? UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)) : 0 }
    /// A (offset, length) buffer of the message, bounds-checked.
    func buffer(offset: Int, length: Int) -> UnsafeRawBufferPointer? {
        guard offset >= 0, length >= 0, offset <= bytes.count, length <= bytes.count - offset else { return nil }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
    }

    /// What the operation reports: success, the NTSTATUS (as its signed 32-bit value), or
    /// the client's own failure.
    var opStatus: OpStatus { failure ?? (status == 0 ? .ok : OpStatus(Int32(bitPattern: status))) }

    func release() { slice?.release() }
}

/// Signs SMB2 messages (MS-SMB2 §3.1.4.1): HMAC-SHA-256 with the session key for 2.1,
/// AES-128-CMAC with the derived signing key for 3.x. Fed in pieces (a WRITE's header, then
/// its data by reference).
final class SMBClientSigner {
    private let hmac: HMACSHA256?
    private let cmac: AESCMAC?

    init(key: [UInt8], smb3: Bool) {
        if smb3 {
            cmac = AESCMAC(key: key)
            hmac = nil
        } else {
            hmac = HMACSHA256(key: key)
            cmac = nil
        }
    }

    /// Writes the signature of `message` followed by `data` (the signature field zero in
    /// the message) to `out`.
    func sign(_ message: UnsafeRawBufferPointer, _ data: UnsafeRawBufferPointer? = nil, into out: UnsafeMutableRawPointer) {
        if let cmac {
            cmac.start()
            cmac.update(message)
            if let data { cmac.update(data) }
            cmac.finish(into: out)
        } else {
            var full = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
            withUnsafeMutableBytes(of: &full) { raw in
                hmac!.start()
                hmac!.update(message)
                if let data { hmac!.update(data) }
                hmac!.finish(into: raw.baseAddress!)
                out.copyMemory(from: raw.baseAddress!, byteCount: 16)
            }
        }
    }
}

/// SMB2 over TCP (RFC 1002 session framing, MS-SMB2 §2.1): requests matched to responses by
/// message id, credits counted (§3.2.4.1.5; a request waits until it has enough), interim
/// STATUS_PENDING answers skipped, and, once a session has keys, signing or encryption of
/// requests and the checks of responses. Loop thread only.
final class SMBTransport: ConnectionHandler, @unchecked Sendable {
    private var pending: [UInt64: (continuation: UnsafeContinuation<SMBResponse, Never>, firstByte: UInt64)] = [:]
    private var creditWaiters: [(charge: Int, continuation: UnsafeContinuation<Void, Never>)] = []
    private(set) var connection: Connection?
    private var nextMessageID: UInt64 = 0
    private(set) var credits = 1
    /// Credits asked for beyond each request's charge until this many are held.
    var creditTarget = 64
    private var lost = false
    private(set) var closeError: Int32?

    var sessionID: UInt64 = 0
    var treeID: UInt32 = 0
    var signer: SMBClientSigner?
    /// Sign requests (when not encrypting); 3.1.1's TREE_CONNECT is signed regardless.
    var signing = false
    var signTreeConnect = false
    var encryptor: AEAD?
    var decryptor: AEAD?
    private var nonceCounter: UInt64 = 0
    private let noncePrefix = UInt32.random(in: 0...UInt32.max)
    /// 3.1.1's preauthentication hash, updated with each NEGOTIATE and SESSION_SETUP request
    /// sent while it is non-nil.
    var preauthHash: [UInt8]?

    func attach(_ connection: Connection) { self.connection = connection }
    var isLost: Bool { lost }

    static let headerSize = 64
    enum Command {
        static let negotiate: UInt16 = 0, sessionSetup: UInt16 = 1, treeConnect: UInt16 = 3, create: UInt16 = 5, close: UInt16 = 6
        static let flush: UInt16 = 7, read: UInt16 = 8, write: UInt16 = 9, lock: UInt16 = 10, queryDirectory: UInt16 = 14
        static let queryInfo: UInt16 = 16, setInfo: UInt16 = 17
    }
    static let statusPending: UInt32 = 0x0000_0103
    static let transformID: UInt32 = 0x424D_53FD

    /// Sends one request: `fill` writes the body (`bodySize` bytes) after the header; `payload`
    /// follows by reference (a WRITE's data). `charge` credits are spent (one per 64 KiB).
    func send(_ command: UInt16, charge: Int = 1, bodySize: Int, payload: UnsafeRawBufferPointer? = nil, owner: AnyObject? = nil,
              _ fill: (UnsafeMutableRawPointer) -> Void) async -> SMBResponse {
        while credits < charge && !lost {
            await withUnsafeContinuation { creditWaiters.append((charge, $0)) }
        }
        guard let connection, !lost, !connection.isClosing else {
            return SMBResponse(status: 0, slice: nil, firstByte: monotonicNanoseconds(), failure: .connectionLost)
        }
        let messageID = nextMessageID
        nextMessageID += UInt64(charge)
        credits -= charge
        let request = UInt16(charge + max(0, min(64, creditTarget - credits)))
        let payloadCount = payload?.count ?? 0
        let messageSize = Self.headerSize + bodySize + payloadCount
        let sign = signer != nil && encryptor == nil && (signing || (signTreeConnect && command == Command.treeConnect))
        return await withUnsafeContinuation { (continuation: UnsafeContinuation<SMBResponse, Never>) in
            pending[messageID] = (continuation, 0)
            func header(_ m: UnsafeMutableRawPointer) {
                m.storeBytes(of: UInt32(0x424D_53FE).littleEndian, as: UInt32.self)
                m.storeBytes(of: UInt16(64).littleEndian, toByteOffset: 4, as: UInt16.self)
                m.storeBytes(of: UInt16(charge).littleEndian, toByteOffset: 6, as: UInt16.self)
                m.storeBytes(of: UInt32(0), toByteOffset: 8, as: UInt32.self)
                m.storeBytes(of: command.littleEndian, toByteOffset: 12, as: UInt16.self)
                m.storeBytes(of: request.littleEndian, toByteOffset: 14, as: UInt16.self)
                m.storeBytes(of: UInt32(sign ? 0x8 : 0).littleEndian, toByteOffset: 16, as: UInt32.self)
                m.storeBytes(of: UInt32(0), toByteOffset: 20, as: UInt32.self)
                m.storeBytes(of: messageID.littleEndian, toByteOffset: 24, as: UInt64.self)
                m.storeBytes(of: UInt32(0xFEFF).littleEndian, toByteOffset: 32, as: UInt32.self)
                m.storeBytes(of: (command == Command.negotiate || command == Command.sessionSetup ? 0 : treeID).littleEndian, toByteOffset: 36, as: UInt32.self)
                m.storeBytes(of: sessionID.littleEndian, toByteOffset: 40, as: UInt64.self)
                (m + 48).initializeMemory(as: UInt8.self, repeating: 0, count: 16)
                fill(m + 64)
            }
            if let encryptor {
                // The whole message, data included, sealed in a transform header (§3.1.4.3).
                let frame = 4 + 52 + messageSize
                connection.write(capacity: frame) { raw in
                    let base = raw.baseAddress!
                    Self.framing(base, length: frame - 4)
                    let message = base + 4 + 52
                    header(message)
                    if let payload, payloadCount > 0 { (message + 64 + bodySize).copyMemory(from: payload.baseAddress!, byteCount: payloadCount) }
                    seal(base + 4, encryptor: encryptor, size: messageSize)
                    return frame
                }
            } else {
                connection.write(capacity: 4 + 64 + bodySize) { raw in
                    let base = raw.baseAddress!
                    Self.framing(base, length: messageSize)
                    header(base + 4)
                    let head = UnsafeRawBufferPointer(start: base + 4, count: 64 + bodySize)
                    if sign { signer!.sign(head, payload, into: base + 4 + 48) }
                    if preauthHash != nil { updatePreauth(head) }
                    return 4 + 64 + bodySize
                }
                if let payload, payloadCount > 0 { connection.send(payload, keepingAlive: owner!) }
            }
        }
    }

    func updatePreauth(_ message: UnsafeRawBufferPointer) {
        let digest = Digest(.sha512)
        digest.update(preauthHash!)
        digest.update(message)
        preauthHash = digest.finish()
    }

    private static func framing(_ base: UnsafeMutableRawPointer, length: Int) {
        base.storeBytes(of: UInt32(length & 0xFF_FFFF).bigEndian, as: UInt32.self)
    }

    /// Writes the transform header for the `size`-byte message after it and encrypts the
    /// message in place.
    private func seal(_ out: UnsafeMutableRawPointer, encryptor: AEAD, size: Int) {
        out.storeBytes(of: Self.transformID.littleEndian, as: UInt32.self)
        (out + 4).initializeMemory(as: UInt8.self, repeating: 0, count: 32)
        nonceCounter &+= 1
        out.storeBytes(of: nonceCounter.littleEndian, toByteOffset: 20, as: UInt64.self)
        if encryptor.mode == .gcm {
            out.storeBytes(of: noncePrefix.littleEndian, toByteOffset: 28, as: UInt32.self)
        } else {
            out.storeBytes(of: UInt16(truncatingIfNeeded: noncePrefix).littleEndian, toByteOffset: 28, as: UInt16.self)
            out.storeBytes(of: UInt8(truncatingIfNeeded: noncePrefix >> 16), toByteOffset: 30, as: UInt8.self)
        }
        out.storeBytes(of: UInt32(size).littleEndian, toByteOffset: 36, as: UInt32.self)
        out.storeBytes(of: UInt16(1).littleEndian, toByteOffset: 42, as: UInt16.self)   // encrypted
        out.storeBytes(of: sessionID.littleEndian, toByteOffset: 44, as: UInt64.self)
        let nonce = UnsafeRawBufferPointer(start: out + 20, count: encryptor.mode.nonceLength)
        let aad = UnsafeRawBufferPointer(start: out + 20, count: 32)
        encryptor.seal(nonce: nonce, aad: aad, input: out + 52, output: out + 52, length: size, tag: out + 4)
    }

    override func received(_ bytes: ByteSlice, on connection: Connection) -> Int {
        let raw = bytes.unsafeBytes
        var offset = 0
        while raw.count - offset >= 4 {
            let length = Int(UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) & 0xFF_FFFF)
            guard raw.count - offset - 4 >= length else {
                // Partial frame: note when the response's first bytes came (plain messages
                // name their message id early; sealed ones only once decrypted).
                if raw.count - offset >= 4 + 32, UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)) == 0x424D_53FE {
                    let id = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4 + 24, as: UInt64.self))
                    if pending[id]?.firstByte == 0 { pending[id]!.firstByte = monotonicNanoseconds() }
                }
                connection.expect(bytes: 4 + length)
                break
            }
            frame(bytes.slice((offset + 4)..<(offset + 4 + length)), on: connection)
            offset += 4 + length
        }
        return offset
    }

    /// One transport frame: decrypted when it is a transform message, then each SMB2
    /// message in it (responses may come compounded).
    private func frame(_ frame: ByteSlice, on connection: Connection) {
        var message = frame
        let raw = UnsafeMutableRawBufferPointer(mutating: frame.unsafeBytes)
        if raw.count >= 4, UInt32(littleEndian: raw.loadUnaligned(as: UInt32.self)) == Self.transformID {
            guard raw.count > 52, let decryptor else { return fail(connection) }
            let size = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 36, as: UInt32.self)))
            let base = raw.baseAddress!
            guard size == raw.count - 52,
                  decryptor.open(nonce: UnsafeRawBufferPointer(start: base + 20, count: decryptor.mode.nonceLength),
                                 aad: UnsafeRawBufferPointer(start: base + 20, count: 32), input: base + 52, output: base + 52,
                                 length: size, tag: base + 4)
            else { return fail(connection) }
            message = frame.slice(52..<raw.count)
        }
        var start = 0
        let all = message.unsafeBytes
        // Anything that is not a whole SMB2 message would leave its request unanswered.
        guard all.count >= Self.headerSize, UInt32(littleEndian: all.loadUnaligned(as: UInt32.self)) == 0x424D_53FE else { return fail(connection) }
        while all.count - start >= Self.headerSize {
            let next = Int(UInt32(littleEndian: all.loadUnaligned(fromByteOffset: start + 20, as: UInt32.self)))
            let end = next == 0 ? all.count : start + next
            guard end <= all.count, next == 0 || next >= Self.headerSize else { return fail(connection) }
            deliver(message.slice(start..<end))
            if next == 0 { break }
            start = end
        }
        resumeCreditWaiters()
    }

    private func deliver(_ message: ByteSlice) {
        let raw = message.unsafeBytes
        let status = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        let granted = Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 14, as: UInt16.self)))
        let flags = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
        let messageID = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        credits += granted
        if status == Self.statusPending && flags & 0x2 != 0 { return }   // interim: the answer comes later
        guard let entry = pending.removeValue(forKey: messageID) else { return }
        let now = monotonicNanoseconds()
        var failure: OpStatus?
        // A signed response from a session with keys must carry the right signature.
        if flags & 0x8 != 0, let signer, encryptor == nil {
            let m = UnsafeMutableRawBufferPointer(mutating: raw)
            var received = (UInt64(0), UInt64(0)), computed = (UInt64(0), UInt64(0))
            withUnsafeMutableBytes(of: &received) { $0.baseAddress!.copyMemory(from: m.baseAddress! + 48, byteCount: 16) }
            (m.baseAddress! + 48).initializeMemory(as: UInt8.self, repeating: 0, count: 16)
            withUnsafeMutableBytes(of: &computed) { signer.sign(raw, into: $0.baseAddress!) }
            if (received.0 ^ computed.0) | (received.1 ^ computed.1) != 0 { failure = .badSignature }
        }
        message.retain()
        entry.continuation.resume(returning: SMBResponse(status: status, slice: message, firstByte: entry.firstByte == 0 ? now : entry.firstByte, failure: failure))
    }

    private func resumeCreditWaiters() {
        while let first = creditWaiters.first, first.charge <= credits || lost {
            creditWaiters.removeFirst()
            first.continuation.resume()
        }
    }

    private func fail(_ connection: Connection) {
        connection.close()
    }

    override func closed(_ connection: Connection, error: Int32) {
        lost = true
        closeError = error
        let waiting = pending
        pending.removeAll()
        let now = monotonicNanoseconds()
        for (_, entry) in waiting {
            entry.continuation.resume(returning: SMBResponse(status: 0, slice: nil, firstByte: now, failure: .connectionLost))
        }
        resumeCreditWaiters()
    }
}
