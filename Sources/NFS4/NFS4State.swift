import NFS3
import Runtime
import Synchronization
import VFS

/// A value behind its own mutex, as a class so shards can sit in an array.
final class Locked<Value>: @unchecked Sendable {
    private let mutex = Mutex(())
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) -> R) -> R {
        mutex.withLock { _ in body(&value) }
    }
}

/// A stateid4: a sequence number and 12 opaque bytes, here the server's boot tag and an id.
public struct Stateid: Equatable, Sendable {
    public var seqid: UInt32
    public var boot: UInt32
    public var id: UInt64

    public init(seqid: UInt32, boot: UInt32, id: UInt64) {
        self.seqid = seqid
        self.boot = boot
        self.id = id
    }

    public var isAnonymous: Bool { boot == 0 && id == 0 && seqid == 0 }
    public var isBypass: Bool { boot == .max && id == .max && seqid == .max }
    /// The 4.1 "current stateid" (seqid 1, other all zeros).
    public var isCurrent: Bool { boot == 0 && id == 0 && seqid == 1 }

    public func encode(_ w: inout XDRWriter) {
        w.uint32(seqid)
        w.uint32(boot)
        w.uint64(id)
    }
}

/// One client (SETCLIENTID or EXCHANGE_ID), its lease and its create-session sequence.
final class NFS4Client: @unchecked Sendable {
    let id: UInt64
    let ownerID: [UInt8]
    var verifier: UInt64
    var confirmed = false
    var confirmVerifier: UInt64 = 0
    let minor: UInt32
    /// When the lease was last renewed (monotonic ns): an atomic, so SEQUENCE and I/O renew
    /// without the state tables' lock.
    let renewed: Atomic<UInt64>
    var lastRenew: UInt64 {
        get { renewed.load(ordering: .relaxed) }
        set { renewed.store(newValue, ordering: .relaxed) }
    }
    /// Set when the client is removed (expired, replaced, destroyed).
    let gone = Atomic<Bool>(false)
    /// CREATE_SESSION's sequence: the next expected value, and the last reply for a retry.
    var createSessionSeq: UInt32 = 1
    var createSessionReply: [UInt8]?
    var reclaimComplete = false
    var sessions: [SessionID] = []
    /// Open stateids this client holds (changed under the state tables' lock).
    var openCount = 0

    init(id: UInt64, ownerID: [UInt8], verifier: UInt64, minor: UInt32, now: UInt64) {
        self.id = id
        self.ownerID = ownerID
        self.verifier = verifier
        self.minor = minor
        renewed = Atomic(now)
    }
}

/// An open-owner or lock-owner: its id (for the VFS's StateOwner) and NFSv4.0 seqid.
final class NFS4Owner: @unchecked Sendable {
    let id: UInt64
    let clientid: UInt64
    let bytes: [UInt8]
    var seqid: UInt32 = 0
    var confirmed = false
    var started = false
    /// 4.0: the result (status and body) of this owner's last seqid operation, and the
    /// filehandle it left current, replayed when the same seqid comes again.
    var lastReply: [UInt8]?
    var lastFH: NFS4FH?

    init(id: UInt64, clientid: UInt64, bytes: [UInt8]) {
        self.id = id
        self.clientid = clientid
        self.bytes = bytes
    }

    var stateOwner: StateOwner { StateOwner(client: clientid, owner: id) }
}

/// An open stateid or a lock stateid and what it stands for.
final class NFS4StateEntry: @unchecked Sendable {
    enum Kind { case open, lock }
    let id: UInt64
    let kind: Kind
    let clientid: UInt64
    let client: NFS4Client
    let file: FileHandle
    let exportID: UInt8
    var seqid: UInt32 = 1
    /// The VFS open (the open's own for lock stateids).
    var openFile: OpenFile
    let owner: NFS4Owner
    /// For lock stateids, the open stateid they came from.
    let openID: UInt64
    /// For open stateids, the lock stateids taken through them.
    var locks: [UInt64] = []

    init(id: UInt64, kind: Kind, client: NFS4Client, file: FileHandle, exportID: UInt8, openFile: OpenFile, owner: NFS4Owner, openID: UInt64) {
        self.id = id
        self.kind = kind
        self.client = client
        self.clientid = client.id
        self.file = file
        self.exportID = exportID
        self.openFile = openFile
        self.owner = owner
        self.openID = openID
    }
}

public struct SessionID: Hashable, Sendable {
    public var high: UInt64
    public var low: UInt64
}

