import Runtime
import Synchronization

/// Every file's shared open/lock/lease state (`FileState`), keyed by handle, one per
/// `VirtualFileSystem` (`fileStates`), used by NFSv4 and SMB alike. The table is consulted
/// when a file is opened and when its last open, lock or lease goes; everything in between
/// (locks, lease requests, the per-I/O lock check) goes through the `OpenFile` the open
/// returned, which holds the file's state directly.
///
/// 64 shards, each a mutex over a dictionary; a file's entry exists while it has opens,
/// locks or leases. Lock order: shard, then file.
public final class FileStateTable: Sendable {
    private static let shardCount = 64
    private let shards: [Shard]
    private let nextOpenID = Atomic<UInt64>(1)
    private let census = LeaseCensus()

    final class Shard: Sendable {
        let files = Mutex<[FileHandle: FileState]>([:])
    }

    public init() {
        shards = (0..<Self.shardCount).map { _ in Shard() }
    }

    @inline(__always)
    private func shard(_ handle: FileHandle) -> Shard {
        shards[Int(truncatingIfNeeded: UInt(bitPattern: handle.hashValue) % UInt(Self.shardCount))]
    }

    /// Opens `handle` for `owner` with `access`, denying others `deny`: refused when share
    /// modes conflict or the file's delete is pending; told to wait when other holders'
    /// leases must be broken first (their break handlers have been called, outside every
    /// lock, before this returns). `breaking` is what the open takes from other holders'
    /// leases (nil: the NFSv4 rules, `FileState.defaultBreaking`); SMB passes its own (an
    /// open breaks write caching, an overwrite everything). `waiter`, when given, is woken
    /// when the breaks are answered.
    public func open(_ handle: FileHandle, owner: StateOwner, access: ShareMode, deny: ShareMode = [], breaking: LeaseState? = nil,
                     waiter: StateWaiter? = nil) -> OpenOutcome {
        let id = nextOpenID.wrappingAdd(1, ordering: .relaxed).oldValue
        let shard = shard(handle)
        let breaks = breaking ?? FileState.defaultBreaking(forOpenWith: access)
        var state: FileState
        var attempt: FileState.OpenAttempt
        var tries = 0
        repeat {
            tries += 1
            (state, attempt) = shard.files.withLock { files -> (FileState, FileState.OpenAttempt) in
                let state: FileState
                if let existing = files[handle] {
                    state = existing
                } else {
                    state = FileState(handle: handle, census: census)
                    files[handle] = state
                }
                let attempt = state.open(id: id, owner: owner, access: access, deny: deny, breaking: breaks, waiter: waiter)
                if attempt.result != .opened && state.isEmpty { files[handle] = nil }
                return (state, attempt)
            }
            for (handler, request) in attempt.notify { handler(request) }
            // Holders may answer inside their handler (a read-only lease needs no round trip):
            // one more look saves the caller a wait.
        } while attempt.result == .mustWait && !attempt.notify.isEmpty && tries < 2
        switch attempt.result {
        case .opened: return .opened(OpenFile(id: id, state: state, table: self, owner: owner, access: access, deny: deny))
        case .shareDenied: return .shareDenied
        case .deletePending: return .deletePending
        case .mustWait: return .waitForLeaseBreak(attempt.breaks)
        }
    }

    /// Breaks every lease on `handle` before a change by a protocol without opens (an NFSv3
    /// WRITE, SETATTR of the size, REMOVE or RENAME; an S3 PUT), and waits until the holders
    /// answered or `FileState.breakTimeout` passed (MS-SMB2 §3.3.4.6/§3.3.4.7). Costs one
    /// relaxed load while no file has a lease. Waits only on an event loop's thread (it needs
    /// the loop's timer); elsewhere the breaks are sent and the change goes ahead.
    public func recallLeases(_ handle: FileHandle) async {
        guard census.files.load(ordering: .relaxed) > 0, let state = state(of: handle) else { return }
        // Each pass either finds nothing left to wait for or outlives a break's timeout, so
        // the second pass expires what the first waited on.
        for _ in 0..<2 {
            let waiter = StateWaiter()
            guard state.breakReadCaching(by: nil, waiter: waiter), let loop = EventLoop.current else { return }
            let timer = loop.schedule(afterNanoseconds: FileState.breakTimeout &+ 1_000_000) { waiter.wake() }
            await waiter.wait()
            loop.execute { loop.cancel(timer) }
        }
    }

    /// Whether any file has a lease (one relaxed load).
    public var anyLeases: Bool { census.files.load(ordering: .relaxed) > 0 }

    /// The state of `handle` if it has any (diagnostics, tests; protocols use `OpenFile.state`).
    public func state(of handle: FileHandle) -> FileState? {
        shard(handle).files.withLock { $0[handle] }
    }

    /// Files with state.
    public var count: Int {
        shards.reduce(0) { sum, shard in sum + shard.files.withLock { $0.count } }
    }

    /// The holder's answer to a lease break (it now caches `state`; nothing, or a state without
    /// read caching, gives the lease up). Opens waiting on the break are woken to retry.
    public func acknowledgeBreak(_ handle: FileHandle, holder: StateOwner, to state: LeaseState) {
        update(handle) { $0.acknowledgeBreak(holder: holder, to: state) }
    }

