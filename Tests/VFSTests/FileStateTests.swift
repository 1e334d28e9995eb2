import Synchronization
import Testing
import VFS

/// The per-file lock / share / lease table: conflict rules, range splitting, deny modes,
/// lease breaks, and that state goes away with the last open.
@Suite("File state: byte-range locks, share reservations, leases")
struct FileStateTests {
    static let file = FileHandle(mount: 1, words: 100)
    static let alice = StateOwner(client: 1, owner: 1)
    static let bob = StateOwner(client: 2, owner: 1)
    static let carol = StateOwner(client: 3, owner: 7)

    final class Box<Value: Sendable>: Sendable {
        let value: Mutex<Value>
        init(_ value: Value) { self.value = Mutex(value) }
    }

    /// Opens or fails the test.
    func open(_ table: FileStateTable, _ owner: StateOwner, _ access: ShareMode = .both, deny: ShareMode = [],
              sourceLocation: SourceLocation = #_sourceLocation) throws -> OpenFile {
        guard case let .opened(open) = table.open(Self.file, owner: owner, access: access, deny: deny) else {
            Issue.record("open by \(owner) was not granted", sourceLocation: sourceLocation)
            throw VFSError.busy
        }
        return open
    }

    @Test("shared locks of different owners coexist; an exclusive one conflicts on overlapping bytes only")
    func readWriteLocks() throws {
        let table = FileStateTable()
        let a = try open(table, Self.alice), b = try open(table, Self.bob)
        #expect(try a.lock(.shared, ByteRange(offset: 0, length: 100)) == .granted)
        #expect(try b.lock(.shared, ByteRange(offset: 50, length: 100)) == .granted)
        // Bob's exclusive lock overlaps Alice's shared one: denied, and told whose lock it is.
        #expect(try b.lock(.exclusive, ByteRange(offset: 90, length: 20))
                == .denied(ByteRangeLock(owner: Self.alice, kind: .shared, range: ByteRange(offset: 0, length: 100))))
        // Next to it, not overlapping: granted (ranges are half-open).
        #expect(try b.lock(.exclusive, ByteRange(offset: 100, length: 20)) == .granted)
        #expect(try a.lock(.shared, ByteRange(offset: 110, length: 1)) == .denied(ByteRangeLock(owner: Self.bob, kind: .exclusive, range: ByteRange(offset: 100, length: 20))))
        // An owner's own locks never conflict: Alice upgrades part of her shared range.
        #expect(try a.lock(.exclusive, ByteRange(offset: 0, length: 10)) == .granted)
        #expect(try b.lock(.shared, ByteRange(offset: 5, length: 1)) == .denied(ByteRangeLock(owner: Self.alice, kind: .exclusive, range: ByteRange(offset: 0, length: 10))))
        // "To the end of file" (all-ones length) conflicts with anything above its start.
        let c = try open(table, Self.carol)
        #expect(try c.lock(.exclusive, ByteRange(offset: 1000, length: .max)) == .granted)
        #expect(c.state.testLock(.shared, ByteRange(offset: 1 << 62, length: 1), owner: Self.alice)?.owner == Self.carol)
        #expect(c.state.testLock(.shared, ByteRange(offset: 999, length: 1), owner: Self.alice) == nil)
        // A lock needs the matching access.
        let readOnly = try open(table, StateOwner(client: 9, owner: 9), .read)
        #expect(throws: VFSError.accessDenied) { _ = try readOnly.lock(.exclusive, ByteRange(offset: 5000, length: 1)) }
    }

    @Test("unlocking the middle of a range splits it; same-kind neighbours merge")
    func unlockSplits() throws {
        let table = FileStateTable()
        let a = try open(table, Self.alice), b = try open(table, Self.bob)
        #expect(try a.lock(.exclusive, ByteRange(start: 0, end: 100)) == .granted)
        a.unlock(ByteRange(start: 40, end: 60))
        #expect(a.state.locks == [
            ByteRangeLock(owner: Self.alice, kind: .exclusive, range: ByteRange(start: 0, end: 40)),
            ByteRangeLock(owner: Self.alice, kind: .exclusive, range: ByteRange(start: 60, end: 100)),
        ])
        #expect(try b.lock(.exclusive, ByteRange(start: 40, end: 60)) == .granted)
        #expect(try b.lock(.exclusive, ByteRange(start: 30, end: 50)) != .granted)
        b.unlock(ByteRange(start: 40, end: 60))
        // Filling the hole again merges Alice's three pieces into one.
        #expect(try a.lock(.exclusive, ByteRange(start: 40, end: 60)) == .granted)
        #expect(a.state.locks == [ByteRangeLock(owner: Self.alice, kind: .exclusive, range: ByteRange(start: 0, end: 100))])
        // Downgrading a piece splits it into kinds.
        #expect(try a.lock(.shared, ByteRange(start: 10, end: 20)) == .granted)
        #expect(a.state.locks.map(\.kind) == [.exclusive, .shared, .exclusive])
        #expect(try b.lock(.shared, ByteRange(start: 12, end: 18)) == .granted)
        #expect(try b.lock(.shared, ByteRange(start: 12, end: 21)) != .granted)
        // Unlocking everything, then Bob's lock is alone.
        a.unlock(.whole)
        #expect(a.state.locks == [ByteRangeLock(owner: Self.bob, kind: .shared, range: ByteRange(start: 12, end: 18))])
    }

    @Test("the per-I/O check sees other owners' locks through the open, and costs nothing without locks")
    func perIOCheck() throws {
        let table = FileStateTable()
        let a = try open(table, Self.alice), b = try open(table, Self.bob)
        #expect(a.conflictingLock(ByteRange(offset: 0, length: 4096), write: true) == nil)
        #expect(try b.lock(.shared, ByteRange(offset: 0, length: 4096)) == .granted)
        #expect(a.conflictingLock(ByteRange(offset: 100, length: 10), write: false) == nil)
        #expect(a.conflictingLock(ByteRange(offset: 100, length: 10), write: true)?.owner == Self.bob)
        #expect(b.conflictingLock(ByteRange(offset: 100, length: 10), write: true) == nil)
        #expect(a.conflictingLock(ByteRange(offset: 4096, length: 10), write: true) == nil)
        // Closing Bob's open releases the locks taken through it.
        #expect(b.holdsLocks)
        b.close()
        #expect(a.conflictingLock(ByteRange(offset: 100, length: 10), write: true) == nil)
        #expect(a.state.locks.isEmpty)
    }

    @Test("share reservations: a deny mode refuses a conflicting open, both ways")
    func shareDenyModes() throws {
        let table = FileStateTable()
        let reader = try open(table, Self.alice, .read, deny: .write)
        // Bob wants to write: Alice denies writers.
        guard case .shareDenied = table.open(Self.file, owner: Self.bob, access: .write) else { Issue.record("write open granted"); return }
        // Bob only reads and denies nothing: fine.
        let bobReader = try open(table, Self.bob, .read)
        // Carol would deny reading, which Alice and Bob already do: refused.
        guard case .shareDenied = table.open(Self.file, owner: Self.carol, access: .read, deny: .read) else { Issue.record("deny-read open granted"); return }
        // The same owner is held to the same rules as anyone (SMB share modes apply per open).
        guard case .shareDenied = table.open(Self.file, owner: Self.alice, access: .write) else { Issue.record("own write open granted"); return }
        // Delete access against a deny-delete open.
        let keeper = try open(table, Self.carol, .read, deny: .delete)
        guard case .shareDenied = table.open(Self.file, owner: Self.bob, access: [.read, .delete]) else { Issue.record("delete open granted"); return }
        keeper.close()
        // Once the denying open is gone, the writer gets in.
        reader.close()
        let writer = try open(table, Self.bob, .write)
        #expect(table.state(of: Self.file)?.opens.count == 2)
        writer.close()
        bobReader.close()
        #expect(table.state(of: Self.file) == nil && table.count == 0)
    }

    @Test("a conflicting open breaks another holder's lease and waits for the answer")
    func leaseBreaks() throws {
        let table = FileStateTable()
        let breaks = Box<[LeaseBreak]>([])
        let record: LeaseBreakHandler = { request in breaks.value.withLock { $0.append(request) } }

        // Alice opens and gets read+handle caching (nobody else there).
        let a = try open(table, Self.alice, .read)
        #expect(a.requestLease([.read, .write, .handle], onBreak: record) == [.read, .write, .handle])
        // Her own second open does not break her lease.
        let again = try open(table, Self.alice, .read)
        again.close()
        #expect(breaks.value.withLock { $0.isEmpty })

        // Bob opens to read: write caching must go first.
        guard case let .waitForLeaseBreak(pending) = table.open(Self.file, owner: Self.bob, access: .read) else {
            Issue.record("a reader got in past a write lease"); return
        }
        let expected = LeaseBreak(file: Self.file, holder: Self.alice, from: [.read, .write, .handle], to: [.read, .handle])
        #expect(pending == [expected])
        #expect(breaks.value.withLock { $0 } == [expected])
        // Asking again while the break is out: still waiting, no second notification.
        guard case .waitForLeaseBreak = table.open(Self.file, owner: Self.bob, access: .read) else { Issue.record("no wait"); return }
        #expect(breaks.value.withLock { $0.count } == 1)
        #expect(a.state.lease(of: Self.alice)?.breakingTo == [.read, .handle])
        // Alice answers; Bob's retry gets in, and Alice keeps read caching.
        table.acknowledgeBreak(Self.file, holder: Self.alice, to: [.read, .handle])
        let b = try open(table, Self.bob, .read)
        #expect(a.state.lease(of: Self.alice)?.state == [.read, .handle])

        // Carol opens to write: read caching must go too.
        guard case let .waitForLeaseBreak(second) = table.open(Self.file, owner: Self.carol, access: .write) else {
            Issue.record("a writer got in past a read lease"); return
        }
        #expect(second.map(\.to) == [[.handle]])
        table.acknowledgeBreak(Self.file, holder: Self.alice, to: [])
        #expect(a.state.lease(of: Self.alice) == nil)
        let c = try open(table, Self.carol, .write)

        // Read caching coexists with a writer's open (each write breaks it); Carol herself
        // gets no write caching while others have the file open.
        #expect(b.requestLease([.read], onBreak: record) == [.read])
        #expect(c.requestLease([.read, .write], onBreak: record) == [.read])
        for open in [a, b, c] { open.close() }
        table.releaseLease(Self.file, holder: Self.carol)
        table.releaseLease(Self.file, holder: Self.bob)
        #expect(table.count == 0)
    }

    @Test("a lease outlives its open until released; an unanswered break can be revoked")
    func leaseLifetime() throws {
        let table = FileStateTable()
        let a = try open(table, Self.alice, .read)
        #expect(a.requestLease([.read], onBreak: { _ in }) == [.read])
        a.close()
        #expect(table.count == 1)
        guard case .waitForLeaseBreak = table.open(Self.file, owner: Self.bob, access: .write) else { Issue.record("no break"); return }
        // The holder never answers: the protocol revokes after its timeout.
        table.releaseLease(Self.file, holder: Self.alice)
        let b = try open(table, Self.bob, .write)
        b.close()
        #expect(table.count == 0)
    }

    @Test("state is dropped with the last open, and an open dropped without close releases too")
    func lifetime() throws {
        let table = FileStateTable()
        do {
            let a = try open(table, Self.alice)
            #expect(try a.lock(.exclusive, .whole) == .granted)
            withExtendedLifetime(a) { #expect(table.count == 1) }
        }
        #expect(table.count == 0)
        let b = try open(table, Self.bob)
        #expect(try b.lock(.exclusive, .whole) == .granted)
        b.close()
        b.close()
        #expect(table.count == 0)
    }

    @Test("opens, locks and closes from several threads leave nothing behind")
    func concurrentOpensAndLocks() async throws {
        let table = FileStateTable()
        let files = (0..<8).map { FileHandle(mount: 1, words: UInt64($0)) }
        let granted = Box<Int>(0)
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    let owner = StateOwner(client: UInt64(worker), owner: 0)
                    for i in 0..<2000 {
                        let file = files[(i + worker) % files.count]
                        guard case let .opened(open) = table.open(file, owner: owner, access: .both) else { continue }
                        if (try? open.lock(.exclusive, ByteRange(offset: 0, length: 10))) == .granted {
                            granted.value.withLock { $0 += 1 }
                            // Nobody else may hold these bytes now.
                            #expect(open.conflictingLock(ByteRange(offset: 0, length: 10), write: true) == nil)
                        }
                        open.close()
                    }
                }
            }
        }
        #expect(granted.value.withLock { $0 } > 0)
        #expect(table.count == 0)
    }

    @Test("Windows-style stacked locks: exact unlock, own exclusive conflicts, and they meet POSIX locks of other owners")
    func stackedLocks() throws {
        let table = FileStateTable()
        let smb = try open(table, Self.alice), nfs = try open(table, Self.bob)
        let range = ByteRange(offset: 100, length: 10)
        #expect(smb.lockStacking([(.shared, range), (.shared, range)]) == nil)
        // An exclusive request conflicts with the open's own shared lock (Windows).
        #expect(smb.lockStacking([(.exclusive, ByteRange(offset: 105, length: 1))]) == 0)
        // All or nothing: the second request conflicts, so the first is not taken either.
        #expect(smb.lockStacking([(.exclusive, ByteRange(offset: 0, length: 10)), (.exclusive, range)]) == 1)
        #expect(smb.state.locks.count == 2)
        // Its own shared lock stops its writes, not its reads; another owner's stops writes.
        #expect(smb.conflictingLock(range, write: true) != nil)
        #expect(smb.conflictingLock(range, write: false) == nil)
        #expect(nfs.conflictingLock(range, write: true)?.owner == Self.alice)
        // An NFSv4-style exclusive lock is denied by it; a shared one is not.
        #expect(try nfs.lock(.exclusive, ByteRange(offset: 0, length: 101)) == .denied(ByteRangeLock(owner: Self.alice, kind: .shared, range: range)))
        #expect(try nfs.lock(.shared, ByteRange(offset: 0, length: 200)) == .granted)
        // A POSIX unlock of the same bytes by the SMB owner leaves stacked locks alone;
        // only exact ranges unlock, one stacked lock at a time.
        smb.unlock(range)
        #expect(!smb.unlockStacking([ByteRange(offset: 100, length: 5)]))
        #expect(smb.unlockStacking([range]))
        #expect(smb.unlockStacking([range]))
        #expect(!smb.unlockStacking([range]))
        // Zero-length locks are kept and stop only ranges that cross them.
        #expect(smb.lockStacking([(.exclusive, ByteRange(offset: 500, length: 0))]) == nil)
        #expect(nfs.conflictingLock(ByteRange(offset: 499, length: 2), write: false) != nil)
        #expect(nfs.conflictingLock(ByteRange(offset: 500, length: 2), write: false) == nil)
        smb.close()
        nfs.close()
        #expect(table.count == 0)
    }

    @Test("a blocked lock is woken when a lock of the file goes, by either kind of owner")
    func blockedLockWakes() async throws {
        let table = FileStateTable()
        let smb = try open(table, Self.alice), nfs = try open(table, Self.bob)
        #expect(try nfs.lock(.exclusive, ByteRange(offset: 0, length: 10)) == .granted)
        let waiter = StateWaiter()
        #expect(smb.lockStacking([(.exclusive, ByteRange(offset: 5, length: 1))], waiter: waiter) == 0)
        #expect(!waiter.isWoken)
        nfs.unlock(ByteRange(offset: 0, length: 10))
        await waiter.wait()
        #expect(smb.lockStacking([(.exclusive, ByteRange(offset: 5, length: 1))]) == nil)
        // Closing an open that held a lock wakes waiters too.
        let second = StateWaiter()
        #expect(nfs.lockStacking([(.shared, ByteRange(offset: 5, length: 1))], waiter: second) == 0)
        smb.close()
        await second.wait()
        nfs.close()
    }

    @Test("delete pending refuses new opens until the last open closes, which reports it")
    func deletePending() throws {
        let table = FileStateTable()
        let a = try open(table, Self.alice, [.read, .delete])
        let b = try open(table, Self.bob, .read)
        a.state.deletePending = true
        guard case .deletePending = table.open(Self.file, owner: Self.carol, access: .read) else { Issue.record("opened"); return }
        #expect(!a.close())
        #expect(b.close())
        // The name is gone now; a new file under the handle starts clean.
        let c = try open(table, Self.carol, .read)
        #expect(!c.state.deletePending)
        c.close()
    }

    @Test("a share conflict with a handle-caching holder breaks its handle caching before refusing")
    func handleCachingBreaksOnShareConflict() throws {
        let table = FileStateTable()
        let breaks = Box<[LeaseBreak]>([])
        let a = try open(table, Self.alice, .both, deny: .write)
        #expect(a.requestLease([.read, .write, .handle], onBreak: { r in breaks.value.withLock { $0.append(r) } }) == [.read, .write, .handle])
        // Bob's write open conflicts with Alice's deny-write: she may close a cached handle,
        // so she is asked (losing what Bob's open breaks, write caching, too).
        let waiter = StateWaiter()
        guard case .waitForLeaseBreak = table.open(Self.file, owner: Self.bob, access: .write, breaking: [.write], waiter: waiter) else {
            Issue.record("no break"); return
        }
        #expect(breaks.value.withLock { $0.map(\.to) } == [[.read]])
        table.acknowledgeBreak(Self.file, holder: Self.alice, to: [.read])
        #expect(waiter.isWoken)
        // She kept her handle: now the conflict stands.
        guard case .shareDenied = table.open(Self.file, owner: Self.bob, access: .write, breaking: [.write]) else { Issue.record("granted"); return }
        // An attributes-only open takes no part in share modes and breaks nothing.
        let stat = try open(table, Self.carol, [], deny: [.read, .write, .delete])
        let reader = try open(table, Self.bob, .read)
        for open in [a, stat, reader] { open.close() }
        table.releaseLease(Self.file, holder: Self.alice)
        #expect(table.count == 0)
    }

    @Test("a write breaks read caching, the writer's own read-only lease too, and a recall waits for answers")
    func writesBreakReadCaching() async throws {
        let table = FileStateTable()
        let breaks = Box<[LeaseBreak]>([])
        let record: LeaseBreakHandler = { r in breaks.value.withLock { $0.append(r) } }
        let a = try open(table, Self.alice, .read), b = try open(table, Self.bob)
        #expect(a.requestLease([.read], onBreak: record) == [.read])
        #expect(b.requestLease([.read], onBreak: record) == [.read])
        #expect(b.state.breakReadCaching(by: Self.bob))
        #expect(Set(breaks.value.withLock { $0.map(\.holder) }) == [Self.alice, Self.bob])
        table.acknowledgeBreak(Self.file, holder: Self.alice, to: [])
        table.acknowledgeBreak(Self.file, holder: Self.bob, to: [])
        #expect(!b.state.hasLeases)
        // A holder with write caching keeps it through its own writes.
        a.close()
        #expect(b.requestLease([.read, .write], onBreak: record) == [.read, .write])
        #expect(!b.state.breakReadCaching(by: Self.bob))
        // Not on an event loop, a recall sends the break and goes ahead.
        await table.recallLeases(Self.file)
        #expect(b.state.lease(of: Self.bob)?.breakingTo == [])
        b.close()
        table.releaseLease(Self.file, holder: Self.bob)
        #expect(table.count == 0)
    }

    @Test("an open without access does not keep others from write caching")
    func statOpensDoNotDenyWriteCaching() throws {
        let table = FileStateTable()
        let stat = try open(table, Self.carol, [])
        let a = try open(table, Self.alice, .both)
        #expect(a.requestLease([.read, .write], onBreak: { _ in }) == [.read, .write])
        a.close()
        stat.close()
        table.releaseLease(Self.file, holder: Self.alice)
        #expect(table.count == 0)
    }

    @Test("the VFS has one table that every protocol shares")
    func vfsHasATable() throws {
        let vfs = VirtualFileSystem()
        guard case let .opened(open) = vfs.fileStates.open(Self.file, owner: Self.alice, access: .read, deny: .write) else {
            Issue.record("open refused"); return
        }
        guard case .shareDenied = vfs.fileStates.open(Self.file, owner: Self.bob, access: .write) else { Issue.record("granted"); return }
        open.close()
        #expect(vfs.fileStates.count == 0)
    }
}
