import Glibc
import ONCRPC
import Runtime
import Synchronization

/// An NFSv4.1 client connection (RFC 8881): its own client ID and session, a slot table as
/// deep as the operations it keeps in flight, every COMPOUND led by SEQUENCE. File handles are
/// cached by path and files stay open once opened (one open-owner per connection), the way an
/// application holding files open through a kernel client behaves.
public final class NFS4Client: FileLoadClient, @unchecked Sendable {
    private let rpc: RPCClientHandler
    private let payload: PayloadBuffer
    public let target: Target
    private var clientid: UInt64 = 0
    private var sessionID = [UInt8](repeating: 0, count: 16)
    private var slots: NFS4SlotTable
    /// Handles by path relative to the export root ("" = the root).
    private var handles: [String: [UInt8]] = [:]
    /// Open stateids by path, opened for read and write (seqid 0: "the current one").
    private var opens: [String: NFS4Stateid] = [:]
    private let openOwner: [UInt8]
    private var lockOwnerSerial: UInt64 = 0

    /// Connects on `loop`, creates a client ID and a session with `depth` slots (the server may
    /// grant fewer; operations beyond them wait for a slot), and looks up the export path.
    public static func connect(_ target: Target, loop: EventLoop, payload: PayloadBuffer, depth: Int) async throws(LoadClientError) -> NFS4Client {
        let rpc = RPCClientHandler()
        rpc.attach(try LoadClients.connect(target, loop: loop, handler: rpc))
        let client = NFS4Client(loop: loop, rpc: rpc, payload: payload, target: target)
        try await client.establish(depth: max(depth, 1))
        return client
    }

    private init(loop: EventLoop, rpc: RPCClientHandler, payload: PayloadBuffer, target: Target) {
        self.rpc = rpc
        self.payload = payload
        self.target = target
        slots = NFS4SlotTable(count: 1)
        let serial = Self.connectionSerial.add(1, ordering: .relaxed).newValue
        openOwner = Array("dmanoel-load-\(getpid())-\(serial)".utf8)
        super.init(loop: loop)
    }

    /// Numbers connections (their client owner and open-owner), whichever loop opens them.
    private static let connectionSerial = Atomic<Int>(0)

    public override func close() { rpc.connection?.close() }

    public override func closeFiles() async {
        for path in Array(opens.keys) { _ = await closeFile(path) }
    }
    public override var closeError: Int32? { rpc.closeError }

    // MARK: Setup

    private func establish(depth: Int) async throws(LoadClientError) {
        func fail(_ what: String, _ status: OpStatus) -> LoadClientError {
            LoadClientError("\(target): \(what) failed (\(status.code == OpStatus.connectionLost.code ? "connection lost" : "status \(status.code)"))")
        }
        // EXCHANGE_ID (§18.35), outside any session.
        var verifier = monotonicNanoseconds() ^ UInt64(getpid()) << 40
        let ownerID = openOwner
        var reply = await rpc.call(program: NFS4Wire.program, version: 4, procedure: 1, capacity: 128 + ownerID.count) { e in
            NFS4Wire.compoundHeader(&e, operations: 1)
            e.uint32(NFS4Wire.Op.exchangeID)
            withUnsafeBytes(of: &verifier) { e.fixedOpaque($0) }
            e.opaque(ownerID)
            e.uint32(0x0001_0000)             // EXCHGID4_FLAG_USE_NON_PNFS
            e.uint32(0)                       // SP4_NONE
            e.uint32(0)                       // no implementation id
        }
        var sessionSequence: UInt32 = 0
        var result = Self.results(reply) { d throws(XDRError) in
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.exchangeID) == 0 else { return }
            clientid = try d.uint64()
            sessionSequence = try d.uint32()  // CREATE_SESSION's sequence (§18.36.3)
        }
        reply.release()
        guard result.isOK else { throw fail("EXCHANGE_ID", result) }

