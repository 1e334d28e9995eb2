import Runtime
import Synchronization

/// The shared state of one file: its opens with their share modes, its byte-range locks and
/// its leases (SMB leases, NFSv4 delegations), in one place so NFSv4 and SMB see each other's
/// state: a conflicting open or lock from either protocol is refused, or waits for a lease
/// break. Protocol-neutral: owners are opaque `StateOwner`s, results are outcomes a protocol
/// maps to its own status codes.
///
/// Reached from an `OpenFile`, never looked up per I/O (lessons: a per-I/O lookup in a shared
/// lease table cost ~12% CPU). Its mutex is taken by opens, closes, locks and leases of this
/// one file; the per-I/O lock check (`conflictingLock`) takes it only while the file has
/// byte-range locks at all (one relaxed load otherwise).
///
/// Lock semantics are POSIX/NFSv4 style: an owner's locks never conflict with each other; a
/// new lock replaces the owner's own locks on the bytes it covers (so upgrades, downgrades and
/// unlocks split ranges) and adjacent locks of one kind merge.
public final class FileState: @unchecked Sendable {
    public let handle: FileHandle
    private let contents = Mutex(Contents())
    /// Byte-range locks held; written under the mutex, read without it by `conflictingLock`.
    private let lockCount = Atomic<Int>(0)
    /// Leases held; written under the mutex, read without it by writers (`breakReadCaching`).
    private let leaseCount = Atomic<Int>(0)
    /// The table's count of files with leases (`FileStateTable.recallLeases` skips its lookup
    /// while it is zero).
    private let census: LeaseCensus

    /// How long a holder has to answer a lease break before the break is forced on it
    /// (MS-SMB2 §3.3.2.1's oplock break acknowledgment timer: 35 s).
    public static let breakTimeout: UInt64 = 35_000_000_000

    struct OpenRecord {
        var id: UInt64
        var owner: StateOwner
        var access: ShareMode
        var deny: ShareMode
    }

    struct LockRecord {
        var lock: ByteRangeLock
        /// The open it was taken through (closing that open releases it).
        var openID: UInt64
        /// Taken with Windows semantics (`lockStacking`): kept as its own record, released
        /// only by an exact unlock, and a shared one stops its own open's writes.
        var stacking = false
    }

    struct LeaseRecord {
        var holder: StateOwner
        var state: LeaseState
        /// Set while a break the holder has not answered is outstanding.
        var breakingTo: LeaseState?
        /// When that break was sent (monotonic ns).
        var breakSentAt: UInt64 = 0
        var onBreak: LeaseBreakHandler
    }

    struct Contents {
        var opens: [OpenRecord] = []
        var locks: [LockRecord] = []
        var leases: [LeaseRecord] = []
        /// Delete on last close is pending (SMB FileDispositionInformation, delete-on-close):
        /// new opens are refused until the last open goes.
        var deletePending = false
        /// Blocking locks parked until a lock is released.
        var lockWaiters: [StateWaiter] = []
        /// Opens parked until a lease break is answered.
        var breakWaiters: [StateWaiter] = []

        var isEmpty: Bool { opens.isEmpty && locks.isEmpty && leases.isEmpty }
    }

    /// What an attempt to open found, for the table to act on outside the lock.
    struct OpenAttempt {
        enum Result { case opened, shareDenied, deletePending, mustWait }
        var result: Result
        var breaks: [LeaseBreak] = []
        var notify: [(LeaseBreakHandler, LeaseBreak)] = []
    }

    init(handle: FileHandle, census: LeaseCensus) {
        self.handle = handle
        self.census = census
    }

    // MARK: Opens (called by FileStateTable with its shard locked)

