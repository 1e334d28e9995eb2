import Runtime
import Synchronization
import VFS

/// Oplock levels (MS-SMB2 §2.2.13).
enum OplockLevel {
    static let none: UInt8 = 0
    static let levelII: UInt8 = 1
    static let exclusive: UInt8 = 8
    static let batch: UInt8 = 9
    static let lease: UInt8 = 0xFF
}

/// Share access bits (MS-SMB2 §2.2.13).
enum ShareAccess {
    static let read: UInt32 = 0x1
    static let write: UInt32 = 0x2
    static let delete: UInt32 = 0x4
}

/// One open of a file as every connection sees it.
struct SMBOpenRecord {
    let connection: SMBConnection
    let openID: UInt64
    let access: UInt32
    let shareAccess: UInt32
    var oplock: UInt8
    /// A break was sent and not yet acknowledged; the level the holder must go down to.
    var breakingTo: UInt8?
}

/// One byte-range lock.
struct SMBByteRangeLock {
    let connection: SMBConnection
    let openID: UInt64
    let offset: UInt64
    let length: UInt64
    let exclusive: Bool

    /// The last byte of a non-empty range; a range running past 2^64 ends there.
    static func last(_ offset: UInt64, _ length: UInt64) -> UInt64 {
        let (end, overflow) = offset.addingReportingOverflow(length - 1)
        return overflow ? UInt64.max : end
    }

    /// Whether two ranges collide. A zero-length range at X collides only with a range that
    /// starts before X and reaches X (smbtorture's zerobytelength table, as on Windows).
    func overlaps(_ offset: UInt64, _ length: UInt64) -> Bool {
        Self.rangesCollide(self.offset, self.length, offset, length)
    }

    static func rangesCollide(_ aOffset: UInt64, _ aLength: UInt64, _ bOffset: UInt64, _ bLength: UInt64) -> Bool {
        switch (aLength == 0, bLength == 0) {
        case (true, true):
            return false
        case (true, false):
            return bOffset < aOffset && last(bOffset, bLength) >= aOffset
        case (false, true):
            return aOffset < bOffset && last(aOffset, aLength) >= bOffset
        case (false, false):
            return bOffset <= last(aOffset, aLength) && aOffset <= last(bOffset, bLength)
        }
    }
}

/// Someone waiting for an oplock break to finish (acknowledged, closed or timed out).
final class SMBBreakWaiter: @unchecked Sendable {
    var continuation: CheckedContinuation<Void, Never>?
}

/// The shared state of one open file: its opens (with share access and oplocks), whether it
/// is to be deleted when the last open closes, and who waits for a break. Mutated only under
/// the table's lock; `levelIIHolders` is read without it on the WRITE path.
final class SMBFileState: @unchecked Sendable {
    let handle: FileHandle
    var opens: [SMBOpenRecord] = []
    var deleteOnClose = false
    var waiters: [SMBBreakWaiter] = []
    let levelIIHolders = Atomic<Int>(0)
    /// Byte-range locks (MS-FSA §2.1.5.7) and LOCK requests waiting for a range.
    var locks: [SMBByteRangeLock] = []
    var lockWaiters: [SMBBreakWaiter] = []
    /// Read without the table's lock by READ and WRITE: zero means no range check is needed.
    let lockCount = Atomic<Int>(0)

    init(handle: FileHandle) {
        self.handle = handle
    }
}

/// Share modes and oplocks of every open file, across all connections and loops (MS-FSA
/// §2.1.5.1.2 share access, MS-SMB2 §3.3.4.6 oplock breaks). Taken on CREATE and CLOSE, not on
/// READ or WRITE: those reach their file's state through the open they already hold.
///
/// This table lives in the SMB server until the VFS has its own shared lock/share/lease
/// table; then NFSv4 will see the same state.
final class SMBFileTable: Sendable {
    private let files = Mutex<[FileHandle: SMBFileState]>([:])
    /// How long a CREATE waits for an oplock holder to acknowledge a break (MS-SMB2: 35 s).
    static let breakTimeout: UInt64 = 35_000_000_000

    enum Decision {
        case granted(SMBFileState, UInt8)
        case refused(NTStatus)
        /// Send a break to `holder` and wait.
        case breakAndWait(SMBFileState, SMBOpenRecord, UInt8, SMBBreakWaiter)
        case wait(SMBFileState, SMBBreakWaiter)
    }