        // CREATE_SESSION (§18.36): no back channel; the fore channel as deep as asked.
        let sequence = sessionSequence
        var granted = depth
        reply = await rpc.call(program: NFS4Wire.program, version: 4, procedure: 1, capacity: 192) { e in
            NFS4Wire.compoundHeader(&e, operations: 1)
            e.uint32(NFS4Wire.Op.createSession)
            e.uint64(clientid)
            e.uint32(sequence)
            e.uint32(0)                       // flags: no persistence, no back channel
            NFS4Wire.channelAttributes(&e, maxRequest: 1_114_112 + 4096, maxResponse: 1_114_112 + 4096, cached: 4096, operations: 16, requests: depth)
            NFS4Wire.channelAttributes(&e, maxRequest: 4096, maxResponse: 4096, cached: 0, operations: 2, requests: 1)
            e.uint32(0x4000_0000)             // callback program
            e.uint32(1); e.uint32(0)          // callback security: AUTH_NONE
        }
        result = Self.results(reply) { d throws(XDRError) in
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.createSession) == 0 else { return }
            let id = try d.fixedOpaque(16)
            sessionID = Array(id)
            try d.skip(8)                     // sequenceid, flags
            try d.skip(20)                    // fore: headerpad .. maxoperations
            granted = Int(try d.uint32())
        }
        reply.release()
        guard result.isOK else { throw fail("CREATE_SESSION", result) }
        slots = NFS4SlotTable(count: min(max(granted, 1), depth))

        // RECLAIM_COMPLETE (§18.51): nothing to reclaim.
        let status = await compound(capacity: 8, operations: 1, { e in
            e.uint32(NFS4Wire.Op.reclaimComplete)
            e.bool(false)
        }) { d throws(XDRError) in
            _ = try NFS4Wire.opStatus(&d, NFS4Wire.Op.reclaimComplete)
        }
        guard status.0.isOK else { throw fail("RECLAIM_COMPLETE", status.0) }

        // The export's handle: PUTROOTFH, LOOKUP each component, GETFH.
        let (root, rootStatus) = await walk(from: nil, target.root.split(separator: "/").map(String.init))
        guard let root else { throw fail("looking up \(target.root)", rootStatus) }
        handles[""] = root
    }

    // MARK: COMPOUND with SEQUENCE

    /// Sends SEQUENCE plus `operations` more ops that `encode` writes (at most `capacity`
    /// bytes), then `payload` by reference (a WRITE's data, so WRITE must be last), and runs
    /// `decode` on the results after SEQUENCE's. Returns the first failing op's status (the
    /// COMPOUND's) and the time of the reply's first byte.
    private func compound(capacity: Int, operations: Int, payload data: UnsafeRawBufferPointer? = nil,
                          _ encode: (inout XDREncoder) -> Void,
                          decode: (inout XDRDecoder) throws(XDRError) -> Void) async -> (OpStatus, UInt64) {
        let slot = await slots.acquire()
        defer { slots.release(slot) }
        let seqid = slots.seqids[slot]
        let highest = UInt32(slots.count - 1)
        let reply = await rpc.call(program: NFS4Wire.program, version: 4, procedure: 1, capacity: 96 + capacity,
                                   payload: data, owner: data == nil ? nil : payload) { e in
            NFS4Wire.compoundHeader(&e, operations: 1 + operations)
            e.uint32(NFS4Wire.Op.sequence)
            sessionID.withUnsafeBytes { e.fixedOpaque($0) }
            e.uint32(seqid)
            e.uint32(UInt32(slot))
            e.uint32(highest)
            e.bool(false)                     // cachethis
            encode(&e)
        }
        defer { reply.release() }
        let status = Self.results(reply) { d throws(XDRError) in
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.sequence) == 0 else { return }
            slots.seqids[slot] &+= 1
            try d.skip(16 + 20)               // sessionid, sequenceid .. status_flags
            try decode(&d)
        }
        return (status, reply.firstByte)
    }

    /// The COMPOUND status of `reply` after `decode` has walked its results.
    private static func results(_ reply: RPCReply, _ decode: (inout XDRDecoder) throws(XDRError) -> Void) -> OpStatus {
        guard reply.status.isOK else { return reply.status }
        var d = reply.decoder()
        do throws(XDRError) {
            let status = try d.uint32()
            _ = try d.opaque(maximum: 1024)   // tag
            _ = try d.uint32()                // result count
            try decode(&d)
            return OpStatus(Int32(bitPattern: status))
        } catch {
            return .badReply
        }
    }

    // MARK: Operations

    /// The handle of `path`, from the cache or by one COMPOUND of LOOKUPs from the nearest
    /// cached ancestor.
    private func handle(_ path: String) async -> (fh: [UInt8]?, status: OpStatus) {
        if let fh = handles[path] { return (fh, .ok) }
        var ancestor = path
        var names: [String] = []
        while handles[ancestor] == nil {
            let (parent, name) = splitPath(ancestor)
            names.append(name)
            ancestor = parent
        }
        names.reverse()
        let (found, status) = await walk(from: handles[ancestor]!, names)
        if let found { handles[path] = found }
        return (found, status)
    }

    /// One COMPOUND from `start` (nil: the pseudo root) down `names` with LOOKUPs, then GETFH.
    private func walk(from start: [UInt8]?, _ names: [String]) async -> ([UInt8]?, OpStatus) {
        var found: [UInt8]?
        let first = start == nil ? NFS4Wire.Op.putrootfh : NFS4Wire.Op.putfh
        let (status, _) = await compound(capacity: 140 + names.reduce(0) { $0 + 12 + $1.utf8.count }, operations: 2 + names.count, { e in
            if let start { NFS4Wire.putfh(&e, start) } else { e.uint32(NFS4Wire.Op.putrootfh) }
            for name in names {
                e.uint32(NFS4Wire.Op.lookup)
                e.string(name)
            }
            e.uint32(NFS4Wire.Op.getfh)
        }) { d throws(XDRError) in
            guard try NFS4Wire.opStatus(&d, first) == 0 else { return }
            for _ in names { guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.lookup) == 0 else { return } }
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.getfh) == 0 else { return }
            found = Array(try d.opaque(maximum: NFS4Wire.maxHandle))
        }
        return (found, status)
    }

    /// Forgets what a failure says is no longer valid.
    private func forget(_ path: String, after status: OpStatus) {
        switch status.code {
        case NFS4Wire.stale, NFS4Wire.badHandle, NFS4Wire.fhExpired: handles[path] = nil; opens[path] = nil
        case NFS4Wire.badStateid, NFS4Wire.expired, NFS4Wire.oldStateid: opens[path] = nil
        default: break
        }
    }

    /// Sends PUTFH(`path`) + ops: the common shape of an operation on one object.
    private func onHandle(_ path: String, capacity: Int, operations: Int, payload data: UnsafeRawBufferPointer? = nil,
                          _ encode: (inout XDREncoder) -> Void,
                          decode: (inout XDRDecoder) throws(XDRError) -> Void) async -> (OpStatus, UInt64) {
        let (fh, status) = await handle(path)
        guard let fh else { return (status, monotonicNanoseconds()) }
        let result = await compound(capacity: 140 + capacity, operations: 1 + operations, payload: data, { e in
            NFS4Wire.putfh(&e, fh)
            encode(&e)
        }) { d throws(XDRError) in
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.putfh) == 0 else { return }
            try decode(&d)
        }
        forget(path, after: result.0)
        return result
    }

    /// The open stateid of `path`, opening it (read and write, no create) when not yet open.
    private func openStateid(_ path: String) async -> (NFS4Stateid?, OpStatus) {
        if let stateid = opens[path] { return (stateid, .ok) }
        let (status, _, stateid) = await open(path, create: false)
        return (stateid, status)
    }

    /// OPEN (§18.16) by name in the parent (CLAIM_NULL), then GETFH.
    private func open(_ path: String, create: Bool) async -> (OpStatus, UInt64, NFS4Stateid?) {
        let (parent, name) = splitPath(path)
        var stateid: NFS4Stateid?
        var fh: [UInt8]?
        let owner = openOwner
        let (status, first) = await onHandle(parent, capacity: 96 + owner.count + name.utf8.count, operations: 2, { e in
            e.uint32(NFS4Wire.Op.open)
            e.uint32(0)                       // seqid (unused in 4.1)
            e.uint32(3)                       // OPEN4_SHARE_ACCESS_BOTH
            e.uint32(0)                       // deny none
            e.uint64(clientid)
            e.opaque(owner)
            if create {
                e.uint32(1)                   // OPEN4_CREATE
                e.uint32(0)                   // UNCHECKED4
                NFS4Wire.attributes(&e, size: 0, mode: 0o644)
            } else {
                e.uint32(0)                   // OPEN4_NOCREATE
            }
            e.uint32(0)                       // CLAIM_NULL
            e.string(name)
            e.uint32(NFS4Wire.Op.getfh)
        }) { d throws(XDRError) in
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.open) == 0 else { return }
            let opened = try NFS4Stateid(&d)
            try d.skip(20 + 4)                // change_info4, rflags
            try NFS4Wire.skipBitmap(&d)       // attrset
            try NFS4Wire.skipDelegation(&d)
            stateid = opened
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.getfh) == 0 else { return }
            fh = Array(try d.opaque(maximum: NFS4Wire.maxHandle))
        }
        if let fh { handles[path] = fh }
        if var stateid {
            stateid.seqid = 0
            opens[path] = stateid
        }
        return (status, first, opens[path])
    }

    /// CLOSE (§18.2) of `path` when it is open.
    private func closeFile(_ path: String) async -> (OpStatus, UInt64) {
        guard let stateid = opens.removeValue(forKey: path) else { return (.ok, monotonicNanoseconds()) }
        return await onHandle(path, capacity: 24, operations: 1, { e in
            e.uint32(NFS4Wire.Op.close)
            e.uint32(0)
            stateid.encode(&e)
        }) { d throws(XDRError) in
            _ = try NFS4Wire.opStatus(&d, NFS4Wire.Op.close)
        }
    }

    override func read(_ op: Operation) async -> Outcome {
        let (stateid, openStatus) = await openStateid(op.path)
        guard let stateid else { return (openStatus, 0, monotonicNanoseconds()) }
        var count = 0
        let (status, first) = await onHandle(op.path, capacity: 36, operations: 1, { e in
            e.uint32(NFS4Wire.Op.read)
            stateid.encode(&e)
            e.uint64(op.offset)
            e.uint32(UInt32(op.length))
        }) { d throws(XDRError) in
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.read) == 0 else { return }
            _ = try d.bool()                  // eof
            count = try d.opaque(maximum: Int(Int32.max)).count
        }
        return (status, count, first)
    }

    override func write(_ op: Operation) async -> Outcome {
        let (stateid, openStatus) = await openStateid(op.path)
        guard let stateid else { return (openStatus, 0, monotonicNanoseconds()) }
        let data = payload.prefix(op.length)
        var count = 0
        let (status, first) = await onHandle(op.path, capacity: 40, operations: 1, payload: data, { e in
            e.uint32(NFS4Wire.Op.write)
            stateid.encode(&e)
            e.uint64(op.offset)
            e.uint32(op.stable ? 2 : 0)       // FILE_SYNC4 or UNSTABLE4
            e.uint32(UInt32(data.count))      // the data follows by reference
        }) { d throws(XDRError) in
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.write) == 0 else { return }
            count = Int(try d.uint32())
        }
        return (status, count, first)
    }

    /// OPEN with create (truncating, mode 0644); with a length, also WRITE that many bytes;
    /// then CLOSE: three COMPOUNDs, as a kernel client creating a small file sends them.
    override func create(_ op: Operation) async -> Outcome {
        _ = await closeFile(op.path)
        let (status, first, _) = await open(op.path, create: true)
        guard status.isOK else { return (status, 0, first) }
        var bytes = 0
        if op.length > 0 {
            let (writeStatus, written, _) = await write(Operation(kind: .write, path: op.path, length: op.length))
            guard writeStatus.isOK else { return (writeStatus, 0, first) }
            bytes = written
        }
        let (closeStatus, _) = await closeFile(op.path)
        return (closeStatus, bytes, first)
    }

    /// CREATE (§18.4) of a directory, mode 0755, then GETFH.
    override func mkdir(_ operation: Operation) async -> Outcome {
        let path = operation.path
        let (parent, name) = splitPath(path)
        var fh: [UInt8]?
        let (status, first) = await onHandle(parent, capacity: 48 + name.utf8.count, operations: 2, { e in
            e.uint32(NFS4Wire.Op.create)
            e.uint32(2)                       // NF4DIR
            e.string(name)
            NFS4Wire.attributes(&e, size: nil, mode: 0o755)
            e.uint32(NFS4Wire.Op.getfh)
        }) { d throws(XDRError) in
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.create) == 0 else { return }
            try d.skip(20)                    // change_info4
            try NFS4Wire.skipBitmap(&d)
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.getfh) == 0 else { return }
            fh = Array(try d.opaque(maximum: NFS4Wire.maxHandle))
        }
        if let fh { handles[path] = fh }
        return (status, 0, first)
    }

    override func rmdir(_ operation: Operation) async -> Outcome { await remove(operation) }

    /// CLOSE when open, then REMOVE (§18.25) by name (files and directories alike).
    override func remove(_ operation: Operation) async -> Outcome {
        let path = operation.path
        _ = await closeFile(path)
        let (parent, name) = splitPath(path)
        let (status, first) = await onHandle(parent, capacity: 12 + name.utf8.count, operations: 1, { e in
            e.uint32(NFS4Wire.Op.remove)
            e.string(name)
        }) { d throws(XDRError) in
            _ = try NFS4Wire.opStatus(&d, NFS4Wire.Op.remove)
        }
        dropCached(below: path)
        return (status, 0, first)
    }

    private func dropCached(below path: String) {
        handles[path] = nil
        opens[path] = nil
        let prefix = path + "/"
        for key in handles.keys where key.hasPrefix(prefix) { handles[key] = nil }
        for key in opens.keys where key.hasPrefix(prefix) { opens[key] = nil }
    }

    /// GETATTR (§18.7) of what `stat` asks for: type, change, size, fileid, mode, nlink,
    /// owner, group, space used and the times.
    override func stat(_ operation: Operation) async -> Outcome {
        let path = operation.path
        let (status, first) = await onHandle(path, capacity: 16, operations: 1, { e in
            e.uint32(NFS4Wire.Op.getattr)
            e.uint32(2)
            e.uint32(1 << 1 | 1 << 3 | 1 << 4 | 1 << 20)
            e.uint32(1 << 1 | 1 << 3 | 1 << 4 | 1 << 5 | 1 << 13 | 1 << 15 | 1 << 20 | 1 << 21)
        }) { d throws(XDRError) in
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.getattr) == 0 else { return }
            try NFS4Wire.skipBitmap(&d)
            _ = try d.opaque(maximum: 4096)
        }
        return (status, 0, first)
    }

    /// A LOOKUP on the wire every time (the parent handle may come from the cache).
    override func lookup(_ operation: Operation) async -> Outcome {
        let path = operation.path
        let (parent, name) = splitPath(path)
        var fh: [UInt8]?
        let (status, first) = await onHandle(parent, capacity: 16 + name.utf8.count, operations: 2, { e in
            e.uint32(NFS4Wire.Op.lookup)
            e.string(name)
            e.uint32(NFS4Wire.Op.getfh)
        }) { d throws(XDRError) in
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.lookup) == 0 else { return }
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.getfh) == 0 else { return }
            fh = Array(try d.opaque(maximum: NFS4Wire.maxHandle))
        }
        if let fh { handles[path] = fh }
        return (status, 0, first)
    }

    /// One READDIR (§18.23) of up to 8 KiB of entries with their type and fileid.
    override func readdir(_ operation: Operation) async -> Outcome {
        let path = operation.path
        let (status, first) = await onHandle(path, capacity: 40, operations: 1, { e in
            e.uint32(NFS4Wire.Op.readdir)
            e.uint64(0)                       // cookie
            e.uint64(0)                       // cookie verifier
            e.uint32(8192)                    // dircount
            e.uint32(8192)                    // maxcount
            e.uint32(1)
            e.uint32(1 << 1 | 1 << 20)        // type, fileid
        }) { d throws(XDRError) in
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.readdir) == 0 else { return }
            try d.skip(8)
            while try d.bool() {
                _ = try d.uint64()
                _ = try d.opaque(maximum: 1024)
                try NFS4Wire.skipBitmap(&d)
                _ = try d.opaque(maximum: 4096)
            }
            _ = try d.bool()                  // eof
        }
        return (status, 0, first)
    }

    override func commit(_ operation: Operation) async -> Outcome {
        let path = operation.path
        let result = await onHandle(path, capacity: 16, operations: 1, { e in
            e.uint32(NFS4Wire.Op.commit)
            e.uint64(0)
            e.uint32(0)
        }) { d throws(XDRError) in
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.commit) == 0 else { return }
            try d.skip(8)
        }
        return (result.0, 0, result.1)
    }

    /// SAVEFH(source dir), PUTFH(target dir), RENAME (§18.26).
    override func rename(_ operation: Operation) async -> Outcome {
        let path = operation.path, newPath = operation.newPath
        _ = await closeFile(path)
        let (fromParent, fromName) = splitPath(path)
        let (toParent, toName) = splitPath(newPath)
        let (toFH, toStatus) = await handle(toParent)
        guard let toFH else { return (toStatus, 0, monotonicNanoseconds()) }
        let result = await onHandle(fromParent, capacity: 160 + fromName.utf8.count + toName.utf8.count, operations: 3, { e in
            e.uint32(NFS4Wire.Op.savefh)
            NFS4Wire.putfh(&e, toFH)
            e.uint32(NFS4Wire.Op.rename)
            e.string(fromName)
            e.string(toName)
        }) { d throws(XDRError) in
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.savefh) == 0 else { return }
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.putfh) == 0 else { return }
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.rename) == 0 else { return }
            try d.skip(40)                    // two change_info4
        }
        dropCached(below: path)
        dropCached(below: newPath)
        return (result.0, 0, result.1)
    }

    /// SETATTR (§18.30): the size when given (under the file's open stateid), else mode 0644
    /// and the modification time set to the server's clock.
    override func setattr(_ operation: Operation) async -> Outcome {
        let path = operation.path
        let size: UInt64? = operation.length > 0 ? UInt64(operation.length) : nil
        var stateid = NFS4Stateid.anonymous
        if size != nil {
            let (opened, openStatus) = await openStateid(path)
            guard let opened else { return (openStatus, 0, monotonicNanoseconds()) }
            stateid = opened
        }
        let result = await onHandle(path, capacity: 48, operations: 1, { e in
            e.uint32(NFS4Wire.Op.setattr)
            stateid.encode(&e)
            e.uint32(2)
            if let size {
                e.uint32(1 << 4)              // size (4)
                e.uint32(0)
                e.uint32(8)
                e.uint64(size)
            } else {
                e.uint32(0)
                e.uint32(1 << 1 | 1 << 22)    // mode (33), time_modify_set (54)
                e.uint32(8)
                e.uint32(0o644)
                e.uint32(0)                   // SET_TO_SERVER_TIME4
            }
        }) { d throws(XDRError) in
            _ = try NFS4Wire.opStatus(&d, NFS4Wire.Op.setattr)
            try NFS4Wire.skipBitmap(&d)
        }
        return (result.0, 0, result.1)
    }

    /// LOCK (§18.10) a write lock on [offset, offset + length) under a new lock-owner, then
    /// LOCKU and FREE_STATEID: a lock taken and released, two round trips.
    override func lock(_ op: Operation) async -> Outcome {
        let (openStateid, openStatus) = await openStateid(op.path)
        guard let openStateid else { return (openStatus, 0, monotonicNanoseconds()) }
        lockOwnerSerial &+= 1
        let owner = openOwner + Array("-lock\(lockOwnerSerial)".utf8)
        let length = UInt64(max(op.length, 1))
        var lockStateid: NFS4Stateid?
        let (status, first) = await onHandle(op.path, capacity: 96 + owner.count, operations: 1, { e in
            e.uint32(NFS4Wire.Op.lock)
            e.uint32(2)                       // WRITE_LT
            e.bool(false)                     // reclaim
            e.uint64(op.offset)
            e.uint64(length)
            e.bool(true)                      // new lock-owner
            e.uint32(0)
            openStateid.encode(&e)
            e.uint32(0)
            e.uint64(clientid)
            e.opaque(owner)
        }) { d throws(XDRError) in
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.lock) == 0 else { return }
            lockStateid = try NFS4Stateid(&d)
        }
        guard let lockStateid, status.isOK else { return (status, 0, first) }
        let (unlockStatus, _) = await onHandle(op.path, capacity: 80, operations: 2, { e in
            e.uint32(NFS4Wire.Op.locku)
            e.uint32(2)
            e.uint32(0)
            lockStateid.encode(&e)
            e.uint64(op.offset)
            e.uint64(length)
            e.uint32(NFS4Wire.Op.freeStateid)
            var released = lockStateid
            released.seqid &+= 1
            released.encode(&e)
        }) { d throws(XDRError) in
            guard try NFS4Wire.opStatus(&d, NFS4Wire.Op.locku) == 0 else { return }
            try d.skip(16)
            _ = try NFS4Wire.opStatus(&d, NFS4Wire.Op.freeStateid)
        }
        return (unlockStatus, 0, first)
    }
}