    /// Registers an open unless a share mode, a pending delete or another holder's lease
    /// stands in the way. Other holders' leases lose `breaking` first; when the open's share
    /// mode conflicts with an open whose holder caches handles, that holder is asked to give
    /// up handle caching (it may close) before the open is refused (MS-FSA §2.1.5.1.2.1, the
    /// batch oplock and lease H semantics). An open without access takes no part in share
    /// modes (SMB's attributes-only opens). `waiter`, when given, is registered to be woken
    /// when the breaks are answered.
    func open(id: UInt64, owner: StateOwner, access: ShareMode, deny: ShareMode, breaking: LeaseState, waiter: StateWaiter?) -> OpenAttempt {
        let now = monotonicNanoseconds()
        return contents.withLock { contents in
            if contents.deletePending && !contents.opens.isEmpty { return OpenAttempt(result: .deletePending) }
            expireBreaks(&contents, now: now)
            let conflicting = access.isEmpty ? [] : contents.opens.filter {
                !$0.access.isEmpty && (!$0.access.isDisjoint(with: deny) || !$0.deny.isDisjoint(with: access))
            }
            var attempt = OpenAttempt(result: .opened)
            for index in contents.leases.indices where contents.leases[index].holder != owner {
                let lease = contents.leases[index]
                var drop: LeaseState = conflicting.isEmpty ? breaking : []
                if lease.state.contains(.handle), conflicting.contains(where: { $0.owner == lease.holder }) { drop = breaking.union(.handle) }
                let target = lease.state.subtracting(drop)
                guard target != lease.state else { continue }
                if let pending = lease.breakingTo {
                    attempt.breaks.append(LeaseBreak(file: handle, holder: lease.holder, from: lease.state, to: pending))
                } else {
                    let request = LeaseBreak(file: handle, holder: lease.holder, from: lease.state, to: target)
                    contents.leases[index].breakingTo = target
                    contents.leases[index].breakSentAt = now
                    attempt.breaks.append(request)
                    attempt.notify.append((lease.onBreak, request))
                }
            }
            if !attempt.breaks.isEmpty {
                if let waiter { contents.breakWaiters.append(waiter) }
                attempt.result = .mustWait
                return attempt
            }
            if !conflicting.isEmpty { return OpenAttempt(result: .shareDenied) }
            contents.opens.append(OpenRecord(id: id, owner: owner, access: access, deny: deny))
            return attempt
        }
    }

    /// What an open with `access` takes from other holders' leases unless told otherwise: a
    /// writer leaves no read or write caching; a reader leaves no write caching (the NFSv4
    /// delegation rules).
    static func defaultBreaking(forOpenWith access: ShareMode) -> LeaseState {
        if access.contains(.write) || access.contains(.delete) { return [.read, .write] }
        return access.isEmpty ? [] : [.write]
    }

    /// Drops an open and the locks taken through it. Returns whether nothing is left, whether
    /// this was the last open of a file whose delete is pending (the caller removes the
    /// name), and the parked waiters to wake.
    func close(id: UInt64) -> (empty: Bool, deleteNow: Bool, woken: [StateWaiter]) {
        contents.withLock { contents in
            guard let index = contents.opens.firstIndex(where: { $0.id == id }) else { return (contents.isEmpty, false, []) }
            contents.opens.remove(at: index)
            let before = contents.locks.count
            contents.locks.removeAll { $0.openID == id }
            if contents.locks.count != before { lockCount.store(contents.locks.count, ordering: .relaxed) }
            // Parked opens and locks look again: a blocked lock through this very open ends
            // with it (SMB answers RANGE_NOT_LOCKED).
            let woken = Self.take(&contents.breakWaiters) + Self.take(&contents.lockWaiters)
            var deleteNow = false
            if contents.opens.isEmpty {
                deleteNow = contents.deletePending
                contents.deletePending = false
            }
            return (contents.isEmpty, deleteNow, woken)
        }
    }

    var isEmpty: Bool { contents.withLock { $0.isEmpty } }