    /// Gives up (NFSv4 DELEGRETURN, SMB close of the last handle of a lease) or revokes (a
    /// break not answered in time) `holder`'s lease on `handle`.
    public func releaseLease(_ handle: FileHandle, holder: StateOwner) {
        update(handle) { $0.releaseLease(holder: holder) }
    }

    /// Ends open `id`; true when it was the last open of a file whose delete is pending.
    func close(id: UInt64, handle: FileHandle) -> Bool {
        var deleteNow = false
        update(handle) { state in
            let result = state.close(id: id)
            deleteNow = result.deleteNow
            return (result.empty, result.woken)
        }
        return deleteNow
    }

    /// Runs `body` on the file's state with its shard locked; drops the entry when `body`
    /// says nothing is left, then wakes the waiters it returned.
    private func update(_ handle: FileHandle, _ body: (FileState) -> (empty: Bool, woken: [StateWaiter])) {
        let woken = shard(handle).files.withLock { files -> [StateWaiter] in
            guard let state = files[handle] else { return [] }
            let result = body(state)
            if result.empty { files[handle] = nil }
            return result.woken
        }
        FileState.wake(woken)
    }
}
/// One open of a file (an NFSv4 open stateid, an SMB FileId): the file's shared state is
/// right here, so locks, lease requests and the per-I/O lock check never look up the table.
public final class OpenFile: @unchecked Sendable {
    let id: UInt64
    /// The file's shared state.
    public let state: FileState
    public let owner: StateOwner
    public let access: ShareMode
    public let deny: ShareMode
    private let table: FileStateTable
    private let closed = Atomic<Bool>(false)

    init(id: UInt64, state: FileState, table: FileStateTable, owner: StateOwner, access: ShareMode, deny: ShareMode) {
        self.id = id
        self.state = state
        self.table = table
        self.owner = owner
        self.access = access
        self.deny = deny
    }

    /// An open dropped without `close()` releases its state all the same.
    deinit {
        if !closed.load(ordering: .acquiring) { _ = table.close(id: id, handle: state.handle) }
    }

    public var handle: FileHandle { state.handle }

    /// Locks `range` for `lockOwner` (the open's owner unless NFSv4 names a lock-owner).
    /// An exclusive lock needs write access and a shared one read access (`accessDenied`
    /// otherwise, as NFS4ERR_OPENMODE / STATUS_ACCESS_DENIED).
    public func lock(_ kind: LockKind, _ range: ByteRange, lockOwner: StateOwner? = nil) throws(VFSError) -> LockOutcome {
        if kind == .exclusive && !access.contains(.write) || kind == .shared && !access.contains(.read) { throw .accessDenied }
        return state.lock(kind, range, owner: lockOwner ?? owner, openID: id)
    }

    public func unlock(_ range: ByteRange, lockOwner: StateOwner? = nil) {
        state.unlock(range, owner: lockOwner ?? owner)
    }

    /// Whether locks taken through this open are held (NFSv4 refuses CLOSE then).
    public var holdsLocks: Bool { state.holdsLocks(openID: id) }

    /// The lock of another owner that stops this open reading (`write: false`) or writing
    /// `range`: SMB's mandatory locks, checked on every READ and WRITE without a table lookup.
    @inline(__always)
    public func conflictingLock(_ range: ByteRange, write: Bool, lockOwner: StateOwner? = nil) -> ByteRangeLock? {
        state.conflictingLock(range, write: write, owner: lockOwner ?? owner)
    }

    /// Asks for a lease for `holder` (the open's owner unless SMB names a lease key); see
    /// `FileState.requestLease`.
    public func requestLease(_ wanted: LeaseState, holder: StateOwner? = nil, onBreak: @escaping LeaseBreakHandler) -> LeaseState {
        state.requestLease(holder: holder ?? owner, wanted: wanted, onBreak: onBreak)
    }

    /// Takes byte-range locks with Windows semantics (SMB LOCK), all or none; nil when
    /// granted, else the index of the request in the way (see `FileState.lockStacking`).
    /// `waiter` is parked until a lock of the file is released when one is in the way.
    /// `lockOwner` stands in for the open's owner (SMB opens sharing a lease key share the
    /// owner but not their locks).
    public func lockStacking(_ requests: [(kind: LockKind, range: ByteRange)], lockOwner: StateOwner? = nil, waiter: StateWaiter? = nil) -> Int? {
        state.lockStacking(requests, owner: lockOwner ?? owner, openID: id, waiter: waiter)
    }

    /// Releases exactly these stacked locks of this open; false when one is not held.
    public func unlockStacking(_ ranges: [ByteRange], lockOwner: StateOwner? = nil) -> Bool {
        state.unlockStacking(ranges, owner: lockOwner ?? owner)
    }

    /// Gives up this open's lease (its owner is the holder).
    public func releaseLease() {
        table.releaseLease(state.handle, holder: owner)
    }

    /// The answer of this open's owner to a break of its lease.
    public func acknowledgeBreak(to lease: LeaseState) {
        table.acknowledgeBreak(state.handle, holder: owner, to: lease)
    }

    /// Ends the open and releases the locks taken through it (leases stay until released).
    /// Returns whether it was the last open of a file whose delete is pending: the caller
    /// removes the name then. A second close does nothing.
    @discardableResult
    public func close() -> Bool {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return false }
        return table.close(id: id, handle: state.handle)
    }
}
