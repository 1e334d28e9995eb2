import Runtime

/// An RPC program served on the RPC port (NFS, MOUNT, portmap). A base class, so dispatch is a
/// vtable call rather than an existential. One instance serves every loop: implementations
/// keep no per-loop state, or guard what they share.
open class RPCProgram: @unchecked Sendable {
    public let number: UInt32
    public let versions: ClosedRange<UInt32>
    public let name: String

    /// Procedure names indexed by number, for the per-operation statistics.
    public let procedureNames: [String]

    public init(number: UInt32, versions: ClosedRange<UInt32>, name: String, procedureNames: [String] = ["NULL"]) {
        self.number = number
        self.versions = versions
        self.name = name
        self.procedureNames = procedureNames
    }

    /// Whether a call changes state so that executing it twice differs from once; such calls
    /// replies go to the duplicate-request cache.
    open func isNonIdempotent(_ procedure: UInt32, version: UInt32) -> Bool { false }

    /// Whether `procedure` exists in `version` (PROC_UNAVAIL otherwise).
    open func hasProcedure(_ procedure: UInt32, version: UInt32) -> Bool { procedure == 0 }

    /// Serves one call on the loop that received it. `arguments` views the call's bytes,
    /// valid until this returns; the implementation answers through `context`.
    open func serve(_ call: RPCCall, arguments: XDRDecoder, context: RPCContext) async {
        context.reply(capacity: 0) { _ in }
    }
}

/// What a program needs to answer one call: the connection, the caller and the xid.
/// Used only on the connection's loop thread (calls run as tasks on that loop), hence the
/// unchecked conformance.
public struct RPCContext: @unchecked Sendable {
    public let connection: Connection
    public let call: RPCCall
    /// Where to keep this call's reply, for non-idempotent calls.
    let cache: (DuplicateRequestCache, DuplicateRequestCache.Key)?
    /// The program's counters on this loop, and when the call arrived.
    let stats: ProtocolStats?
    let started: UInt64

    init(connection: Connection, call: RPCCall, cache: (DuplicateRequestCache, DuplicateRequestCache.Key)? = nil, stats: ProtocolStats? = nil) {
        self.connection = connection
        self.call = call
        self.cache = cache
        self.stats = stats
        started = stats == nil ? 0 : monotonicNanoseconds()
    }

    @inline(__always)
    private func record(bytes: Int, error: Bool) {
        stats?.record(Int(call.procedure), nanoseconds: monotonicNanoseconds() &- started, bytes: bytes, error: error)
    }
    /// The client's address as "ip:port".
    public var peer: String { connection.peer }

    /// Space for the record mark and the accepted-reply header (xid, type, stat, verifier, stat).
    static let headerSize = 4 + 24

    /// Sends a successful RPC reply whose results `body` encodes (at most `capacity` bytes).
    /// `failed` marks a protocol-level error status (counted as an error), `bytes` the payload
    /// moved (for throughput).
    public func reply(capacity: Int, failed: Bool = false, bytes: Int = 0, _ body: (inout XDREncoder) -> Void) {
        defer { record(bytes: bytes, error: failed) }
        connection.write(capacity: Self.headerSize + capacity) { buffer in
            var encoder = XDREncoder(buffer)
            let mark = encoder.reserveUInt32()
            RPCContext.acceptedHeader(&encoder, xid: call.xid, status: .success)
            body(&encoder)
            encoder.patch(0x8000_0000 | UInt32(encoder.offset - 4), at: mark)
            if let (cache, key) = cache {
                cache.finish(key, reply: Array(UnsafeRawBufferPointer(rebasing: buffer[0..<encoder.offset])))
            }
            return encoder.offset
        }
    }

    /// Sends a successful reply whose results end with an XDR opaque sent by reference (zero
    /// copy): `header` encodes everything up to and including the opaque's length word, `data`
    /// (totalling `dataCount` bytes) follows as gathered iovecs, then the XDR padding.
    public func reply(capacity: Int, header: (inout XDREncoder) -> Void, data: [(UnsafeRawBufferPointer, AnyObject)], dataCount: Int) {
        defer { record(bytes: dataCount, error: false) }
        let padding = (4 - dataCount % 4) % 4
        connection.write(capacity: Self.headerSize + capacity) { buffer in
            var encoder = XDREncoder(buffer)
            let mark = encoder.reserveUInt32()
            RPCContext.acceptedHeader(&encoder, xid: call.xid, status: .success)
            header(&encoder)
            encoder.patch(0x8000_0000 | UInt32(encoder.offset - 4 + dataCount + padding), at: mark)
            return encoder.offset
        }
        for (bytes, owner) in data { connection.send(bytes, keepingAlive: owner) }
        if padding > 0 {
            let zeros: UInt32 = 0
            withUnsafeBytes(of: zeros) { connection.write(UnsafeRawBufferPointer(rebasing: $0[0..<padding])) }
        }
    }

    /// An accepted reply with an error status (PROG_UNAVAIL, PROC_UNAVAIL, GARBAGE_ARGS, ...).
    public func fail(_ status: RPC.AcceptStatus, low: UInt32 = 0, high: UInt32 = 0) {
        record(bytes: 0, error: true)
        RPCContext.writeAccepted(connection, xid: call.xid, status: status, low: low, high: high)
        // Errors are not worth replaying, but the call must not stay "in progress" forever.
        if let (cache, key) = cache { cache.finish(key, reply: []) }
    }

    static func acceptedHeader(_ encoder: inout XDREncoder, xid: UInt32, status: RPC.AcceptStatus) {
        encoder.uint32(xid)
        encoder.uint32(RPC.MessageType.reply.rawValue)
        encoder.uint32(RPC.ReplyStatus.accepted.rawValue)
        encoder.uint32(RPC.AuthFlavor.none.rawValue)
        encoder.uint32(0)
        encoder.uint32(status.rawValue)
    }

    static func writeAccepted(_ connection: Connection, xid: UInt32, status: RPC.AcceptStatus, low: UInt32 = 0, high: UInt32 = 0) {
        connection.write(capacity: headerSize + 8) { buffer in
            var encoder = XDREncoder(buffer)
            let mark = encoder.reserveUInt32()
            acceptedHeader(&encoder, xid: xid, status: status)
            if status == .programMismatch {
                encoder.uint32(low)
                encoder.uint32(high)
            }
            encoder.patch(0x8000_0000 | UInt32(encoder.offset - 4), at: mark)
            return encoder.offset
        }
    }

    /// A denied reply: RPC_MISMATCH (with the supported range) or AUTH_ERROR (with its status).
    static func writeDenied(_ connection: Connection, xid: UInt32, auth: RPC.AuthStatus?) {
        connection.write(capacity: 4 + 24) { buffer in
            var encoder = XDREncoder(buffer)
            let mark = encoder.reserveUInt32()
            encoder.uint32(xid)
            encoder.uint32(RPC.MessageType.reply.rawValue)
            encoder.uint32(RPC.ReplyStatus.denied.rawValue)
            if let auth {
                encoder.uint32(RPC.RejectStatus.authError.rawValue)
                encoder.uint32(auth.rawValue)
            } else {
                encoder.uint32(RPC.RejectStatus.rpcMismatch.rawValue)
                encoder.uint32(RPC.version)
                encoder.uint32(RPC.version)
            }
            encoder.patch(0x8000_0000 | UInt32(encoder.offset - 4), at: mark)
            return encoder.offset
        }
    }
}
