import VFS

/// LOCK (MS-SMB2 §3.3.5.14): shared and exclusive byte ranges in the VFS's shared file state
/// (so NFSv4 locks and SMB locks stop each other), with Windows semantics
/// (`OpenFile.lockStacking`): all-or-nothing per request, fail-immediately or blocking (a
/// blocked request waits until a lock of the file is released, by either protocol, and CANCEL
/// ends it), unlock of exactly held ranges. READ and WRITE honour other opens' locks
/// (FILE_LOCK_CONFLICT), at the cost of one relaxed load when the file has none.
extension SMBConnection {
    enum LockFlag {
        static let shared: UInt32 = 0x1
        static let exclusive: UInt32 = 0x2
        static let unlock: UInt32 = 0x4
        static let failImmediately: UInt32 = 0x10
    }

    /// Lock elements one request may carry.
    static let maxLockElements = 64

    func lock(_ request: inout SMB2Request, reply: SMBReply) async throws(NTStatus) {
        let reader = request.reader
        guard try reader.u16(at: 64) == 48 else { throw .invalidParameter }
        let open = try open(request, at: 72)
        let count = Int(try reader.u16(at: 66))
        guard count >= 1, count <= Self.maxLockElements else { throw .invalidParameter }
        guard let file = open.fileState, !open.isDirectory else { throw .invalidParameter }
        var requests: [(kind: LockKind, range: ByteRange)] = []
        var unlocking = false
        var failImmediately = true
        for index in 0..<count {
            let base = 88 + 24 * index
            let offset = try reader.u64(at: base)
            let length = try reader.u64(at: base + 8)
            let flags = try reader.u32(at: base + 16)
            let isUnlock = flags & LockFlag.unlock != 0
            if index == 0 { unlocking = isUnlock }
            // A request either unlocks or locks; an unlock carries no other flag.
            guard isUnlock == unlocking else { throw .invalidParameter }
            if isUnlock {
                guard flags == LockFlag.unlock else { throw .invalidParameter }
            } else {
                let kind = flags & (LockFlag.shared | LockFlag.exclusive)
                guard kind == LockFlag.shared || kind == LockFlag.exclusive, flags & ~UInt32(0x13) == 0 else { throw .invalidParameter }
                if flags & LockFlag.failImmediately == 0 {
                    // Only a single-element request may block (MS-SMB2 §3.3.5.14).
                    guard count == 1 else { throw .invalidParameter }
                    failImmediately = false
                }
            }
            // A range may end exactly at 2^64, not past it.
            if !isUnlock && length > 0 && offset > UInt64.max - (length - 1) { throw .invalidLockRange }
            requests.append((flags & LockFlag.exclusive != 0 ? .exclusive : .shared, ByteRange(offset: offset, length: length)))
        }
        if unlocking {
            guard file.unlockStacking(requests.map(\.range), lockOwner: open.lockOwner) else { throw .rangeNotLocked }
        } else {
            var asyncID: UInt64?
            while true {
                let waiter = failImmediately ? nil : StateWaiter()
                guard file.lockStacking(requests, lockOwner: open.lockOwner, waiter: waiter) != nil else { break }
                guard let waiter else { throw .lockNotGranted }
                if asyncID == nil {
                    // Tell the client the request is pending (it may CANCEL it by AsyncId).
                    asyncID = goAsync(&request, reply: reply)
                    guard asyncID != nil else {
                        file.state.cancelWait(waiter)
                        throw .lockNotGranted
                    }
                }
                try await waitForUnlock(file.state, waiter, messageID: request.header.messageID, asyncID: asyncID)
                // Closing the handle ends its pending lock (as on Windows).
                guard opens[open.id] != nil else { throw .rangeNotLocked }
            }
        }
        respond(request, reply: reply, bodyCapacity: 4) { writer in
            writer.u16(4)
            writer.u16(0)
        }
    }

    /// Sends the interim STATUS_PENDING reply of a request that will finish later and makes
    /// it async (its final reply carries the AsyncId). Nil, and nothing sent, when the request
    /// is not the last of its compound.
    func goAsync(_ request: inout SMB2Request, reply: SMBReply) -> UInt64? {
        guard request.isLast else { return nil }
        nextAsyncID &+= 1
        let asyncID = nextAsyncID
        respond(request, reply: reply, status: .pending, bodyCapacity: 9, asyncID: asyncID) { writer in
            writer.u16(9)
            writer.u8(0)
            writer.u8(0)
            writer.u32(0)
            writer.u8(0)
        }
        flushReply(reply)
        reply.reset()
        request.asyncID = asyncID
        return asyncID
    }

    /// Parks a blocking LOCK until a lock of the file goes away; CANCEL (by MessageId) ends
    /// the wait with CANCELLED.
    private func waitForUnlock(_ state: FileState, _ waiter: StateWaiter, messageID: UInt64, asyncID: UInt64?) async throws(NTStatus) {
        let blocked = BlockedLock(state: state, waiter: waiter, asyncID: asyncID)
        blockedLocks[messageID] = blocked
        await waiter.wait()
        blockedLocks[messageID] = nil
        if blocked.cancelled { throw .cancelled }
    }

    /// CANCEL of a blocked LOCK, by MessageId or (async) AsyncId.
    func cancelBlockedLock(messageID: UInt64? = nil, asyncID: UInt64? = nil) -> Bool {
        let found = messageID.flatMap { blockedLocks[$0] } ?? blockedLocks.values.first { asyncID != nil && $0.asyncID == asyncID }
        guard let blocked = found else { return false }
        blocked.cancelled = true
        blocked.state.cancelWait(blocked.waiter)
        return true
    }

}

/// A LOCK request waiting for a range, so CANCEL can find it.
final class BlockedLock {
    let state: FileState
    let waiter: StateWaiter
    let asyncID: UInt64?
    var cancelled = false

    init(state: FileState, waiter: StateWaiter, asyncID: UInt64?) {
        self.state = state
        self.waiter = waiter
        self.asyncID = asyncID
    }
}
