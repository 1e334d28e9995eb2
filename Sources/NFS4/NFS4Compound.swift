import NFS3
import ONCRPC
import Runtime
import VFS

/// The current or saved filehandle: a pseudo-filesystem directory, or an object in an export.
enum NFS4FH {
    case pseudo(Int)
    case file(NFSExport, FileHandle)
}

/// Where a compound's reply goes: the RPC connection, or (unit tests) a capture.
enum NFS4ReplySink {
    case rpc(RPCContext)
    case capture(NFS4Capture)

    var stats: ProtocolStats? {
        if case let .rpc(context) = self { return context.connection.loop.protocolStats("NFSv4", operations: NFS4Program.statNames) }
        return nil
    }

    func garbage() {
        switch self {
        case let .rpc(context): context.fail(.garbageArguments)
        case let .capture(capture): capture.garbage = true
        }
    }

    func send(_ body: [UInt8], failed: Bool) {
        switch self {
        case let .rpc(context):
            context.reply(capacity: body.count, failed: failed) { encoder in body.withUnsafeBytes { encoder.fixedOpaque($0) } }
        case let .capture(capture):
            capture.body = body
        }
    }

    /// `body` ends with the length word of an opaque whose bytes are `data` (sent by reference).
    func send(_ body: [UInt8], data: [(UnsafeRawBufferPointer, AnyObject)], dataCount: Int) {
        switch self {
        case let .rpc(context):
            context.reply(capacity: body.count, header: { encoder in body.withUnsafeBytes { encoder.fixedOpaque($0) } },
                          data: data, dataCount: dataCount)
        case let .capture(capture):
            var all = XDRWriter(capacity: body.count + dataCount + 4)
            all.append(body)
            var raw: [UInt8] = []
            for (bytes, _) in data { raw.append(contentsOf: bytes) }
            all.fixedOpaque(raw)
            capture.body = all.bytes
        }
    }
}

/// A compound's reply kept for inspection (unit tests).
public final class NFS4Capture: @unchecked Sendable {
    public var body: [UInt8] = []
    public var garbage = false
    public init() {}
}

/// One COMPOUND being run (RFC 7530 §15.2, RFC 8881 §16.2): operations in order on the
/// current and saved filehandles, stopping at the first that fails; the reply carries the
/// tag, the last status and the results up to and including the failing one.
final class NFS4Compound {
    let program: NFS4Program
    let call: RPCCall
    let sink: NFS4ReplySink
    /// The client's address, for the exports' client lists.
    let peer: String
    var args: XDRDecoder
    var out = XDRWriter(capacity: 1024)
    var minor: UInt32 = 0
    var current: NFS4FH?
    var saved: NFS4FH?
    /// 4.1's current stateid (set by OPEN, LOCK, ...; used when a client sends seqid 1, other 0).
    var currentStateid: Stateid?
    var savedStateid: Stateid?
    var session: NFS4Session?
    var slot = 0
    var cacheThis = false
    /// READ data sent by reference when READ is the last operation.
    var pendingData: (segments: [DataSegment], count: Int)?
    var index = 0
    var operationCount = 0
    /// A retried 4.1 request: the slot's cached reply, sent as it is.
    var replayed: [UInt8]?
    /// 4.0 owners whose seqid the running operation advanced (their last reply is kept), and
    /// an owner whose last reply answers a retransmitted seqid.
    var seqidOwners: [NFS4Owner] = []
    var replayOwner: NFS4Owner?

    /// Most operations accepted in one compound (4.0; 4.1 uses the session's limit).
    static let maxOperations = 128

    init(program: NFS4Program, call: RPCCall, arguments: XDRDecoder, sink: NFS4ReplySink, peer: String) {
        self.program = program
        self.call = call
        self.sink = sink
        self.peer = peer
        args = arguments
    }

    var vfs: VirtualFileSystem { program.vfs }
    var state: NFS4State { program.state }