    /// The opens' owners, access and deny modes (SMB's rename checks, diagnostics, tests).
    public var opens: [(owner: StateOwner, access: ShareMode, deny: ShareMode)] {
        contents.withLock { contents in contents.opens.map { ($0.owner, $0.access, $0.deny) } }
    }

    /// Whether the file goes when its last open closes; new opens are refused meanwhile.
    public var deletePending: Bool {
        get { contents.withLock { $0.deletePending } }
        set { contents.withLock { $0.deletePending = newValue } }
    }

    // MARK: Byte-range locks

    /// Locks `range` for `owner` through the open `openID` (POSIX/NFSv4 semantics), or names
    /// the lock in the way.
    func lock(_ kind: LockKind, _ range: ByteRange, owner: StateOwner, openID: UInt64) -> LockOutcome {
        guard !range.isEmpty else { return .granted }
        let (outcome, woken) = contents.withLock { contents -> (LockOutcome, [StateWaiter]) in
            for record in contents.locks where record.lock.conflicts(with: owner, kind, range) {
                return (.denied(record.lock), [])
            }
            // Replacing the owner's own locks there may release bytes (a downgrade).
            let woken = Self.carve(range, owner: owner, from: &contents.locks) ? Self.take(&contents.lockWaiters) : []
            contents.locks.append(LockRecord(lock: ByteRangeLock(owner: owner, kind: kind, range: range), openID: openID))
            Self.merge(owner: owner, kind: kind, openID: openID, in: &contents.locks)
            lockCount.store(contents.locks.count, ordering: .relaxed)
            return (.granted, woken)
        }
        Self.wake(woken)
        return outcome
    }

    /// Takes every range of `requests` for `owner` through open `openID` with Windows
    /// semantics (MS-FSA §2.1.5.7), all or none: each lock is its own record (ranges stack,
    /// zero-length ranges count), an exclusive request conflicts with any overlapping lock,
    /// the owner's own included, and a shared one with other owners' exclusive locks. Returns
    /// nil when granted, else the index of the first request in the way; `waiter`, when
    /// given, is then parked until some lock of the file is released.
    func lockStacking(_ requests: [(kind: LockKind, range: ByteRange)], owner: StateOwner, openID: UInt64, waiter: StateWaiter?) -> Int? {
        contents.withLock { contents in
            var taken: [LockRecord] = []
            for (index, request) in requests.enumerated() {
                let inTheWay: (LockRecord) -> Bool = { record in
                    record.lock.range.overlaps(request.range)
                        && (request.kind == .exclusive || record.lock.kind == .exclusive && record.lock.owner != owner)
                }
                if contents.locks.contains(where: inTheWay) || taken.contains(where: inTheWay) {
                    if let waiter { contents.lockWaiters.append(waiter) }
                    return index
                }
                taken.append(LockRecord(lock: ByteRangeLock(owner: owner, kind: request.kind, range: request.range), openID: openID, stacking: true))
            }
            contents.locks += taken
            lockCount.store(contents.locks.count, ordering: .relaxed)
            return nil
        }
    }

    /// Releases exactly the stacked locks `ranges` of `owner` (of two on one range, the
    /// exclusive first); false, and nothing released, when one of them is not held.
    func unlockStacking(_ ranges: [ByteRange], owner: StateOwner) -> Bool {
        let woken: [StateWaiter]? = contents.withLock { contents in
            var remaining = contents.locks
            for range in ranges {
                let matches: (LockRecord) -> Bool = { $0.stacking && $0.lock.owner == owner && $0.lock.range == range }
                guard let index = remaining.firstIndex(where: { matches($0) && $0.lock.kind == .exclusive }) ?? remaining.firstIndex(where: matches)
                else { return nil }
                remaining.remove(at: index)
            }
            contents.locks = remaining
            lockCount.store(remaining.count, ordering: .relaxed)
            return Self.take(&contents.lockWaiters)
        }
        guard let woken else { return false }
        Self.wake(woken)
        return true
    }