    /// Whether an open with `access`/`share` may coexist with `other` (MS-FSA §2.1.5.1.2).
    static func conflicts(access: UInt32, share: UInt32, with other: SMBOpenRecord) -> Bool {
        // An existing open without data or delete access takes no part (a "stat open").
        if other.access == 0 { return false }
        let readBits = SMBAccess.readData | SMBAccess.execute
        let writeBits = SMBAccess.writeData | SMBAccess.appendData
        if access & readBits != 0 && other.shareAccess & ShareAccess.read == 0 { return true }
        if access & writeBits != 0 && other.shareAccess & ShareAccess.write == 0 { return true }
        if access & SMBAccess.delete != 0 && other.shareAccess & ShareAccess.delete == 0 { return true }
        if other.access & readBits != 0 && share & ShareAccess.read == 0 { return true }
        if other.access & writeBits != 0 && share & ShareAccess.write == 0 { return true }
        if other.access & SMBAccess.delete != 0 && share & ShareAccess.delete == 0 { return true }
        return false
    }

    /// One attempt to add an open: granted (with the oplock level it gets), refused, or a
    /// break to wait for first.
    func tryAcquire(_ handle: FileHandle, connection: SMBConnection, openID: UInt64, access: UInt32, share: UInt32,
                    requestedOplock: UInt8, breakTo: UInt8, overwrites: Bool, isDirectory: Bool) -> Decision {
        files.withLock { files in
            let state = files[handle] ?? SMBFileState(handle: handle)
            if state.deleteOnClose && !state.opens.isEmpty { return .refused(.deletePending) }
            // Only opens that touch data or the name take part in share modes and break
            // oplocks (MS-FSA §2.1.5.1.2): an attributes-only open does neither.
            let relevant = SMBAccess.readData | SMBAccess.execute | SMBAccess.writeData | SMBAccess.appendData | SMBAccess.delete
            let dataAccess = access & relevant
            let sharingViolation = dataAccess != 0 && state.opens.contains { Self.conflicts(access: dataAccess, share: share, with: $0) }
            // Overwriting changes the data even without data access, so it breaks too.
            let exclusiveHolder = state.opens.first { $0.oplock >= OplockLevel.exclusive }
            if dataAccess != 0 || overwrites, let holder = exclusiveHolder {
                // A batch holder may close its handle when told, so it is asked first; an
                // exclusive holder's share mode is checked first (MS-FSA §2.1.5.1.2.1).
                if holder.oplock == OplockLevel.exclusive && sharingViolation { return .refused(.sharingViolation) }
                let waiter = SMBBreakWaiter()
                state.waiters.append(waiter)
                files[handle] = state
                if holder.breakingTo != nil { return .wait(state, waiter) }
                let index = state.opens.firstIndex { $0.connection === holder.connection && $0.openID == holder.openID }!
                state.opens[index].breakingTo = breakTo
                return .breakAndWait(state, holder, breakTo, waiter)
            }
            if sharingViolation { return .refused(.sharingViolation) }
            var level = OplockLevel.none
            if !isDirectory && requestedOplock != OplockLevel.none && requestedOplock != OplockLevel.lease {
                if state.opens.isEmpty {
                    level = requestedOplock >= OplockLevel.exclusive ? requestedOplock : OplockLevel.levelII
                } else if exclusiveHolder == nil {
                    level = OplockLevel.levelII
                }
            }
            state.opens.append(SMBOpenRecord(connection: connection, openID: openID, access: access & relevant, shareAccess: share,
                                             oplock: level, breakingTo: nil))
            if level == OplockLevel.levelII { state.levelIIHolders.add(1, ordering: .relaxed) }
            files[handle] = state
            return .granted(state, level)
        }
    }

    /// Removes an open; returns whether it was the file's last and the file is to be
    /// deleted (the caller removes the name), and wakes whoever waited on its oplock.
    func release(_ state: SMBFileState, connection: SMBConnection, openID: UInt64) -> Bool {
        let (deleteNow, waiters): (Bool, [SMBBreakWaiter]) = files.withLock { files in
            guard let index = state.opens.firstIndex(where: { $0.connection === connection && $0.openID == openID }) else { return (false, []) }
            let record = state.opens.remove(at: index)
            if record.oplock == OplockLevel.levelII { state.levelIIHolders.subtract(1, ordering: .relaxed) }
            let woken = record.breakingTo != nil || record.oplock >= OplockLevel.exclusive ? state.waiters : []
            if !woken.isEmpty { state.waiters.removeAll() }
            var last = false
            if state.opens.isEmpty {
                last = state.deleteOnClose
                if state.waiters.isEmpty { files[state.handle] = nil }
            }
            return (last, woken)
        }
        for waiter in waiters { waiter.continuation?.resume(); waiter.continuation = nil }
        return deleteNow
    }