    func run() async {
        let tag: UnsafeRawBufferPointer
        let count: Int
        do throws(XDRError) {
            tag = try args.opaque(maximum: 1024)
            minor = try args.uint32()
            count = Int(try args.uint32())
        } catch {
            return sink.garbage()
        }
        let tagBytes = Array(tag)
        if minor > 2 {
            return finish(tag: tagBytes, status: .minorVersMismatch, results: 0)
        }
        if count > Self.maxOperations {
            return finish(tag: tagBytes, status: minor == 0 ? .resource : .tooManyOps, results: 0)
        }
        operationCount = count
        let stats = sink.stats
        var status = NFS4Status.ok
        var results = 0
        while index < count {
            let opnum: UInt32
            do throws(XDRError) { opnum = try args.uint32() } catch { status = .badxdr; break }
            let started = monotonicNanoseconds()
            let before = out.count
            results += 1
            guard let op = NFS4Op(rawValue: opnum) else {
                out.uint32(NFS4Op.illegal)
                out.uint32(NFS4Status.opIllegal.rawValue)
                status = .opIllegal
                break
            }
            out.uint32(opnum)
            status = await perform(op)
            if status != .ok && out.count == before + 4 { out.uint32(status.rawValue) }
            stats?.record(Int(opnum), nanoseconds: monotonicNanoseconds() &- started, error: status != .ok)
            if let replayed { return sink.send(replayed, failed: false) }
            if status != .ok { break }
            index += 1
        }
        finish(tag: tagBytes, status: status, results: results)
    }

    /// Runs one operation; its result (status and body) is in `out` afterwards.
    func perform(_ op: NFS4Op) async -> NFS4Status {
        // 4.1: SEQUENCE first; only a few operations may stand alone without it.
        if minor >= 1 {
            if op == .sequence {
                if index != 0 { return .sequencePos }
            } else if index == 0 {
                switch op {
                case .exchangeID, .createSession, .destroySession, .bindConnToSession, .destroyClientid:
                    if operationCount != 1 && op != .destroySession { return .notOnlyOp }
                default:
                    return .opNotInSession
                }
            }
            if let session, index + 1 > Int(session.maxOperations) { return .tooManyOps }
        }
        let start = out.count
        var status = NFS4Status.ok
        do throws(NFS4Error) {
            try await dispatch(op)
        } catch {
            switch error {
            case let .status(value): status = value
            case let .written(value): status = value
            }
        }
        if let owner = replayOwner {
            // A retransmission of the owner's last seqid operation: its answer again.
            replayOwner = nil
            seqidOwners = []
            let (reply, fh) = state.tables.withLock { _ in (owner.lastReply ?? [], owner.lastFH) }
            out.truncate(to: start)
            out.append(reply)
            if let fh { current = fh }
            guard reply.count >= 4 else { return .serverfault }
            return NFS4Status(rawValue: UInt32(reply[0]) << 24 | UInt32(reply[1]) << 16 | UInt32(reply[2]) << 8 | UInt32(reply[3])) ?? .serverfault
        }
        if !seqidOwners.isEmpty {
            if status != .ok && out.count == start { out.uint32(status.rawValue) }
            let reply = Array(out.bytes[start...])
            let owners = seqidOwners, fh = current
            seqidOwners = []
            state.tables.withLock { _ in
                for owner in owners {
                    owner.lastReply = reply
                    owner.lastFH = fh
                }
            }
        }
        return status
    }

    /// NFSv4.0 seqid rule for an open- or lock-owner (RFC 7530 §9.1.7): the first request
    /// starts the sequence, a later one must be one more than the last; the last one again is
    /// a retransmission, answered with the reply it got. Call with the state tables locked.
    func checkSeqid(_ owner: NFS4Owner, _ seqid: UInt32) throws(NFS4Error) {
        guard minor == 0 else { return }
        if owner.started {
            if seqid == owner.seqid && owner.lastReply != nil {
                replayOwner = owner
                throw .written(.ok)
            }
            if seqid != owner.seqid &+ 1 { throw .status(.badSeqid) }
        }
        owner.started = true
        owner.seqid = seqid
        seqidOwners.append(owner)
    }