    /// Forgets a parked lock request (cancelled): it no longer waits for a release.
    public func cancelWait(_ waiter: StateWaiter) {
        contents.withLock { contents in
            contents.lockWaiters.removeAll { $0 === waiter }
            contents.breakWaiters.removeAll { $0 === waiter }
        }
        waiter.wake()
    }

    /// Releases whatever `owner` holds in `range`, splitting locks that reach past it.
    public func unlock(_ range: ByteRange, owner: StateOwner) {
        guard !range.isEmpty else { return }
        let woken = contents.withLock { contents -> [StateWaiter] in
            guard Self.carve(range, owner: owner, from: &contents.locks) else { return [] }
            lockCount.store(contents.locks.count, ordering: .relaxed)
            return Self.take(&contents.lockWaiters)
        }
        Self.wake(woken)
    }

    /// The lock that would stop `kind` on `range` by `owner` (NFSv4 LOCKT), or nil.
    public func testLock(_ kind: LockKind, _ range: ByteRange, owner: StateOwner) -> ByteRangeLock? {
        guard !range.isEmpty, lockCount.load(ordering: .relaxed) > 0 else { return nil }
        return contents.withLock { contents in
            contents.locks.first { $0.lock.conflicts(with: owner, kind, range) }?.lock
        }
    }

    /// The per-I/O check (SMB's mandatory locks, NFSv4 READ and WRITE): the lock that stops
    /// `owner` reading (`write: false`) or writing `range`, or nil: another owner's exclusive
    /// lock stops both, another owner's shared lock stops writes, and so does the owner's own
    /// stacked shared lock (Windows). One relaxed load when the file has no locks.
    @inline(__always)
    public func conflictingLock(_ range: ByteRange, write: Bool, owner: StateOwner) -> ByteRangeLock? {
        guard !range.isEmpty, lockCount.load(ordering: .relaxed) > 0 else { return nil }
        return contents.withLock { contents in
            contents.locks.first { record in
                guard record.lock.range.overlaps(range) else { return false }
                if record.lock.owner != owner { return write || record.lock.kind == .exclusive }
                return write && record.stacking && record.lock.kind == .shared
            }?.lock
        }
    }

    /// Every lock held, sorted by owner and start (diagnostics, tests).
    public var locks: [ByteRangeLock] {
        contents.withLock { contents in
            contents.locks.map(\.lock).sorted { ($0.owner.client, $0.owner.owner, $0.range.start) < ($1.owner.client, $1.owner.owner, $1.range.start) }
        }
    }

    /// Whether locks taken through open `openID` are held.
    func holdsLocks(openID: UInt64) -> Bool {
        guard lockCount.load(ordering: .relaxed) > 0 else { return false }
        return contents.withLock { contents in contents.locks.contains { $0.openID == openID } }
    }

    private static func take(_ waiters: inout [StateWaiter]) -> [StateWaiter] {
        defer { waiters.removeAll() }
        return waiters
    }

    static func wake(_ waiters: [StateWaiter]) {
        for waiter in waiters { waiter.wake() }
    }

    /// Removes `owner`'s coverage of `range`: locks inside it go, locks across its edges are cut.
    /// Returns whether it changed anything. Stacked (Windows) locks are left alone: only an
    /// exact unlock releases them.
    @discardableResult
    private static func carve(_ range: ByteRange, owner: StateOwner, from locks: inout [LockRecord]) -> Bool {
        var index = 0
        var changed = false
        while index < locks.count {
            let record = locks[index]
            guard record.lock.owner == owner, !record.stacking, record.lock.range.overlaps(range) else {
                index += 1
                continue
            }
            changed = true
            locks.remove(at: index)
            let old = record.lock.range
            if old.start < range.start {
                var left = record
                left.lock.range = ByteRange(start: old.start, end: range.start)
                locks.insert(left, at: index)
                index += 1
            }
            if old.endsBeyond(range) {
                var right = record
                right.lock.range = ByteRange(start: range.end, end: old.end, throughLastByte: old.throughLastByte)
                locks.insert(right, at: index)
                index += 1
            }
        }
        return changed
    }

