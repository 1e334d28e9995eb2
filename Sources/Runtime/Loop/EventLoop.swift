import CRuntimeShims
import CURing
import Glibc
import Logging
import Synchronization

/// One event-loop thread: its own io_uring (or epoll set), buffer pool, timers, connections
/// and Swift executor. Everything that belongs to a loop is touched only on its thread; other
/// threads reach it through `execute` (the inbox and doorbell) or read its `stats`.
///
/// A pass reaps completions, runs cross-thread work, due timers and local jobs, flushes the
/// send queues of connections that produced output, and enters all queued submissions into
/// the kernel at once. When a pass finds no work the loop keeps spinning (POLL mode) until
/// `spinNanoseconds` have passed without work, then sleeps in the kernel (EVENT mode), as the
/// `pollMode` knob allows.
public final class EventLoop: @unchecked Sendable {
    public let index: Int
    public let cpu: Int?
    public let node: Int
    public let backendKind: IOBackendKind
    public let stats = LoopStats()
    /// The executor for actors that live on this loop (see EventLoop+Executor.swift).
    public let serialExecutor = LoopSerialExecutor()
    let logger: Logger

    // Knobs other threads may change while the loop runs.
    private let pollModeKnob: Atomic<Int>
    private let spinKnob: Atomic<Int>
    private let running = Atomic<Bool>(true)

    let inbox = Inbox()
    let doorbellFD: Int32
    private var thread: pthread_t?
    private let started = Atomic<Int>(0)  // 0 starting, 1 running, -1 failed
    private let startError = Mutex<RuntimeError?>(nil)

    // Loop-thread state below this line.
    var uring: URingBackend?
    var epoll: EpollBackend?
    private(set) var bufferPool: BufferPool!
    private var timers = TimerQueue()
    private var localJobs: [LoopJob] = []
    /// The batch being run; swapped with `localJobs` so neither array is reallocated per job.
    private var runningJobs: [LoopJob] = []
    private var inboxBatch: [LoopJob] = []
    private var dueTimers: [() -> Void] = []
    var connections: [Connection?] = []
    private var freeConnectionSlots: [Int] = []
    var listeners: [Listener] = []
    var dirty: [Connection] = []
    var epollCompleted: [(UInt64, Int32)] = []
    private var fileWaiters: [UnsafeContinuation<Int32, Never>?] = []
    private var freeFileSlots: [Int] = []
    private var doorbellValue: UInt64 = 0
    /// Per-protocol operation counters recorded on this loop (see `protocolStats`).
    var protocolStatsTable: [ProtocolStats] = []
    /// Shared scratch buffer that small replies are encoded into (one per loop, not per
    /// connection, so idle connections hold no output memory).
    var outputArena: IOBuffer?
    var outputArenaUsed = 0

    // Running totals, published to `stats` once per pass.
    var inFlight = 0
    var bytesIn: UInt64 = 0
    var bytesOut: UInt64 = 0
    private var passes: UInt64 = 0
    private var completions: UInt64 = 0
    private var wakeups: UInt64 = 0
    private var tasksRun: UInt64 = 0
    private var pollTime: UInt64 = 0
    private var sleepTime: UInt64 = 0

    /// Send-queue bytes above which a connection stops reading until its peer catches up.
    public var sendQueueLimit = 4 * 1024 * 1024

    init(index: Int, cpu: Int?, node: Int, backend: IOBackendKind, pollMode: PollMode, spinNanoseconds: Int, logger: Logger) throws(RuntimeError) {
        self.index = index
        self.cpu = cpu
        self.node = node
        self.backendKind = backend
        self.pollModeKnob = Atomic(EventLoop.code(pollMode))
        self.spinKnob = Atomic(spinNanoseconds)
        self.logger = logger
        doorbellFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard doorbellFD >= 0 else { throw RuntimeError.system("eventfd", errno) }
        serialExecutor.loop = self
    }

