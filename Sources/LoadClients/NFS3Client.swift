import ONCRPC
import Runtime

/// An NFSv3 client connection (RFC 1813) with MOUNT on the same port: many calls in flight,
/// file handles cached by path the way a kernel client's dentry cache keeps them.
public final class NFS3Client: FileLoadClient, @unchecked Sendable {
    static let nfsProgram: UInt32 = 100003
    static let mountProgram: UInt32 = 100005
    enum Proc: UInt32 {
        case getattr = 1, setattr = 2, lookup = 3, read = 6, write = 7, create = 8, mkdir = 9, remove = 12, rmdir = 13, rename = 14, readdir = 16, commit = 21
    }

    private let rpc: RPCClientHandler
    private let payload: PayloadBuffer
    /// Handles by path relative to the export ("" = the export root).
    private var handles: [String: [UInt8]] = [:]
    public let target: Target

    /// Connects on `loop` (its thread) and mounts the export. Call from a task on `loop`.
    public static func connect(_ target: Target, loop: EventLoop, payload: PayloadBuffer) async throws(LoadClientError) -> NFS3Client {
        let rpc = RPCClientHandler()
        rpc.attach(try LoadClients.connect(target, loop: loop, handler: rpc))
        let client = NFS3Client(loop: loop, rpc: rpc, payload: payload, target: target)
        try await client.mount()
        return client
    }

    private init(loop: EventLoop, rpc: RPCClientHandler, payload: PayloadBuffer, target: Target) {
        self.rpc = rpc
        self.payload = payload
        self.target = target
        super.init(loop: loop)
    }

    private func mount() async throws(LoadClientError) {
        // MOUNT on its own port (nfs-ganesha, knfsd) goes over a short-lived second connection.
        var mountRPC = rpc
        if let mountPort = target.mountPort, mountPort != target.port {
            let separate = RPCClientHandler()
            separate.attach(try LoadClients.connect(target, port: mountPort, what: "MOUNT port: ", loop: loop, handler: separate))
            mountRPC = separate
        }
        defer { if mountRPC !== rpc { mountRPC.connection?.close() } }
        let reply = await mountRPC.call(program: Self.mountProgram, version: 3, procedure: 1, capacity: XDREncoder.opaqueSize(target.root.utf8.count)) { e in
            e.string(target.root)
        }
        defer { reply.release() }
        guard reply.status.isOK else { throw LoadClientError("\(target): MOUNT failed (\(reply.status.code))") }
        var d = reply.decoder()
        guard let status = try? d.uint32() else { throw LoadClientError("\(target): bad MOUNT reply") }
        guard status == 0 else { throw LoadClientError("\(target): MOUNT refused the export (mountstat3 \(status))") }
        guard let fh = try? d.opaque(maximum: 64) else { throw LoadClientError("\(target): bad MOUNT reply") }
        handles[""] = Array(fh)
    }

    public override func close() { rpc.connection?.close() }
    public override var closeError: Int32? { rpc.closeError }

    // MARK: Operations

    /// The handle of `path`, from the cache or by LOOKUPs from the nearest cached ancestor.
    private func handle(_ path: String) async -> (fh: [UInt8]?, status: OpStatus) {
        if let fh = handles[path] { return (fh, .ok) }
        let (parent, name) = splitPath(path)
        let (parentFH, status) = await handle(parent)
        guard let parentFH else { return (nil, status) }
        let (fh, lookupStatus, _) = await lookup(parentFH, name)
        if let fh { handles[path] = fh }
        return (fh, lookupStatus)
    }

    private func lookup(_ dir: [UInt8], _ name: String) async -> ([UInt8]?, OpStatus, UInt64) {
        let reply = await rpc.call(program: Self.nfsProgram, version: 3, procedure: Proc.lookup.rawValue,
                                   capacity: 72 + XDREncoder.opaqueSize(name.utf8.count)) { e in
            e.opaque(dir)
            e.string(name)
        }
        defer { reply.release() }
        guard reply.status.isOK else { return (nil, reply.status, reply.firstByte) }
        var d = reply.decoder()
        guard let status = try? d.uint32() else { return (nil, .badReply, reply.firstByte) }
        guard status == 0 else { return (nil, OpStatus(Int32(status)), reply.firstByte) }
        guard let fh = try? d.opaque(maximum: 64) else { return (nil, .badReply, reply.firstByte) }
        return (Array(fh), .ok, reply.firstByte)
    }

    /// A LOOKUP on the wire every time (the parent handle may come from the cache).
    override func lookup(_ operation: Operation) async -> Outcome {
        let path = operation.path
        let (parent, name) = splitPath(path)
        let (dir, status) = await handle(parent)
        guard let dir else { return (status, 0, monotonicNanoseconds()) }
        let (fh, lookupStatus, first) = await lookup(dir, name)
        if let fh { handles[path] = fh }
        return (lookupStatus, 0, first)
    }