    func dispatch(_ op: NFS4Op) async throws(NFS4Error) {
        let v40 = minor == 0
        switch op {
        case .access: try await access()
        case .close: try await close()
        case .commit: try await commit()
        case .create: try await create()
        case .delegpurge: throw .status(.notsupp)
        case .delegreturn: try await delegreturn()
        case .getattr: try await getattr()
        case .getfh: try getfh()
        case .link: try await link()
        case .lock: try await lock()
        case .lockt: try await lockt()
        case .locku: try await locku()
        case .lookup: try await lookup()
        case .lookupp: try await lookupp()
        case .nverify: try await verify(equal: false)
        case .open: try await open()
        case .openattr: throw .status(.notsupp)
        case .openConfirm: if v40 { try openConfirm() } else { throw .status(.notsupp) }
        case .openDowngrade: try openDowngrade()
        case .putfh: try putfh()
        case .putpubfh, .putrootfh: try putrootfh()
        case .read: try await read()
        case .readdir: try await readdir()
        case .readlink: try await readlink()
        case .remove: try await remove()
        case .rename: try await rename()
        case .renew: if v40 { try renew() } else { throw .status(.notsupp) }
        case .restorefh: try restorefh()
        case .savefh: try savefh()
        case .secinfo: try await secinfo()
        case .setattr: try await setattr()
        case .setclientid: if v40 { try setclientid() } else { throw .status(.notsupp) }
        case .setclientidConfirm: if v40 { try setclientidConfirm() } else { throw .status(.notsupp) }
        case .verify: try await verify(equal: true)
        case .write: try await write()
        case .releaseLockowner: if v40 { try releaseLockowner() } else { throw .status(.notsupp) }
        default:
            guard !v40 else { throw .status(.opIllegal) }
            switch op {
            case .backchannelCtl: try backchannelCtl()
            case .bindConnToSession: try bindConnToSession()
            case .exchangeID: try exchangeID()
            case .createSession: try createSession()
            case .destroySession: try destroySession()
            case .freeStateid: try freeStateid()
            case .secinfoNoName: try await secinfoNoName()
            case .sequence: try sequence()
            case .testStateid: try testStateid()
            case .destroyClientid: try destroyClientid()
            case .reclaimComplete: try reclaimComplete()
            case .allocate where minor >= 2: try await allocate(deallocate: false)
            case .deallocate where minor >= 2: try await allocate(deallocate: true)
            case .seek where minor >= 2: try await seek()
            case .getxattr where minor >= 2: try await getxattr()
            case .setxattr where minor >= 2: try await setxattr()
            case .listxattrs where minor >= 2: try await listxattrs()
            case .removexattr where minor >= 2: try await removexattr()
            default: throw .status(minor < 2 && op.rawValue >= 59 ? .opIllegal : .notsupp)
            }
        }
    }

    /// Sends the reply, and keeps it in the session's slot when SEQUENCE began the compound.
    func finish(tag: [UInt8], status: NFS4Status, results: Int) {
        var body = XDRWriter(capacity: 12 + tag.count + out.count)
        body.uint32(status.rawValue)
        body.opaque(tag)
        body.uint32(UInt32(results))
        body.append(out.bytes)
        let bytes = body.bytes
        if let pending = pendingData, status == .ok {
            // READ was last: the header up to its data length, then the data by reference.
            var data: [(UnsafeRawBufferPointer, AnyObject)] = []
            for segment in pending.segments { data.append((segment.bytes, segment.owner)) }
            if let session {
                var cached: [UInt8]?
                if cacheThis {
                    var copy = XDRWriter(capacity: bytes.count + pending.count + 4)
                    copy.append(bytes)
                    var raw: [UInt8] = []
                    for segment in pending.segments { raw.append(contentsOf: segment.bytes) }
                    copy.fixedOpaque(raw)
                    cached = copy.bytes
                }
                session.finish(slot: slot, reply: cached)
            }
            sink.send(bytes, data: data, dataCount: pending.count)
            return
        }
        if let session { session.finish(slot: slot, reply: cacheThis ? bytes : nil) }
        sink.send(bytes, failed: status != .ok)
    }

    // MARK: Argument decoding

    func uint32() throws(NFS4Error) -> UInt32 {
        do { return try args.uint32() } catch { throw .status(.badxdr) }
    }

    func uint64() throws(NFS4Error) -> UInt64 {
        do { return try args.uint64() } catch { throw .status(.badxdr) }
    }

    func bool() throws(NFS4Error) -> Bool {
        do { return try args.bool() } catch { throw .status(.badxdr) }
    }

    func opaque(maximum: Int) throws(NFS4Error) -> UnsafeRawBufferPointer {
        do { return try args.opaque(maximum: maximum) } catch { throw .status(.badxdr) }
    }

    func fixed(_ count: Int) throws(NFS4Error) -> UnsafeRawBufferPointer {
        do { return try args.fixedOpaque(count) } catch { throw .status(.badxdr) }
    }