    /// Joins `owner`'s locks of `kind` (taken through one open) that touch or overlap.
    private static func merge(owner: StateOwner, kind: LockKind, openID: UInt64, in locks: inout [LockRecord]) {
        var mine = locks.indices.filter { !locks[$0].stacking && locks[$0].lock.owner == owner && locks[$0].lock.kind == kind && locks[$0].openID == openID }
        guard mine.count > 1 else { return }
        mine.sort { locks[$0].lock.range.start < locks[$1].lock.range.start }
        var merged: [ByteRange] = []
        for index in mine {
            let range = locks[index].lock.range
            if let last = merged.last, range.start <= last.end {
                if range.endsBeyond(last) { merged[merged.count - 1] = ByteRange(start: last.start, end: range.end, throughLastByte: range.throughLastByte) }
            } else {
                merged.append(range)
            }
        }
        guard merged.count < mine.count else { return }
        let template = locks[mine[0]]
        for index in mine.sorted(by: >) { locks.remove(at: index) }
        for range in merged {
            var record = template
            record.lock.range = range
            locks.append(record)
        }
    }

    // MARK: Leases

    /// Grants `holder` as much of `wanted` as the other holders' opens and leases allow (an
    /// open by the holder itself never counts against it): read caching needs no other
    /// holder caching writes (other writers are fine: every write breaks read caching, see
    /// `breakReadCaching`, as MS-FSA does for level II oplocks and R leases); write caching
    /// needs no other holder at all (opens without access, SMB's attributes-only opens, do not
    /// count); handle caching comes only with read caching. Replaces
    /// the holder's earlier lease; returns what was granted (possibly nothing, and then no
    /// lease is kept).
    public func requestLease(holder: StateOwner, wanted: LeaseState, onBreak: @escaping LeaseBreakHandler) -> LeaseState {
        contents.withLock { contents in
            if let own = contents.leases.first(where: { $0.holder == holder }), own.breakingTo != nil { return own.state }
            let otherOpens = contents.opens.contains { $0.owner != holder && !$0.access.isEmpty }
            let otherLeases = contents.leases.filter { $0.holder != holder }
            var granted = wanted
            if otherLeases.contains(where: { $0.state.contains(.write) || $0.breakingTo != nil }) { granted = [] }
            if otherOpens || !otherLeases.isEmpty { granted.remove(.write) }
            if !granted.contains(.read) { granted = [] }
            contents.leases.removeAll { $0.holder == holder }
            if !granted.isEmpty {
                contents.leases.append(LeaseRecord(holder: holder, state: granted, breakingTo: nil, onBreak: onBreak))
            }
            recountLeases(contents)
            return granted
        }
    }

    /// The lease `holder` has, and the state a break in progress asked it to go to.
    public func lease(of holder: StateOwner) -> (state: LeaseState, breakingTo: LeaseState?)? {
        contents.withLock { contents in
            contents.leases.first { $0.holder == holder }.map { ($0.state, $0.breakingTo) }
        }
    }