    /// The holder acknowledged a break: its new level; false if no break was pending or the
    /// level is more than it was offered.
    func acknowledge(_ state: SMBFileState, connection: SMBConnection, openID: UInt64, level: UInt8) -> UInt8? {
        let (result, waiters): (UInt8?, [SMBBreakWaiter]) = files.withLock { _ in
            guard let index = state.opens.firstIndex(where: { $0.connection === connection && $0.openID == openID }),
                  let offered = state.opens[index].breakingTo else { return (nil, []) }
            if state.opens[index].oplock == OplockLevel.levelII { state.levelIIHolders.subtract(1, ordering: .relaxed) }
            let granted = level > offered ? nil : (level == OplockLevel.levelII ? OplockLevel.levelII : OplockLevel.none)
            state.opens[index].oplock = granted ?? OplockLevel.none
            state.opens[index].breakingTo = nil
            if state.opens[index].oplock == OplockLevel.levelII { state.levelIIHolders.add(1, ordering: .relaxed) }
            let woken = state.waiters
            state.waiters.removeAll()
            return (granted, woken)
        }
        for waiter in waiters { waiter.continuation?.resume(); waiter.continuation = nil }
        return result
    }

    /// A waiter gave up (35 s): the unanswered holder loses its oplock.
    func timeOut(_ state: SMBFileState, waiter: SMBBreakWaiter) {
        let continuation: CheckedContinuation<Void, Never>? = files.withLock { _ in
            guard let continuation = waiter.continuation else { return nil }
            waiter.continuation = nil
            state.waiters.removeAll { $0 === waiter }
            for index in state.opens.indices where state.opens[index].breakingTo != nil {
                if state.opens[index].oplock == OplockLevel.levelII { state.levelIIHolders.subtract(1, ordering: .relaxed) }
                state.opens[index].oplock = state.opens[index].breakingTo!
                state.opens[index].breakingTo = nil
                if state.opens[index].oplock == OplockLevel.levelII { state.levelIIHolders.add(1, ordering: .relaxed) }
            }
            return continuation
        }
        continuation?.resume()
    }

    /// Registers the continuation of a waiter (under the lock, so a wake-up cannot be lost).
    func park(_ waiter: SMBBreakWaiter, _ continuation: CheckedContinuation<Void, Never>, state: SMBFileState) {
        let wakeNow: Bool = files.withLock { _ in
            if state.waiters.contains(where: { $0 === waiter }) {
                waiter.continuation = continuation
                return false
            }
            return true
        }
        if wakeNow { continuation.resume() }
    }

    func state(for handle: FileHandle) -> SMBFileState? {
        files.withLock { $0[handle] }
    }

    /// Every level II holder loses its oplock (a write changed the file; the writer's own
    /// level II goes too, as on Windows and Samba); returns who must be told.
    func breakLevelII(_ state: SMBFileState, except connection: SMBConnection, openID: UInt64) -> [SMBOpenRecord] {
        files.withLock { _ in
            var told: [SMBOpenRecord] = []
            for index in state.opens.indices where state.opens[index].oplock == OplockLevel.levelII {
                state.opens[index].oplock = OplockLevel.none
                state.levelIIHolders.subtract(1, ordering: .relaxed)
                told.append(state.opens[index])
            }
            return told
        }
    }

    /// Whether some open of `handle` (a directory) was granted DELETE: Windows and Samba then
    /// refuse to rename entries out of it.
    func openedForDelete(_ handle: FileHandle) -> Bool {
        files.withLock { files in
            files[handle]?.opens.contains { $0.access & SMBAccess.delete != 0 } ?? false
        }
    }

    // MARK: Byte-range locks

    struct LockRequest {
        let offset: UInt64
        let length: UInt64
        let exclusive: Bool
    }

    /// Takes all `requests` for one open, or none: returns the index of the first that
    /// conflicts (with anyone's lock, the same open's included, as on Windows).
    func lock(_ state: SMBFileState, connection: SMBConnection, openID: UInt64, _ requests: [LockRequest]) -> Int? {
        files.withLock { _ in
            var taken: [SMBByteRangeLock] = []
            for (index, request) in requests.enumerated() {
                // MS-FSA §2.1.5.7: an exclusive request conflicts with any overlapping lock; a
                // shared one only with another open's exclusive lock.
                let conflict = (state.locks + taken).contains { existing in
                    guard existing.overlaps(request.offset, request.length) else { return false }
                    let own = existing.connection === connection && existing.openID == openID
                    return request.exclusive || (existing.exclusive && !own)
                }
                if conflict { return index }
                taken.append(SMBByteRangeLock(connection: connection, openID: openID, offset: request.offset, length: request.length,
                                              exclusive: request.exclusive))
            }
            state.locks += taken
            state.lockCount.add(taken.count, ordering: .relaxed)
            return nil
        }
    }