    /// Sends a call on `path`'s handle and returns its NFS status.
    private func simple(_ path: String, _ proc: Proc, extra: Int = 0, _ encode: (inout XDREncoder) -> Void = { _ in },
                        decode: (inout XDRDecoder) throws(XDRError) -> Int = { _ throws(XDRError) in 0 }) async -> (OpStatus, Int, UInt64) {
        let (fh, status) = await handle(path)
        guard let fh else { return (status, 0, monotonicNanoseconds()) }
        let reply = await rpc.call(program: Self.nfsProgram, version: 3, procedure: proc.rawValue, capacity: 72 + extra) { e in
            e.opaque(fh)
            encode(&e)
        }
        defer { reply.release() }
        guard reply.status.isOK else { return (reply.status, 0, reply.firstByte) }
        var d = reply.decoder()
        guard let nfsStatus = try? d.uint32() else { return (.badReply, 0, reply.firstByte) }
        guard nfsStatus == 0 else {
            if nfsStatus == 70 { handles[path] = nil }  // NFS3ERR_STALE: look it up again next time
            return (OpStatus(Int32(nfsStatus)), 0, reply.firstByte)
        }
        guard let bytes = try? decode(&d) else { return (.badReply, 0, reply.firstByte) }
        return (.ok, bytes, reply.firstByte)
    }

    override func stat(_ operation: Operation) async -> Outcome {
        let path = operation.path
        return await simple(path, .getattr)
    }

    override func read(_ op: Operation) async -> Outcome {
        await simple(op.path, .read, extra: 12, { e in
            e.uint64(op.offset)
            e.uint32(UInt32(op.length))
        }, decode: { d throws(XDRError) in
            try Self.skipPostOp(&d)
            let count = Int(try d.uint32())
            _ = try d.bool()                              // eof
            return try d.opaque(maximum: Int(Int32.max)).count == count ? count : 0
        })
    }

    override func write(_ op: Operation) async -> Outcome {
        let (fh, status) = await handle(op.path)
        guard let fh else { return (status, 0, monotonicNanoseconds()) }
        let data = payload.prefix(op.length)
        let reply = await rpc.call(program: Self.nfsProgram, version: 3, procedure: Proc.write.rawValue, capacity: 96,
                                   payload: data, owner: payload) { e in
            e.opaque(fh)
            e.uint64(op.offset)
            e.uint32(UInt32(data.count))
            e.uint32(op.stable ? 2 : 0)                   // FILE_SYNC or UNSTABLE
            e.uint32(UInt32(data.count))                   // the data follows by reference
        }
        defer { reply.release() }
        guard reply.status.isOK else { return (reply.status, 0, reply.firstByte) }
        var d = reply.decoder()
        guard let nfsStatus = try? d.uint32() else { return (.badReply, 0, reply.firstByte) }
        guard nfsStatus == 0 else { return (OpStatus(Int32(nfsStatus)), 0, reply.firstByte) }
        guard (try? Self.skipWcc(&d)) != nil, let count = try? d.uint32() else { return (.badReply, 0, reply.firstByte) }
        return (.ok, Int(count), reply.firstByte)
    }

    override func create(_ operation: Operation) async -> Outcome { await create(operation, directory: false) }
    override func mkdir(_ operation: Operation) async -> Outcome { await create(operation, directory: true) }
    override func remove(_ operation: Operation) async -> Outcome { await remove(operation.path, directory: false) }
    override func rmdir(_ operation: Operation) async -> Outcome { await remove(operation.path, directory: true) }

    /// CREATE (UNCHECKED, truncating) or MKDIR; a file with a length also gets WRITE + COMMIT.
    private func create(_ op: Operation, directory: Bool) async -> (OpStatus, Int, UInt64) {
        let (parent, name) = splitPath(op.path)
        let (dir, status) = await handle(parent)
        guard let dir else { return (status, 0, monotonicNanoseconds()) }
        let reply = await rpc.call(program: Self.nfsProgram, version: 3, procedure: (directory ? Proc.mkdir : Proc.create).rawValue,
                                   capacity: 120 + XDREncoder.opaqueSize(name.utf8.count)) { e in
            e.opaque(dir)
            e.string(name)
            if !directory { e.uint32(0) }                 // createhow3: UNCHECKED
            e.bool(true); e.uint32(directory ? 0o755 : 0o644)  // sattr3: mode
            e.bool(false); e.bool(false)                  // uid, gid
            if directory { e.bool(false) } else { e.bool(true); e.uint64(0) }  // size (truncate files)
            e.uint32(0); e.uint32(0)                      // atime, mtime: don't change
        }
        defer { reply.release() }
        guard reply.status.isOK else { return (reply.status, 0, reply.firstByte) }
        var d = reply.decoder()
        guard let nfsStatus = try? d.uint32() else { return (.badReply, 0, reply.firstByte) }
        guard nfsStatus == 0 else { return (OpStatus(Int32(nfsStatus)), 0, reply.firstByte) }
        if (try? d.bool()) == true, let fh = try? d.opaque(maximum: 64) { handles[op.path] = Array(fh) }
        guard !directory, op.length > 0 else { return (.ok, 0, reply.firstByte) }
        // With a length: WRITE (UNSTABLE) and COMMIT, what a client's write and close send.
        let (writeStatus, written, _) = await write(Operation(kind: .write, path: op.path, length: op.length))
        guard writeStatus.isOK else { return (writeStatus, 0, reply.firstByte) }
        let (commitStatus, _, _) = await commit(op)
        return (commitStatus, commitStatus.isOK ? written : 0, reply.firstByte)
    }