/// A 4.1 session: its slot table, owned by the session and locked by the session alone (one
/// session's traffic never waits on another's).
final class NFS4Session: @unchecked Sendable {
    struct Slot {
        var seqid: UInt32 = 0
        var inProgress = false
        var reply: [UInt8]?
    }

    let id: SessionID
    let clientid: UInt64
    let client: NFS4Client
    let maxOperations: UInt32
    let maxRequestSize: UInt32
    let maxResponseSize: UInt32
    let maxResponseSizeCached: UInt32
    let slots: Mutex<[Slot]>
    let slotCount: Int

    init(id: SessionID, client: NFS4Client, slotCount: Int, maxOperations: UInt32, maxRequestSize: UInt32, maxResponseSize: UInt32, maxResponseSizeCached: UInt32) {
        self.id = id
        self.client = client
        self.clientid = client.id
        self.slotCount = slotCount
        self.maxOperations = maxOperations
        self.maxRequestSize = maxRequestSize
        self.maxResponseSize = maxResponseSize
        self.maxResponseSizeCached = maxResponseSizeCached
        slots = Mutex(Array(repeating: Slot(), count: slotCount))
    }

    enum SlotDecision {
        case execute
        case replay([UInt8])
        case error(NFS4Status)
    }

    /// RFC 8881 §2.10.6.1: a new request (seqid one more than the slot's), a retry (the same
    /// seqid: answered from the cache), or misordered.
    func begin(slot: Int, seqid: UInt32) -> SlotDecision {
        guard slot < slotCount else { return .error(.badslot) }
        return slots.withLock { slots -> SlotDecision in
            let current = slots[slot]
            if seqid == current.seqid &+ 1 {
                if current.inProgress { return .error(.delay) }
                slots[slot].seqid = seqid
                slots[slot].inProgress = true
                slots[slot].reply = nil
                return .execute
            }
            if seqid == current.seqid {
                if current.inProgress { return .error(.delay) }
                if let reply = current.reply { return .replay(reply) }
                return .error(.retryUncachedRep)
            }
            return .error(.seqMisordered)
        }
    }

    func finish(slot: Int, reply: [UInt8]?) {
        slots.withLock { slots in
            slots[slot].inProgress = false
            slots[slot].reply = reply
        }
    }
}

/// All NFSv4 state: clients, owners, stateids and sessions. Clients, owners and stateids sit
/// behind one mutex (held for dictionary work only, never across a VFS call); each session's
/// slot table has its own.
public final class NFS4State: @unchecked Sendable {
    struct Tables {
        var clients: [UInt64: NFS4Client] = [:]
        var owners: [OwnerKey: NFS4Owner] = [:]
        var states: [UInt64: NFS4StateEntry] = [:]
        /// Open stateids by (open-owner, file): an OPEN by the same owner of the same file
        /// upgrades that stateid, found without scanning every stateid.
        var opens: [OpenKey: NFS4StateEntry] = [:]
        /// 4.0: closed open stateids and their owners, so a retransmitted CLOSE finds the
        /// owner whose last reply answers it (bounded; dropped with the client).
        var closed: [UInt64: NFS4Owner] = [:]
        var nextID: UInt64 = 1
        var lastSweep: UInt64 = 0
    }

    struct OpenKey: Hashable {
        var owner: UInt64
        var file: FileHandle
    }

    struct OwnerKey: Hashable {
        var clientid: UInt64
        var lock: Bool
        var bytes: [UInt8]
    }

    let tables = Mutex(Tables())
    /// Sessions by id, sharded: a compound's SEQUENCE looks its session up without a lock
    /// every loop shares.
    let sessionShards: [Locked<[SessionID: NFS4Session]>] = (0..<16).map { _ in Locked([:]) }
    /// Stateids by id for READ and WRITE, sharded: the per-I/O check takes one shard's lock,
    /// never the tables'. Changed (with the shard locked) wherever `Tables.states` changes, and
    /// wherever an entry's seqid or open changes, always with the tables locked as well.
    let ioShards: [Locked<[UInt64: NFS4StateEntry]>] = (0..<16).map { _ in Locked([:]) }
    /// Changes at every start: stateids and client ids of an earlier run are stale.
    public let boot: UInt32
    public let leaseSeconds: UInt32
    let serverOwner: [UInt8]

    /// The end of the grace period (monotonic ns): until then only reclaims may take state.
    let graceUntil: UInt64