    /// Removes exactly matching locks of one open; false (and nothing removed) when one of
    /// them is not held.
    func unlock(_ state: SMBFileState, connection: SMBConnection, openID: UInt64, _ requests: [LockRequest]) -> Bool {
        let (ok, waiters): (Bool, [SMBBreakWaiter]) = files.withLock { _ in
            var remaining = state.locks
            for request in requests {
                // Of stacked locks on the same range, the exclusive one goes first.
                let matches: (SMBByteRangeLock) -> Bool = { $0.connection === connection && $0.openID == openID
                    && $0.offset == request.offset && $0.length == request.length }
                guard let index = remaining.firstIndex(where: { matches($0) && $0.exclusive }) ?? remaining.firstIndex(where: matches)
                else { return (false, []) }
                remaining.remove(at: index)
            }
            state.lockCount.subtract(state.locks.count - remaining.count, ordering: .relaxed)
            state.locks = remaining
            let woken = state.lockWaiters
            state.lockWaiters.removeAll()
            return (true, woken)
        }
        for waiter in waiters { waiter.continuation?.resume(); waiter.continuation = nil }
        return ok
    }

    /// Drops every lock of an open (close) and wakes blocked LOCK requests.
    func dropLocks(_ state: SMBFileState, connection: SMBConnection, openID: UInt64) {
        guard state.lockCount.load(ordering: .relaxed) > 0 || !state.lockWaiters.isEmpty else { return }
        let waiters: [SMBBreakWaiter] = files.withLock { _ in
            let before = state.locks.count
            state.locks.removeAll { $0.connection === connection && $0.openID == openID }
            state.lockCount.subtract(before - state.locks.count, ordering: .relaxed)
            let woken = state.lockWaiters
            state.lockWaiters.removeAll()
            return woken
        }
        for waiter in waiters { waiter.continuation?.resume(); waiter.continuation = nil }
    }

    /// Parks a blocked LOCK until some lock of the file is released.
    func waitForUnlock(_ state: SMBFileState, _ waiter: SMBBreakWaiter, _ continuation: CheckedContinuation<Void, Never>) {
        files.withLock { _ in
            waiter.continuation = continuation
            state.lockWaiters.append(waiter)
        }
    }

    /// Wakes one parked LOCK (cancelled or its connection went away).
    func wake(_ state: SMBFileState, _ waiter: SMBBreakWaiter) {
        let continuation: CheckedContinuation<Void, Never>? = files.withLock { _ in
            state.lockWaiters.removeAll { $0 === waiter }
            defer { waiter.continuation = nil }
            return waiter.continuation
        }
        continuation?.resume()
    }

    /// Whether I/O by `openID` on a range conflicts with someone's lock: a read with another
    /// open's exclusive lock, a write with any other open's lock or a shared lock of its own.
    func ioConflicts(_ state: SMBFileState, connection: SMBConnection, openID: UInt64, offset: UInt64, length: UInt64, write: Bool) -> Bool {
        files.withLock { _ in
            state.locks.contains { lock in
                guard lock.overlaps(offset, length) else { return false }
                let own = lock.connection === connection && lock.openID == openID
                if write { return !own || !lock.exclusive }
                return !own && lock.exclusive
            }
        }
    }

    /// Marks or unmarks the file for deletion at its last close.
    func setDeleteOnClose(_ state: SMBFileState, _ value: Bool) {
        files.withLock { _ in state.deleteOnClose = value }
    }

    func deletePending(_ state: SMBFileState) -> Bool {
        files.withLock { _ in state.deleteOnClose }
    }

    /// Whether any open of the file (other than one) lacks FILE_SHARE_DELETE: a rename or
    /// delete through `openID` would violate it.
    func othersRefuseDelete(_ state: SMBFileState, except connection: SMBConnection, openID: UInt64) -> Bool {
        files.withLock { _ in
            state.opens.contains { !($0.connection === connection && $0.openID == openID) && $0.shareAccess & ShareAccess.delete == 0 }
        }
    }
}