    deinit {
        Glibc.close(doorbellFD)
    }

    private static func code(_ mode: PollMode) -> Int {
        switch mode {
        case .auto: 0
        case .always: 1
        case .never: 2
        }
    }

    // MARK: Knobs (any thread)

    public var pollMode: PollMode {
        get { [PollMode.auto, .always, .never][pollModeKnob.load(ordering: .relaxed)] }
        set {
            pollModeKnob.store(EventLoop.code(newValue), ordering: .relaxed)
            wake()
        }
    }

    public var spinNanoseconds: Int {
        get { spinKnob.load(ordering: .relaxed) }
        set {
            spinKnob.store(max(0, newValue), ordering: .relaxed)
            wake()
        }
    }

    private static let currentKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// The loop whose thread is calling, or nil on any other thread (a delegation thread, the
    /// main thread). Backends use it to submit file I/O to the ring of the loop serving the
    /// request.
    public static var current: EventLoop? {
        guard let raw = pthread_getspecific(currentKey) else { return nil }
        return Unmanaged<EventLoop>.fromOpaque(raw).takeUnretainedValue()
    }

    /// `current?.index` without taking a reference to the loop: for per-thread counters kept
    /// outside the runtime (the VFS caches), which must not touch a shared reference count.
    @inline(__always)
    public static var currentIndex: Int? {
        guard let raw = pthread_getspecific(currentKey) else { return nil }
        return Unmanaged<EventLoop>.fromOpaque(raw)._withUnsafeGuaranteedRef { $0.index }
    }

    /// True on this loop's own thread.
    @inline(__always)
    public var inLoop: Bool {
        guard let thread else { return false }
        return pthread_equal(thread, pthread_self()) != 0
    }

    // MARK: Cross-thread entry points

    /// Runs `body` on the loop thread: at once (in the current pass) when called from the loop,
    /// otherwise through the inbox, waking the loop if it sleeps.
    public func execute(_ body: @escaping @Sendable () -> Void) {
        if inLoop {
            localJobs.append(.closure(body))
        } else {
            enqueueRemote(.closure(body))
        }
    }

    func localJobsAppend(_ job: LoopJob) {
        localJobs.append(job)
    }

    func enqueueRemote(_ job: LoopJob) {
        if inbox.push(job) { ringDoorbell() }
    }

    private func wake() {
        if !inLoop, inbox.sleeping.exchange(false, ordering: .sequentiallyConsistent) { ringDoorbell() }
    }

    private func ringDoorbell() {
        var one: UInt64 = 1
        _ = Glibc.write(doorbellFD, &one, 8)
    }