    public init(leaseSeconds: UInt32 = 90, graceSeconds: UInt32 = 0) {
        boot = UInt32.random(in: 1..<UInt32.max)
        self.leaseSeconds = leaseSeconds
        serverOwner = Array("dmanoel-nas".utf8)
        graceUntil = graceSeconds == 0 ? 0 : monotonicNanoseconds() + UInt64(graceSeconds) * 1_000_000_000
    }

    /// Whether the grace period after the start is still running.
    public var inGrace: Bool { graceUntil != 0 && monotonicNanoseconds() < graceUntil }

    var leaseNanoseconds: UInt64 { UInt64(leaseSeconds) * 1_000_000_000 }

    /// Client ids carry the boot tag in their high half, so one from an earlier run is stale.
    func newClientID(_ t: inout Tables) -> UInt64 {
        t.nextID += 1
        return UInt64(boot) << 32 | (t.nextID & 0xFFFF_FFFF)
    }

    /// Drops the state of clients whose lease ran out (at most once a second).
    func sweep(_ t: inout Tables, now: UInt64) -> [OpenFile] {
        guard now &- t.lastSweep > 1_000_000_000 else { return [] }
        t.lastSweep = now
        var closed: [OpenFile] = []
        // `now` was read before the lock: a SEQUENCE on another loop may have renewed since,
        // leaving lastRenew after `now` (a wrapping subtraction would expire a live client).
        for (id, client) in t.clients where client.lastRenew < now && now - client.lastRenew > leaseNanoseconds {
            closed += removeClient(&t, id)
        }
        return closed
    }

    /// Removes a client and everything it holds; returns the opens to close (outside the lock).
    func removeClient(_ t: inout Tables, _ id: UInt64) -> [OpenFile] {
        guard let client = t.clients.removeValue(forKey: id) else { return [] }
        var closed: [OpenFile] = []
        for (key, entry) in t.states where entry.clientid == id {
            if entry.kind == .open { closed.append(entry.openFile) }
            t.states[key] = nil
            unindex(key)
        }
        for (key, entry) in t.opens where entry.clientid == id { t.opens[key] = nil }
        for (key, _) in t.owners where key.clientid == id { t.owners[key] = nil }
        for (key, owner) in t.closed where owner.clientid == id { t.closed[key] = nil }
        client.gone.store(true, ordering: .relaxed)
        for sid in client.sessions { _ = removeSession(sid) }
        return closed
    }

    /// Runs `body` on the tables after expiring old clients; closes what expiry released.
    func withTables<R>(_ body: (inout Tables) throws(NFS4Error) -> R) throws(NFS4Error) -> R {
        let now = monotonicNanoseconds()
        var released: [OpenFile] = []
        let result: Result<R, NFS4Error> = tables.withLock { t in
            released = sweep(&t, now: now)
            do throws(NFS4Error) { return .success(try body(&t)) } catch { return .failure(error) }
        }
        for open in released { open.close() }
        return try result.get()
    }

    /// A confirmed client for an operation naming it: renews its lease.
    func client(_ t: inout Tables, _ id: UInt64) throws(NFS4Error) -> NFS4Client {
        // An unknown id (from an earlier run, or a client expired and purged) is stale: the
        // client sets up a new one, as with knfsd.
        guard let client = t.clients[id] else { throw .status(.staleClientid) }
        client.lastRenew = monotonicNanoseconds()
        return client
    }

    /// The state a stateid names, checked: from this boot, known, of the right file and
    /// generation. Renews the owning client's lease.
    func entry(_ t: inout Tables, _ stateid: Stateid, file: FileHandle?, minor: UInt32) throws(NFS4Error) -> NFS4StateEntry {
        guard stateid.boot == boot else { throw .status(minor == 0 ? .staleStateid : .badStateid) }
        guard let entry = t.states[stateid.id] else { throw .status(.badStateid) }
        if let file, entry.file != file { throw .status(.badStateid) }
        if !(minor >= 1 && stateid.seqid == 0) {
            if stateid.seqid < entry.seqid { throw .status(.oldStateid) }
            if stateid.seqid > entry.seqid { throw .status(.badStateid) }
        }
        t.clients[entry.clientid]?.lastRenew = monotonicNanoseconds()
        return entry
    }

    func owner(_ t: inout Tables, clientid: UInt64, bytes: [UInt8], lock: Bool) -> NFS4Owner {
        let key = OwnerKey(clientid: clientid, lock: lock, bytes: bytes)
        if let owner = t.owners[key] { return owner }
        t.nextID += 1
        let owner = NFS4Owner(id: t.nextID, clientid: clientid, bytes: bytes)
        t.owners[key] = owner
        return owner
    }