    private func remove(_ path: String, directory: Bool) async -> (OpStatus, Int, UInt64) {
        let (parent, name) = splitPath(path)
        let (dir, status) = await handle(parent)
        guard let dir else { return (status, 0, monotonicNanoseconds()) }
        let reply = await rpc.call(program: Self.nfsProgram, version: 3, procedure: (directory ? Proc.rmdir : Proc.remove).rawValue,
                                   capacity: 72 + XDREncoder.opaqueSize(name.utf8.count)) { e in
            e.opaque(dir)
            e.string(name)
        }
        defer { reply.release() }
        handles[path] = nil
        guard reply.status.isOK else { return (reply.status, 0, reply.firstByte) }
        var d = reply.decoder()
        guard let nfsStatus = try? d.uint32() else { return (.badReply, 0, reply.firstByte) }
        return (OpStatus(Int32(nfsStatus)), 0, reply.firstByte)
    }

    /// One READDIR call of up to 8 KiB of entries (what a listing's first page costs).
    override func readdir(_ operation: Operation) async -> Outcome {
        let path = operation.path
        return await simple(path, .readdir, extra: 20, { e in
            e.uint64(0)                                   // cookie
            e.uint64(0)                                   // cookie verifier
            e.uint32(8192)
        }, decode: { d throws(XDRError) in
            try Self.skipPostOp(&d)
            try d.skip(8)
            var entries = 0
            while try d.bool() {
                _ = try d.uint64()
                _ = try d.opaque(maximum: 255)
                _ = try d.uint64()
                entries += 1
            }
            return 0
        })
    }

    override func commit(_ operation: Operation) async -> Outcome {
        let path = operation.path
        return await simple(path, .commit, extra: 12) { e in
            e.uint64(0)
            e.uint32(0)
        }
    }

    /// RENAME (RFC 1813 §3.3.14) from one directory entry to another.
    override func rename(_ operation: Operation) async -> Outcome {
        let path = operation.path, newPath = operation.newPath
        let (fromParent, fromName) = splitPath(path)
        let (toParent, toName) = splitPath(newPath)
        let (fromDir, fromStatus) = await handle(fromParent)
        guard let fromDir else { return (fromStatus, 0, monotonicNanoseconds()) }
        let (toDir, toStatus) = await handle(toParent)
        guard let toDir else { return (toStatus, 0, monotonicNanoseconds()) }
        let reply = await rpc.call(program: Self.nfsProgram, version: 3, procedure: Proc.rename.rawValue,
                                   capacity: 144 + XDREncoder.opaqueSize(fromName.utf8.count) + XDREncoder.opaqueSize(toName.utf8.count)) { e in
            e.opaque(fromDir)
            e.string(fromName)
            e.opaque(toDir)
            e.string(toName)
        }
        defer { reply.release() }
        handles[path] = nil
        handles[newPath] = nil
        guard reply.status.isOK else { return (reply.status, 0, reply.firstByte) }
        var d = reply.decoder()
        guard let nfsStatus = try? d.uint32() else { return (.badReply, 0, reply.firstByte) }
        return (OpStatus(Int32(nfsStatus)), 0, reply.firstByte)
    }

    /// SETATTR (RFC 1813 §3.3.2): the size when given, else mode 0644 and the modification
    /// time set to the server's clock.
    override func setattr(_ operation: Operation) async -> Outcome {
        let path = operation.path
        let size: UInt64? = operation.length > 0 ? UInt64(operation.length) : nil
        return await simple(path, .setattr, extra: 48) { e in
            if let size {
                e.bool(false); e.bool(false); e.bool(false)   // mode, uid, gid
                e.bool(true); e.uint64(size)
                e.uint32(0); e.uint32(0)                      // atime, mtime: don't change
            } else {
                e.bool(true); e.uint32(0o644)                 // mode
                e.bool(false); e.bool(false); e.bool(false)   // uid, gid, size
                e.uint32(0)                                   // atime: don't change
                e.uint32(1)                                   // mtime: SET_TO_SERVER_TIME
            }
            e.bool(false)                                     // no guard
        }
    }

    static func skipPostOp(_ d: inout XDRDecoder) throws(XDRError) {
        if try d.bool() { try d.skip(84) }
    }

    static func skipWcc(_ d: inout XDRDecoder) throws(XDRError) {
        if try d.bool() { try d.skip(24) }
        try skipPostOp(&d)
    }
}
