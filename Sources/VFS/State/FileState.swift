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
    }

    struct LeaseRecord {
        var holder: StateOwner
        var state: LeaseState
        /// Set while a break the holder has not answered is outstanding.
        var breakingTo: LeaseState?
        var onBreak: LeaseBreakHandler
    }

    struct Contents {
        var opens: [OpenRecord] = []
        var locks: [LockRecord] = []
        var leases: [LeaseRecord] = []

        var isEmpty: Bool { opens.isEmpty && locks.isEmpty && leases.isEmpty }
    }

    init(handle: FileHandle) {
        self.handle = handle
    }

    // MARK: Opens (called by FileStateTable with its shard locked)

    /// Registers an open unless a share mode or another holder's lease stands in the way.
    /// Returns the breaks to send (outside every lock) when it must wait.
    func open(id: UInt64, owner: StateOwner, access: ShareMode, deny: ShareMode) -> (opened: Bool, shareDenied: Bool, breaks: [LeaseBreak], notify: [(LeaseBreakHandler, LeaseBreak)]) {
        contents.withLock { contents in
            if contents.opens.contains(where: { !$0.access.isDisjoint(with: deny) || !$0.deny.isDisjoint(with: access) }) {
                return (false, true, [], [])
            }
            var breaks: [LeaseBreak] = []
            var notify: [(LeaseBreakHandler, LeaseBreak)] = []
            for index in contents.leases.indices where contents.leases[index].holder != owner {
                let lease = contents.leases[index]
                let target = Self.breakTarget(lease.state, forOpenWith: access)
                guard target != lease.state else { continue }
                if let pending = lease.breakingTo {
                    breaks.append(LeaseBreak(file: handle, holder: lease.holder, from: lease.state, to: pending))
                } else {
                    let request = LeaseBreak(file: handle, holder: lease.holder, from: lease.state, to: target)
                    contents.leases[index].breakingTo = target
                    breaks.append(request)
                    notify.append((lease.onBreak, request))
                }
            }
            if !breaks.isEmpty { return (false, false, breaks, notify) }
            contents.opens.append(OpenRecord(id: id, owner: owner, access: access, deny: deny))
            return (true, false, [], [])
        }
    }

    /// What a lease must drop to for another holder's open with `access`: a writer leaves no
    /// read or write caching; a reader leaves no write caching.
    static func breakTarget(_ state: LeaseState, forOpenWith access: ShareMode) -> LeaseState {
        if access.contains(.write) || access.contains(.delete) { return state.subtracting([.read, .write]) }
        return state.subtracting(.write)
    }

    /// Drops an open and the locks taken through it; true when nothing is left.
    func close(id: UInt64) -> Bool {
        contents.withLock { contents in
            contents.opens.removeAll { $0.id == id }
            let before = contents.locks.count
            contents.locks.removeAll { $0.openID == id }
            if contents.locks.count != before { lockCount.store(contents.locks.count, ordering: .relaxed) }
            return contents.isEmpty
        }
    }

    var isEmpty: Bool { contents.withLock { $0.isEmpty } }

    /// The opens' owners, access and deny modes (diagnostics, tests).
    public var opens: [(owner: StateOwner, access: ShareMode, deny: ShareMode)] {
        contents.withLock { contents in contents.opens.map { ($0.owner, $0.access, $0.deny) } }
    }

    // MARK: Byte-range locks

    /// Locks `range` for `owner` through the open `openID`, or names the lock in the way.
    func lock(_ kind: LockKind, _ range: ByteRange, owner: StateOwner, openID: UInt64) -> LockOutcome {
        guard !range.isEmpty else { return .granted }
        return contents.withLock { contents in
            for record in contents.locks where record.lock.conflicts(with: owner, kind, range) {
                return .denied(record.lock)
            }
            Self.carve(range, owner: owner, from: &contents.locks)
            contents.locks.append(LockRecord(lock: ByteRangeLock(owner: owner, kind: kind, range: range), openID: openID))
            Self.merge(owner: owner, kind: kind, openID: openID, in: &contents.locks)
            lockCount.store(contents.locks.count, ordering: .relaxed)
            return .granted
        }
    }

    /// Releases whatever `owner` holds in `range`, splitting locks that reach past it.
    public func unlock(_ range: ByteRange, owner: StateOwner) {
        guard !range.isEmpty else { return }
        contents.withLock { contents in
            Self.carve(range, owner: owner, from: &contents.locks)
            lockCount.store(contents.locks.count, ordering: .relaxed)
        }
    }

    /// The lock that would stop `kind` on `range` by `owner` (NFSv4 LOCKT), or nil.
    public func testLock(_ kind: LockKind, _ range: ByteRange, owner: StateOwner) -> ByteRangeLock? {
        guard !range.isEmpty, lockCount.load(ordering: .relaxed) > 0 else { return nil }
        return contents.withLock { contents in
            contents.locks.first { $0.lock.conflicts(with: owner, kind, range) }?.lock
        }
    }

    /// The per-I/O check for protocols with mandatory locks (SMB): the lock of another owner
    /// that stops a read (`write: false`) or write of `range`, or nil. One relaxed load when
    /// the file has no locks.
    @inline(__always)
    public func conflictingLock(_ range: ByteRange, write: Bool, owner: StateOwner) -> ByteRangeLock? {
        guard lockCount.load(ordering: .relaxed) > 0 else { return nil }
        return testLock(write ? .exclusive : .shared, range, owner: owner)
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

    /// Removes `owner`'s coverage of `range`: locks inside it go, locks across its edges are cut.
    private static func carve(_ range: ByteRange, owner: StateOwner, from locks: inout [LockRecord]) {
        var index = 0
        while index < locks.count {
            let record = locks[index]
            guard record.lock.owner == owner, record.lock.range.overlaps(range) else {
                index += 1
                continue
            }
            locks.remove(at: index)
            let old = record.lock.range
            if old.start < range.start {
                var left = record
                left.lock.range = ByteRange(start: old.start, end: range.start)
                locks.insert(left, at: index)
                index += 1
            }
            if range.end < old.end {
                var right = record
                right.lock.range = ByteRange(start: range.end, end: old.end)
                locks.insert(right, at: index)
                index += 1
            }
        }
    }

    /// Joins `owner`'s locks of `kind` (taken through one open) that touch or overlap.
    private static func merge(owner: StateOwner, kind: LockKind, openID: UInt64, in locks: inout [LockRecord]) {
        var mine = locks.indices.filter { locks[$0].lock.owner == owner && locks[$0].lock.kind == kind && locks[$0].openID == openID }
        guard mine.count > 1 else { return }
        mine.sort { locks[$0].lock.range.start < locks[$1].lock.range.start }
        var merged: [ByteRange] = []
        for index in mine {
            let range = locks[index].lock.range
            if let last = merged.last, range.start <= last.end {
                merged[merged.count - 1].end = max(last.end, range.end)
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
    /// holder writing (by open or lease); write caching needs no other holder at all; handle
    /// caching comes only with read caching. Replaces the holder's earlier lease; returns
    /// what was granted (possibly nothing, and then no lease is kept).
    public func requestLease(holder: StateOwner, wanted: LeaseState, onBreak: @escaping LeaseBreakHandler) -> LeaseState {
        contents.withLock { contents in
            if let own = contents.leases.first(where: { $0.holder == holder }), own.breakingTo != nil { return own.state }
            let otherOpens = contents.opens.filter { $0.owner != holder }
            let otherLeases = contents.leases.filter { $0.holder != holder }
            var granted = wanted
            if otherOpens.contains(where: { !$0.access.isDisjoint(with: [.write, .delete]) })
                || otherLeases.contains(where: { $0.state.contains(.write) }) {
                granted = []
            }
            if !otherOpens.isEmpty || !otherLeases.isEmpty { granted.remove(.write) }
            if !granted.contains(.read) { granted = [] }
            contents.leases.removeAll { $0.holder == holder }
            if !granted.isEmpty {
                contents.leases.append(LeaseRecord(holder: holder, state: granted, breakingTo: nil, onBreak: onBreak))
            }
            return granted
        }
    }

    /// The lease `holder` has, and the state a break in progress asked it to go to.
    public func lease(of holder: StateOwner) -> (state: LeaseState, breakingTo: LeaseState?)? {
        contents.withLock { contents in
            contents.leases.first { $0.holder == holder }.map { ($0.state, $0.breakingTo) }
        }
    }

    /// The holder's answer to a break: it now caches only `state` (at most what was asked
    /// for; nothing drops the lease). True when nothing is left on the file.
    func acknowledgeBreak(holder: StateOwner, to state: LeaseState) -> Bool {
        contents.withLock { contents in
            guard let index = contents.leases.firstIndex(where: { $0.holder == holder }) else { return contents.isEmpty }
            let allowed = contents.leases[index].breakingTo ?? contents.leases[index].state
            let kept = state.intersection(allowed)
            if kept.isEmpty || !kept.contains(.read) {
                contents.leases.remove(at: index)
            } else {
                contents.leases[index].state = kept
                contents.leases[index].breakingTo = nil
            }
            return contents.isEmpty
        }
    }

    /// Drops `holder`'s lease (returned, or revoked after an unanswered break). True when
    /// nothing is left on the file.
    func releaseLease(holder: StateOwner) -> Bool {
        contents.withLock { contents in
            contents.leases.removeAll { $0.holder == holder }
            return contents.isEmpty
        }
    }
}