    func ownerBytes(_ t: borrowing Tables, _ stateOwner: StateOwner) -> (UInt64, [UInt8]) {
        for (key, owner) in t.owners where owner.id == stateOwner.owner && key.clientid == stateOwner.client {
            return (key.clientid, key.bytes)
        }
        return (stateOwner.client, withUnsafeBytes(of: stateOwner.owner.bigEndian) { Array($0) })
    }

    func newEntry(_ t: inout Tables, kind: NFS4StateEntry.Kind, client: NFS4Client, file: FileHandle, exportID: UInt8, openFile: OpenFile, owner: NFS4Owner, openID: UInt64) -> NFS4StateEntry {
        t.nextID += 1
        let entry = NFS4StateEntry(id: t.nextID, kind: kind, client: client, file: file, exportID: exportID, openFile: openFile, owner: owner, openID: openID == 0 ? t.nextID : openID)
        t.states[entry.id] = entry
        if kind == .open {
            t.opens[OpenKey(owner: owner.id, file: file)] = entry
            client.openCount += 1
        } else {
            t.states[entry.openID]?.locks.append(entry.id)
        }
        ioShards[Int(entry.id & 15)].withLock { $0[entry.id] = entry }
        return entry
    }

    /// Removes a stateid (an open takes its lock stateids with it).
    func removeEntry(_ t: inout Tables, _ entry: NFS4StateEntry) {
        let present = t.states.removeValue(forKey: entry.id) != nil
        unindex(entry.id)
        if entry.kind == .open {
            if present { entry.client.openCount -= 1 }
            let key = OpenKey(owner: entry.owner.id, file: entry.file)
            if t.opens[key] === entry { t.opens[key] = nil }
            for id in entry.locks {
                t.states[id] = nil
                unindex(id)
            }
        } else if let open = t.states[entry.openID] {
            open.locks.removeAll { $0 == entry.id }
        }
    }

    /// The lock stateids taken through an open.
    func locks(_ t: borrowing Tables, of open: NFS4StateEntry) -> [NFS4StateEntry] {
        open.locks.compactMap { t.states[$0] }
    }

    /// Drops a stateid from the I/O index (the caller removes it from `Tables.states`).
    func unindex(_ id: UInt64) {
        _ = ioShards[Int(id & 15)].withLock { $0.removeValue(forKey: id) }
    }

    /// Changes an entry's seqid or open: with the tables locked (the caller) and its I/O
    /// shard locked (here), so either lock is enough to read them.
    func mutate(_ entry: NFS4StateEntry, _ body: () -> Void) {
        ioShards[Int(entry.id & 15)].withLock { _ in body() }
    }

    /// The per-I/O stateid check (READ, WRITE, SETATTR of size): like `entry`, through one
    /// shard of the I/O index; renews the client's lease with an atomic store.
    func ioEntry(_ stateid: Stateid, file: FileHandle, minor: UInt32) throws(NFS4Error) -> (OpenFile, NFS4StateEntry.Kind, StateOwner) {
        guard stateid.boot == boot else { throw .status(minor == 0 ? .staleStateid : .badStateid) }
        let found = ioShards[Int(stateid.id & 15)].withLock { shard -> Result<(OpenFile, NFS4StateEntry.Kind, StateOwner, NFS4Client), NFS4Error> in
            guard let entry = shard[stateid.id], entry.file == file else { return .failure(.status(.badStateid)) }
            if !(minor >= 1 && stateid.seqid == 0) {
                if stateid.seqid < entry.seqid { return .failure(.status(.oldStateid)) }
                if stateid.seqid > entry.seqid { return .failure(.status(.badStateid)) }
            }
            return .success((entry.openFile, entry.kind, entry.owner.stateOwner, entry.client))
        }
        let (open, kind, owner, client) = try found.get()
        client.lastRenew = monotonicNanoseconds()
        return (open, kind, owner)
    }

    func insertSession(_ session: NFS4Session) {
        sessionShards[Int(session.id.low & 15)].withLock { $0[session.id] = session }
    }

    func removeSession(_ id: SessionID) -> NFS4Session? {
        sessionShards[Int(id.low & 15)].withLock { $0.removeValue(forKey: id) }
    }

    func stateid(_ entry: NFS4StateEntry) -> Stateid { Stateid(seqid: entry.seqid, boot: boot, id: entry.id) }

    func session(_ id: SessionID) -> NFS4Session? { sessionShards[Int(id.low & 15)].withLock { $0[id] } }
}