    /// A write is about to change the file (through `writer`'s open, or without an open when
    /// nil): every lease caching reads only goes, the writer's own too unless `sparingOwn` (a
    /// level II oplock does not survive its holder's write, an SMB lease does, MS-FSA
    /// §2.1.5.3), and other holders lose write caching as well. Holders are told through their break handlers (outside the lock). Returns
    /// whether breaks are outstanding; `waiter`, when given, is then parked until they are
    /// answered. One relaxed load when the file has no leases.
    @discardableResult
    public func breakReadCaching(by writer: StateOwner?, sparingOwn: Bool = false, waiter: StateWaiter? = nil) -> Bool {
        guard leaseCount.load(ordering: .relaxed) > 0 else { return false }
        let now = monotonicNanoseconds()
        let (pending, notify) = contents.withLock { contents -> (Bool, [(LeaseBreakHandler, LeaseBreak)]) in
            expireBreaks(&contents, now: now)
            var pending = false
            var notify: [(LeaseBreakHandler, LeaseBreak)] = []
            for index in contents.leases.indices {
                let lease = contents.leases[index]
                guard lease.holder != writer || !lease.state.contains(.write) && !sparingOwn else { continue }
                pending = true
                guard lease.breakingTo == nil else { continue }
                contents.leases[index].breakingTo = []
                contents.leases[index].breakSentAt = now
                notify.append((lease.onBreak, LeaseBreak(file: handle, holder: lease.holder, from: lease.state, to: [])))
            }
            if pending, let waiter { contents.breakWaiters.append(waiter) }
            return (pending, notify)
        }
        for (handler, request) in notify { handler(request) }
        return pending
    }

    /// Whether any lease is held (one relaxed load).
    public var hasLeases: Bool { leaseCount.load(ordering: .relaxed) > 0 }

    /// The holder's answer to a break: it now caches only `state` (at most what was asked
    /// for; nothing drops the lease). Returns whether nothing is left on the file, and the
    /// opens parked on the break.
    func acknowledgeBreak(holder: StateOwner, to state: LeaseState) -> (empty: Bool, woken: [StateWaiter]) {
        contents.withLock { contents in
            guard let index = contents.leases.firstIndex(where: { $0.holder == holder }) else { return (contents.isEmpty, []) }
            let allowed = contents.leases[index].breakingTo ?? contents.leases[index].state
            let kept = state.intersection(allowed)
            if kept.isEmpty || !kept.contains(.read) {
                contents.leases.remove(at: index)
            } else {
                contents.leases[index].state = kept
                contents.leases[index].breakingTo = nil
            }
            recountLeases(contents)
            return (contents.isEmpty, Self.take(&contents.breakWaiters))
        }
    }

    /// Drops `holder`'s lease (returned, or revoked after an unanswered break). Returns
    /// whether nothing is left on the file, and the opens parked on a break.
    func releaseLease(holder: StateOwner) -> (empty: Bool, woken: [StateWaiter]) {
        contents.withLock { contents in
            let before = contents.leases.count
            contents.leases.removeAll { $0.holder == holder }
            guard contents.leases.count != before else { return (contents.isEmpty, []) }
            recountLeases(contents)
            return (contents.isEmpty, Self.take(&contents.breakWaiters))
        }
    }

    /// Forces breaks their holders left unanswered for `breakTimeout` (MS-SMB2 §3.3.4.6: the
    /// holder is treated as having acknowledged the level it was offered).
    private func expireBreaks(_ contents: inout Contents, now: UInt64) {
        var changed = false
        var index = 0
        while index < contents.leases.count {
            let lease = contents.leases[index]
            guard let target = lease.breakingTo, now &- lease.breakSentAt >= Self.breakTimeout else {
                index += 1
                continue
            }
            changed = true
            if target.contains(.read) {
                contents.leases[index].state = target
                contents.leases[index].breakingTo = nil
                index += 1
            } else {
                contents.leases.remove(at: index)
            }
        }
        if changed { recountLeases(contents) }
    }

    /// Keeps `leaseCount` and the table's census in step with the leases held (under the mutex).
    private func recountLeases(_ contents: borrowing Contents) {
        let now = contents.leases.count
        let before = leaseCount.exchange(now, ordering: .relaxed)
        if before == 0 && now > 0 { census.files.add(1, ordering: .relaxed) }
        if before > 0 && now == 0 { census.files.subtract(1, ordering: .relaxed) }
    }
}

/// How many files have leases, across one table: zero lets the protocols without opens
/// (NFSv3, S3) skip looking for leases to recall on every change.
final class LeaseCensus: Sendable {
    let files = Atomic<Int>(0)
}