    func bitmap() throws(NFS4Error) -> Bitmap4 {
        do { return try Bitmap4.decode(&args) } catch { throw .status(.badxdr) }
    }

    /// A component4 name: valid UTF-8, not empty, no "/", not "." or "..", at most 255 bytes.
    func component() throws(NFS4Error) -> String {
        let raw = try opaque(maximum: 4096)
        guard !raw.isEmpty else { throw .status(.inval) }
        guard raw.count <= 255 else { throw .status(.nametoolong) }
        guard let name = String(validating: raw, as: UTF8.self) else { throw .status(.inval) }
        if name == "." || name == ".." || name.contains("/") || name.utf8.contains(0) { throw .status(.badname) }
        return name
    }

    func stateid() throws(NFS4Error) -> Stateid {
        let seqid = try uint32()
        let boot = try uint32()
        let id = try uint64()
        let value = Stateid(seqid: seqid, boot: boot, id: id)
        if minor >= 1 && value.isCurrent {
            guard let currentStateid else { throw .status(.badStateid) }
            return currentStateid
        }
        return value
    }

    // MARK: Filehandles

    func requireCurrent() throws(NFS4Error) -> NFS4FH {
        guard let current else { throw .status(.nofilehandle) }
        return current
    }

    /// The current filehandle as an object of an export (pseudo directories refuse with `error`).
    func currentFile(pseudo error: NFS4Status = .inval) throws(NFS4Error) -> (NFSExport, FileHandle) {
        switch try requireCurrent() {
        case .pseudo: throw .status(error)
        case let .file(export, handle):
            guard export.admits(peer) else { throw .status(.access) }
            return (export, handle)
        }
    }

    func credentials(_ export: NFSExport) -> Credentials { export.credentials(for: call.auth) }

    func wire(_ fh: NFS4FH) -> [UInt8] {
        switch fh {
        case let .pseudo(index):
            var bytes: [UInt8] = [0, 0x50]
            withUnsafeBytes(of: UInt32(index).littleEndian) { bytes.append(contentsOf: $0) }
            return bytes
        case let .file(export, handle):
            return program.exports.encode(handle, export: export).bytes
        }
    }

    func decodeHandle(_ raw: UnsafeRawBufferPointer) throws(NFS4Error) -> NFS4FH {
        guard raw.count >= 2 else { throw .status(.badhandle) }
        if raw[0] == 0 {
            guard raw.count == 6, raw[1] == 0x50 else { throw .status(.badhandle) }
            let index = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 2, as: UInt32.self)))
            guard index < program.pseudo.nodes.count else { throw .status(.stale) }
            return .pseudo(index)
        }
        switch program.exports.decode(raw) {
        case let .failure(status): throw .status(status == .badhandle ? .badhandle : .stale)
        case let .success((export, handle)): return .file(export, handle)
        }
    }

    /// The fattr4 source for `fh`: attributes fetched for `requested` only.
    func attrSource(_ fh: NFS4FH, requested: Bitmap4) async throws(NFS4Error) -> NFS4AttrSource {
        let lease = state.leaseSeconds
        switch fh {
        case let .pseudo(index):
            return NFS4AttrSource(attributes: program.pseudo.attributes(index), fsid: NFS4PseudoFS.fsid, handle: wire(fh),
                                  mountedOnFileid: program.pseudo.fileid(index), statfs: nil, leaseSeconds: lease, minor: minor)
        case let .file(export, handle):
            var attributes: Attributes
            do { attributes = try await vfs.getattr(handle, mask: NFS4Attr.vfsMask(requested)) } catch { throw NFS4Error(error) }
            var statfs: FileSystemStats?
            if !requested.intersection(NFS4Attr.statfsBits).isEmpty { statfs = try? await vfs.statfs(handle) }
            var mountedOn = attributes.fileid
            if handle == export.root, let junction = program.pseudo.junction(of: export) {
                mountedOn = program.pseudo.fileid(junction)
            }
            attributes.valid.insert(.type)
            return NFS4AttrSource(attributes: attributes, fsid: (UInt64(export.id), attributes.fsid), handle: wire(fh),
                                  mountedOnFileid: mountedOn, statfs: statfs, leaseSeconds: lease, minor: minor)
        }
    }
}
