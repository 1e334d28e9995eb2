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
    /// modes conflict; told to wait when other holders' leases must be broken first (their
    /// break handlers have been called, outside every lock, before this returns).
    public func open(_ handle: FileHandle, owner: StateOwner, access: ShareMode, deny: ShareMode = []) -> OpenOutcome {
        let id = nextOpenID.wrappingAdd(1, ordering: .relaxed).oldValue
        let shard = shard(handle)
        let (state, result) = shard.files.withLock { files -> (FileState, (opened: Bool, shareDenied: Bool, breaks: [LeaseBreak], notify: [(LeaseBreakHandler, LeaseBreak)])) in
            let state: FileState
            if let existing = files[handle] {
                state = existing
            } else {
                state = FileState(handle: handle)
                files[handle] = state
            }
            let result = state.open(id: id, owner: owner, access: access, deny: deny)
            if !result.opened && state.isEmpty { files[handle] = nil }
            return (state, result)
        }
        for (handler, request) in result.notify { handler(request) }
        if result.opened { return .opened(OpenFile(id: id, state: state, table: self, owner: owner, access: access, deny: deny)) }
        if result.shareDenied { return .shareDenied }
        return .waitForLeaseBreak(result.breaks)
    }

    /// The state of `handle` if it has any (diagnostics, tests; protocols use `OpenFile.state`).
    public func state(of handle: FileHandle) -> FileState? {
        shard(handle).files.withLock { $0[handle] }
    }

    /// Files with state.
    public var count: Int {
        shards.reduce(0) { sum, shard in sum + shard.files.withLock { $0.count } }
    }

    /// The holder's answer to a lease break (it now caches `state`; nothing, or a state without
    /// read caching, gives the lease up). Opens waiting on the break can be retried.
    public func acknowledgeBreak(_ handle: FileHandle, holder: StateOwner, to state: LeaseState) {
        update(handle) { $0.acknowledgeBreak(holder: holder, to: state) }
    }

    /// Gives up (NFSv4 DELEGRETURN, SMB close of the last handle of a lease) or revokes (a
    /// break not answered in time) `holder`'s lease on `handle`.
    public func releaseLease(_ handle: FileHandle, holder: StateOwner) {
        update(handle) { $0.releaseLease(holder: holder) }
    }

    func close(id: UInt64, handle: FileHandle) {
        update(handle) { $0.close(id: id) }
    }

    /// Runs `body` on the file's state with its shard locked; drops the entry when `body`
    /// says nothing is left.
    private func update(_ handle: FileHandle, _ body: (FileState) -> Bool) {
        shard(handle).files.withLock { files in
            guard let state = files[handle] else { return }
            if body(state) { files[handle] = nil }
        }
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
        if !closed.load(ordering: .acquiring) { table.close(id: id, handle: state.handle) }
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

    /// Ends the open and releases the locks taken through it (leases stay until released).
    /// A second close does nothing.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        table.close(id: id, handle: state.handle)
    }
}