    /// Runs `body` on the loop and returns its result to the caller, whichever thread it is on.
    public func submit<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<T, Never>) in
            execute { continuation.resume(returning: body()) }
        }
    }

    // MARK: Timers (loop thread)

    /// Calls `action` on this loop after `nanoseconds`. Loop thread only.
    @discardableResult
    public func schedule(afterNanoseconds nanoseconds: UInt64, _ action: @escaping () -> Void) -> TimerID {
        precondition(inLoop, "EventLoop.schedule must be called on the loop's thread")
        return timers.schedule(at: monotonicNanoseconds() &+ nanoseconds, action)
    }

    public func cancel(_ timer: TimerID) {
        precondition(inLoop, "EventLoop.cancel must be called on the loop's thread")
        timers.cancel(timer)
    }

    /// Suspends the calling task for `nanoseconds` using this loop's timers (the task resumes
    /// on this loop).
    public func sleep(nanoseconds: UInt64) async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            execute { [unowned self] in
                _ = self.timers.schedule(at: monotonicNanoseconds() &+ nanoseconds) { continuation.resume() }
            }
        }
    }

    // MARK: Buffers (loop thread)

    /// The loop's buffer pool. Loop thread only.
    public var buffers: BufferPool {
        precondition(inLoop, "buffers belong to their loop's thread")
        return bufferPool
    }

    // MARK: File I/O (loop thread)

    /// Reads from a file at `offset`; returns bytes read or a negative errno.
    public func read(fd: Int32, into buffer: UnsafeMutableRawBufferPointer, offset: UInt64) async -> Int {
        precondition(inLoop, "EventLoop.read must be called from a task running on the loop")
        return Int(await withUnsafeContinuation { (continuation: UnsafeContinuation<Int32, Never>) in
            let slot = addFileWaiter(continuation)
            let tag = OpTag.make(.file, slot)
            if let uring {
                uring.read(fd: fd, into: buffer.baseAddress!, count: buffer.count, offset: offset, tag: tag)
            } else {
                let n = pread(fd, buffer.baseAddress, buffer.count, off_t(offset))
                epollCompleted.append((tag, n < 0 ? -errno : Int32(n)))
            }
        })
    }

    /// Writes to a file at `offset`; returns bytes written or a negative errno.
    public func write(fd: Int32, from buffer: UnsafeRawBufferPointer, offset: UInt64) async -> Int {
        precondition(inLoop, "EventLoop.write must be called from a task running on the loop")
        return Int(await withUnsafeContinuation { (continuation: UnsafeContinuation<Int32, Never>) in
            let slot = addFileWaiter(continuation)
            let tag = OpTag.make(.file, slot)
            if let uring {
                uring.write(fd: fd, from: buffer.baseAddress!, count: buffer.count, offset: offset, tag: tag)
            } else {
                let n = pwrite(fd, buffer.baseAddress, buffer.count, off_t(offset))
                epollCompleted.append((tag, n < 0 ? -errno : Int32(n)))
            }
        })
    }

    /// Whether file I/O goes through an io_uring (else `read`/`write` are plain system calls).
    public var hasRing: Bool { uring != nil }

    /// Flushes a file to stable storage through the ring (fdatasync with `dataOnly`); returns 0
    /// or a negative errno. Only with a ring (`hasRing`): without one it would block the loop.
    public func fsync(fd: Int32, dataOnly: Bool) async -> Int32 {
        precondition(inLoop && uring != nil, "EventLoop.fsync needs a ring and the loop's thread")
        return await withUnsafeContinuation { (continuation: UnsafeContinuation<Int32, Never>) in
            let slot = addFileWaiter(continuation)
            uring!.fsync(fd: fd, dataOnly: dataOnly, tag: OpTag.make(.file, slot))
        }
    }

    private func addFileWaiter(_ continuation: UnsafeContinuation<Int32, Never>) -> Int {
        inFlight += 1
        if let slot = freeFileSlots.popLast() {
            fileWaiters[slot] = continuation
            return slot
        }
        fileWaiters.append(continuation)
        return fileWaiters.count - 1
    }

    // MARK: Lifecycle

    func start() throws(RuntimeError) {
        let box = Unmanaged.passRetained(self)
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { raw in
            let loop = Unmanaged<EventLoop>.fromOpaque(raw!).takeRetainedValue()
            loop.threadMain()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            throw RuntimeError.system("pthread_create", rc)
        }
        // `thread` is set by the loop itself before it publishes `started` (a second write
        // from here raced with it: ThreadSanitizer).
        while started.load(ordering: .acquiring) == 0 { sched_yield() }
        if started.load(ordering: .acquiring) < 0 {
            pthread_join(tid, nil)
            throw startError.withLock { $0 } ?? RuntimeError.invalidSetting("loop \(index) failed to start")
        }
    }

    /// Asks the loop to finish its current pass and exit; `join` waits for it.
    func stop() {
        running.store(false, ordering: .sequentiallyConsistent)
        ringDoorbell()
    }

    func join() {
        if let thread { pthread_join(thread, nil) }
    }

    private func threadMain() {
        dmanoelSetThreadName("nas-loop-\(index)")
        if let cpu {
            let rc = dmanoel_pin_current_thread(Int32(cpu))
            if rc != 0 { logger.warning("loop \(index): cannot pin to cpu \(cpu): \(String(cString: strerror(rc)))") }
        }
        bufferPool = BufferPool(node: node)
        memoryPolicyText.withLock { $0 = bufferPool.memoryPolicy }
        do throws(RuntimeError) {
            switch backendKind {
            case .ioUring:
                let ring = try URingBackend(entries: 1024)
                uring = ring
                ring.read(fd: doorbellFD, into: &doorbellValue, count: 8, offset: 0, tag: OpTag.make(.doorbell, 0))
            case .epoll:
                let set = try EpollBackend()
                epoll = set
                try set.add(fd: doorbellFD, events: UInt32(EPOLLIN.rawValue), tag: OpTag.make(.doorbell, 0))
            }
        } catch {
            startError.withLock { $0 = error }
            started.store(-1, ordering: .releasing)
            return
        }
        thread = pthread_self()
        pthread_setspecific(Self.currentKey, Unmanaged.passUnretained(self).toOpaque())
        started.store(1, ordering: .releasing)
        run()
        shutdownConnections()
        uring = nil
        epoll = nil
    }

    private func shutdownConnections() {
        for listener in listeners { listener.closeSocket() }
        listeners.removeAll()
        for case let connection? in connections { connection.abandon() }
        connections.removeAll()
        outputArena?.release()
        outputArena = nil
    }

    // MARK: The pass

    private func run() {
        var lastWork = monotonicNanoseconds()
        var passStart = lastWork
        while running.load(ordering: .relaxed) {
            var work = reapCompletions()
            work += runInbox()
            let now = monotonicNanoseconds()
            work += runTimers(now: now)
            work += runLocalJobs()
            flushDirty()
            uring?.submit()
            passes &+= 1

            if work > 0 {
                lastWork = now
            } else {
                let mode = pollModeKnob.load(ordering: .relaxed)
                let idleFor = now &- lastWork
                if mode == 2 || (mode == 0 && idleFor >= UInt64(spinKnob.load(ordering: .relaxed))) {
                    pollTime &+= now &- passStart
                    publish(mode: .event)
                    sleep()
                    let woke = monotonicNanoseconds()
                    sleepTime &+= woke &- now
                    passStart = woke
                    lastWork = woke
                    continue
                }
                // Spinning with nothing to do: let any other thread that wants this CPU (a
                // delegation thread doing this loop's blocking call) run now rather than at the
                // next preemption. With nothing else runnable it returns at once.
                sched_yield()
            }
            let end = monotonicNanoseconds()
            pollTime &+= end &- passStart
            passStart = end
            publish(mode: .poll)
        }
    }

    private func sleep() {
        guard inbox.prepareToSleep() else { return }
        guard localJobs.isEmpty, epollCompleted.isEmpty, running.load(ordering: .relaxed) else {
            inbox.didWake()
            return
        }
        var timeout: UInt64?
        if let deadline = timers.nextDeadline {
            let now = monotonicNanoseconds()
            timeout = deadline > now ? deadline - now : 0
        }
        if let uring {
            uring.wait(timeoutNanoseconds: timeout)
        } else if let epoll {
            _ = epoll.poll(timeoutNanoseconds: timeout) { tag, events in handleEpollEvent(tag: tag, events: events) }
        }
        inbox.didWake()
        wakeups &+= 1
    }

    private func publish(mode: LoopMode) {
        stats.mode.store(mode.rawValue, ordering: .relaxed)
        stats.passes.store(passes, ordering: .relaxed)
        stats.completions.store(completions, ordering: .relaxed)
        stats.wakeups.store(wakeups, ordering: .relaxed)
        stats.tasksRun.store(tasksRun, ordering: .relaxed)
        stats.pollNanoseconds.store(pollTime, ordering: .relaxed)
        stats.sleepNanoseconds.store(sleepTime, ordering: .relaxed)
        stats.inFlight.store(inFlight, ordering: .relaxed)
        stats.submissionDepth.store(uring?.lastSubmitted ?? 0, ordering: .relaxed)
        stats.connections.store(connectionCount, ordering: .relaxed)
        stats.bytesIn.store(bytesIn, ordering: .relaxed)
        stats.bytesOut.store(bytesOut, ordering: .relaxed)
        stats.buffersOutstanding.store(bufferPool?.outstanding ?? 0, ordering: .relaxed)
        stats.bufferBytes.store(bufferPool?.reservedBytes ?? 0, ordering: .relaxed)
        stats.requestsInProgress.store(requestsInProgress, ordering: .relaxed)
    }

    // MARK: Requests and draining

    /// Protocol requests started on this loop and not yet answered (loop thread only).
    public private(set) var requestsInProgress = 0
    /// Set while the server drains before it stops: connections arm no new receive, so only
    /// what was already received is served.
    var draining = false

    /// Protocols call this when a request's task starts, and `requestFinished` when it ends,
    /// so a stopping server can wait for the requests in progress (`LoopGroup.drain`).
    @inline(__always)
    public func requestStarted() {
        requestsInProgress += 1
    }

    @inline(__always)
    public func requestFinished() {
        requestsInProgress -= 1
    }

    var connectionCount: Int { connections.count - freeConnectionSlots.count }

    private func reapCompletions() -> Int {
        var n = 0
        if let uring {
            n = uring.reap { tag, result in complete(tag: tag, result: result) }
        } else if let epoll {
            n = epoll.poll(timeoutNanoseconds: 0) { tag, events in handleEpollEvent(tag: tag, events: events) }
        }
        if !epollCompleted.isEmpty {
            var i = 0
            while i < epollCompleted.count {
                let (tag, result) = epollCompleted[i]
                complete(tag: tag, result: result)
                i += 1
            }
            n += epollCompleted.count
            epollCompleted.removeAll(keepingCapacity: true)
        }
        completions &+= UInt64(n)
        return n
    }

    private func runInbox() -> Int {
        inbox.drain(into: &inboxBatch)
        guard !inboxBatch.isEmpty else { return 0 }
        let n = inboxBatch.count
        for job in inboxBatch { run(job) }
        inboxBatch.removeAll(keepingCapacity: true)
        return n
    }

    private func runTimers(now: UInt64) -> Int {
        guard let next = timers.nextDeadline, next <= now else { return 0 }
        timers.popDue(now: now, into: &dueTimers)
        let n = dueTimers.count
        for action in dueTimers { action() }
        dueTimers.removeAll(keepingCapacity: true)
        return max(n, 1)
    }

    private func runLocalJobs() -> Int {
        var ran = 0
        // Jobs may enqueue more jobs; bound one pass so I/O is not starved.
        while !localJobs.isEmpty && ran < 4096 {
            swap(&runningJobs, &localJobs)
            var index = 0
            while index < runningJobs.count {
                run(runningJobs[index])
                index += 1
            }
            ran += runningJobs.count
            runningJobs.removeAll(keepingCapacity: true)
        }
        return ran
    }

    @inline(__always)
    private func run(_ job: LoopJob) {
        tasksRun &+= 1
        switch job {
        case let .closure(body): body()
        case let .task(job): job.runSynchronously(on: asUnownedTaskExecutor())
        case let .isolated(job): job.runSynchronously(isolatedTo: serialExecutor.asUnownedSerialExecutor(), taskExecutor: asUnownedTaskExecutor())
        }
    }

    // MARK: Completions

    private func complete(tag: UInt64, result: Int32) {
        let slot = OpTag.slot(tag)
        switch OpTag.kind(tag) {
        case .recv:
            inFlight -= 1
            connections[slot]?.receiveCompleted(result)
        case .send:
            inFlight -= 1
            connections[slot]?.sendCompleted(result)
        case .accept:
            inFlight -= 1
            if slot < listeners.count { listeners[slot].acceptCompleted(result) }
        case .file:
            inFlight -= 1
            let continuation = fileWaiters[slot]!
            fileWaiters[slot] = nil
            freeFileSlots.append(slot)
            continuation.resume(returning: result)
        case .doorbell:
            if let uring {
                uring.read(fd: doorbellFD, into: &doorbellValue, count: 8, offset: 0, tag: OpTag.make(.doorbell, 0))
            }
        case .connection, .listener:
            break
        }
    }

    private func handleEpollEvent(tag: UInt64, events: UInt32) {
        let slot = OpTag.slot(tag)
        switch OpTag.kind(tag) {
        case .doorbell:
            var value: UInt64 = 0
            _ = Glibc.read(doorbellFD, &value, 8)
        case .connection:
            guard let connection = connections[slot] else { return }
            if events & UInt32(EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue | EPOLLRDHUP.rawValue) != 0 {
                connection.readable = true
                if connection.epollReceiveWaiting { performEpollReceive(connection) }
            }
            if events & UInt32(EPOLLOUT.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
                connection.writable = true
                if connection.epollSendWaiting { performEpollSend(connection) }
            }
        case .listener:
            if slot < listeners.count, listeners[slot].epollAcceptWaiting { performEpollAccept(listeners[slot]) }
        default:
            break
        }
    }

    // MARK: Arming operations (loop thread)

    func armReceive(_ connection: Connection, into buffer: UnsafeMutableRawPointer, count: Int) {
        inFlight += 1
        if let uring {
            uring.recv(fd: connection.fd, into: buffer, count: count, tag: OpTag.make(.recv, connection.slot))
        } else {
            connection.epollReceiveWaiting = true
            if connection.readable { performEpollReceive(connection) }
        }
    }

    private func performEpollReceive(_ connection: Connection) {
        let space = connection.receiveSpace
        let n = Glibc.recv(connection.fd, space.baseAddress, space.count, 0)
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
            connection.readable = false
            return
        }
        connection.epollReceiveWaiting = false
        if n >= 0 && n < space.count { connection.readable = false }
        epollCompleted.append((OpTag.make(.recv, connection.slot), n < 0 ? -errno : Int32(n)))
    }

    func armSend(_ connection: Connection) {
        inFlight += 1
        if let uring {
            uring.sendmsg(fd: connection.fd, message: connection.message, tag: OpTag.make(.send, connection.slot))
        } else {
            connection.epollSendWaiting = true
            if connection.writable { performEpollSend(connection) }
        }
    }

    private func performEpollSend(_ connection: Connection) {
        let n = Glibc.sendmsg(connection.fd, connection.message, Int32(MSG_NOSIGNAL))
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
            connection.writable = false
            return
        }
        connection.epollSendWaiting = false
        epollCompleted.append((OpTag.make(.send, connection.slot), n < 0 ? -errno : Int32(n)))
    }

    func armAccept(_ listener: Listener) {
        inFlight += 1
        listener.acceptArmed = true
        if let uring {
            uring.accept(fd: listener.fd, tag: OpTag.make(.accept, listener.slot))
        } else {
            listener.epollAcceptWaiting = true
            performEpollAccept(listener)
        }
    }

    private func performEpollAccept(_ listener: Listener) {
        let result = dmanoel_accept_nonblocking(listener.fd)
        if result == -EAGAIN || result == -EWOULDBLOCK { return }
        listener.epollAcceptWaiting = false
        epollCompleted.append((OpTag.make(.accept, listener.slot), result))
    }

    // MARK: Connections (loop thread)

    /// Takes ownership of a connected, non-blocking socket and serves it on this loop.
    @discardableResult
    func adopt(fd: Int32, peer: String, factory: ConnectionFactory, limiter: ConnectionLimiter? = nil) -> Connection? {
        let slot: Int
        if let free = freeConnectionSlots.popLast() { slot = free } else {
            connections.append(nil)
            slot = connections.count - 1
        }
        let connection = Connection(fd: fd, slot: slot, loop: self, peer: peer)
        connection.limiter = limiter
        connections[slot] = connection
        if let epoll {
            do throws(RuntimeError) {
                try epoll.add(fd: fd, events: UInt32(EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue) | EPOLLET.rawValue, tag: OpTag.make(.connection, slot))
            } catch {
                logger.warning("loop \(index): \(error); dropping connection from \(peer)")
                connections[slot] = nil
                freeConnectionSlots.append(slot)
                limiter?.release(ConnectionLimiter.host(of: peer))
                Glibc.close(fd)
                return nil
            }
        }
        connection.handler = factory(connection)
        connection.startReceiving()
        return connection
    }

    func remove(_ connection: Connection) {
        connection.limiter?.release(ConnectionLimiter.host(of: connection.peer))
        connection.limiter = nil
        epoll?.remove(fd: connection.fd)
        connections[connection.slot] = nil
        freeConnectionSlots.append(connection.slot)
    }

    func markDirty(_ connection: Connection) {
        dirty.append(connection)
    }

    private func flushDirty() {
        guard !dirty.isEmpty else { return }
        var i = 0
        while i < dirty.count {
            dirty[i].flush()
            i += 1
        }
        dirty.removeAll(keepingCapacity: true)
    }

    func register(_ listener: Listener) throws(RuntimeError) {
        listener.slot = listeners.count
        listeners.append(listener)
        if let epoll { try epoll.add(fd: listener.fd, events: UInt32(EPOLLIN.rawValue), tag: OpTag.make(.listener, listener.slot)) }
        armAccept(listener)
    }

    /// A consistent copy of this loop's counters (any thread).
    public func snapshot() -> LoopSnapshot {
        LoopSnapshot(
            index: index, cpu: cpu ?? -1, node: node, backend: backendKind, pollMode: pollMode,
            spinNanoseconds: spinNanoseconds,
            mode: LoopMode(rawValue: stats.mode.load(ordering: .relaxed)) ?? .poll,
            passes: stats.passes.load(ordering: .relaxed),
            completions: stats.completions.load(ordering: .relaxed),
            wakeups: stats.wakeups.load(ordering: .relaxed),
            tasksRun: stats.tasksRun.load(ordering: .relaxed),
            pollNanoseconds: stats.pollNanoseconds.load(ordering: .relaxed),
            sleepNanoseconds: stats.sleepNanoseconds.load(ordering: .relaxed),
            inFlight: stats.inFlight.load(ordering: .relaxed),
            submissionDepth: stats.submissionDepth.load(ordering: .relaxed),
            connections: stats.connections.load(ordering: .relaxed),
            bytesIn: stats.bytesIn.load(ordering: .relaxed),
            bytesOut: stats.bytesOut.load(ordering: .relaxed),
            memoryPolicy: memoryPolicyText.withLock { $0 },
            buffersOutstanding: stats.buffersOutstanding.load(ordering: .relaxed),
            bufferBytes: stats.bufferBytes.load(ordering: .relaxed),
            requestsInProgress: stats.requestsInProgress.load(ordering: .relaxed)
        )
    }

    let memoryPolicyText = Mutex<String>("default")
}

/// What a completion's user data says: the operation kind in the top byte, a slot below.
enum OpTag {
    enum Kind: UInt64 {
        case recv = 1, send, accept, file, doorbell, connection, listener
    }

    @inline(__always) static func make(_ kind: Kind, _ slot: Int) -> UInt64 { kind.rawValue << 56 | UInt64(slot) }
    @inline(__always) static func kind(_ tag: UInt64) -> Kind { Kind(rawValue: tag >> 56) ?? .doorbell }
    @inline(__always) static func slot(_ tag: UInt64) -> Int { Int(tag & 0x00FF_FFFF_FFFF_FFFF) }
}
