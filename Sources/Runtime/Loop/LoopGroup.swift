import Glibc
import Logging
import Synchronization

/// Settings a `LoopGroup` starts with.
public struct LoopGroupSettings: Sendable {
    /// Loop threads; nil = one per CPU in the process affinity mask.
    public var threads: Int?
    public var delegationThreads: Int
    public var io: IOBackendKind
    public var pollMode: PollMode
    public var spinNanoseconds: Int
    /// CPU layout used for placement; nil = `Topology.detect()`.
    public var topology: Topology?
    /// Pin loops to CPUs (tests on a busy machine may turn this off).
    public var pinThreads: Bool
    /// Open connections allowed over all listeners, and from one client address (no limit
    /// unless set: the server sets them from its configuration; tools built on the runtime,
    /// like the echo benchmark, are not capped).
    public var maxConnections: Int
    public var maxConnectionsPerClient: Int

    public init(threads: Int? = nil, delegationThreads: Int = RuntimeDefaults.delegationThreads,
                io: IOBackendKind = RuntimeDefaults.io, pollMode: PollMode = RuntimeDefaults.pollMode,
                spinNanoseconds: Int = RuntimeDefaults.spinNanoseconds, topology: Topology? = nil, pinThreads: Bool = true,
                maxConnections: Int = .max, maxConnectionsPerClient: Int = .max) {
        self.maxConnections = maxConnections
        self.maxConnectionsPerClient = maxConnectionsPerClient
        self.threads = threads
        self.delegationThreads = delegationThreads
        self.io = io
        self.pollMode = pollMode
        self.spinNanoseconds = spinNanoseconds
        self.topology = topology
        self.pinThreads = pinThreads
    }
}

/// The server's event-loop threads, its delegation pool and its listeners.
public final class LoopGroup: @unchecked Sendable {
    public let loops: [EventLoop]
    public let delegation: DelegationPool
    /// The connection caps every listener of this group applies.
    public let limiter: ConnectionLimiter
    public let topology: Topology
    /// The backend in use (io_uring falls back to epoll when the kernel refuses it).
    public let io: IOBackendKind
    private let logger: Logger
    private var listeners: [Listener] = []

    public init(_ settings: LoopGroupSettings, logger: Logger = Logger(label: "dmanoel.runtime")) throws(RuntimeError) {
        self.logger = logger
        let topology = settings.topology ?? Topology.detect()
        self.topology = topology
        let count = settings.threads ?? max(1, topology.allCPUs.count)
        guard count >= 1 else { throw RuntimeError.invalidSetting("threads must be at least 1 (got \(count))") }
        let placement = topology.placement(loops: count)
        logger.info("topology: \(topology)")

        var io = settings.io
        var loops: [EventLoop] = []
        var index = 0
        while index < count {
            let (cpu, node) = placement[index]
            let loop = try EventLoop(index: index, cpu: settings.pinThreads ? cpu : nil, node: node, backend: io,
                                     pollMode: settings.pollMode, spinNanoseconds: settings.spinNanoseconds, logger: logger)
            do {
                try loop.start()
            } catch let error where io == .ioUring && index == 0 {
                logger.warning("io_uring unavailable (\(error)); falling back to epoll")
                io = .epoll
                continue
            }
            loops.append(loop)
            logger.debug("loop \(index): cpu \(settings.pinThreads ? String(cpu) : "any"), node \(node), \(io.rawValue)")
            index += 1
        }
        self.loops = loops
        self.io = io
        delegation = try DelegationPool(threads: settings.delegationThreads)
        limiter = ConnectionLimiter(maxTotal: settings.maxConnections, maxPerClient: settings.maxConnectionsPerClient)
        logger.info("\(count) loop thread(s) on \(io.rawValue), poll mode \(settings.pollMode.rawValue), spin \(settings.spinNanoseconds) ns; \(settings.delegationThreads) delegation thread(s)")
    }

    /// Listens on `host:port` (port 0: the kernel picks one) and serves each connection with a
    /// handler made by `factory`, spreading connections over the loops.
    @discardableResult
    public func listen(host: String, port: Int, factory: @escaping ConnectionFactory) throws(RuntimeError) -> Listener {
        let (fd, address, boundPort) = try Listener.bindSocket(host: host, port: port)
        let home = loops[listeners.count % loops.count]
        let listener = Listener(fd: fd, boundAddress: address, port: boundPort, home: home, targets: loops, factory: factory, limiter: limiter)
        listeners.append(listener)
        let registered = OneShot<Result<Void, RuntimeError>>()
        home.execute { [unowned home] in
            do throws(RuntimeError) {
                try home.register(listener)
                registered.set(.success(()))
            } catch {
                registered.set(.failure(error))
            }
        }
        if case let .failure(error)? = registered.wait() {
            listener.closeSocket()
            throw error
        }
        return listener
    }

    /// Prepares a graceful stop: closes every listener, stops reading new requests on every
    /// connection, and waits up to `timeoutNanoseconds` for the requests in progress to be
    /// answered. Returns how many were still in progress when it gave up (0: all done).
    /// Connections stay open until `shutdown`.
    public func drain(timeoutNanoseconds: UInt64) -> Int {
        for listener in listeners {
            listener.home.execute { listener.closeSocket() }
        }
        let marked = OneShot<Void>()
        let total = loops.count
        let counter = Mutex(0)
        for loop in loops {
            loop.execute { [unowned loop] in
                loop.draining = true
                if counter.withLock({ count -> Bool in
                    count += 1
                    return count == total
                }) { marked.set(()) }
            }
        }
        _ = marked.wait(seconds: Double(timeoutNanoseconds) / 1e9)
        let deadline = monotonicNanoseconds() &+ timeoutNanoseconds
        // Two quiet readings in a row: a request can start from bytes received just before.
        var quiet = 0
        while true {
            let busy = loops.reduce(0) { $0 + $1.snapshot().requestsInProgress }
            quiet = busy == 0 ? quiet + 1 : 0
            if quiet >= 2 || monotonicNanoseconds() >= deadline { return busy }
            usleep(5_000)
        }
    }

    /// Sets the poll mode of every loop, or of one (`loop` = its index).
    public func setPollMode(_ mode: PollMode, loop: Int? = nil) {
        for target in loops where loop == nil || target.index == loop { target.pollMode = mode }
    }

    public func setSpinNanoseconds(_ nanoseconds: Int, loop: Int? = nil) {
        for target in loops where loop == nil || target.index == loop { target.spinNanoseconds = nanoseconds }
    }

    public func snapshot() -> [LoopSnapshot] { loops.map { $0.snapshot() } }

    /// Stops every loop (closing its connections and listeners) and the delegation pool.
    public func shutdown() {
        for loop in loops { loop.stop() }
        for loop in loops { loop.join() }
        delegation.shutdown()
    }
}
