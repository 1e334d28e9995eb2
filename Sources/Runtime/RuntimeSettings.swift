/// Which kernel interface a loop uses for sockets and file I/O.
public enum IOBackendKind: String, Sendable, CaseIterable, Equatable {
    /// One io_uring per loop thread, created on that thread (the default).
    case ioUring = "io_uring"
    /// epoll readiness plus plain system calls: the fallback where io_uring is unavailable.
    case epoll
}

/// How a loop waits for work.
public enum PollMode: String, Sendable, CaseIterable, Equatable {
    /// Busy-poll while work keeps arriving; sleep in the kernel after `spinNanoseconds` idle.
    case auto
    /// Never sleep: lowest latency, one CPU per loop fully used.
    case always
    /// Always sleep in the kernel when there is nothing to do.
    case never
}

/// Defaults shared by the configuration loader and the runtime.
public enum RuntimeDefaults {
    /// Idle time before an `auto` loop goes to sleep. A wake-up from sleep costs ~50 µs on this
    /// kind of VM, so spinning about that long before sleeping keeps busy periods on the fast path.
    public static let spinNanoseconds = 50_000
    /// Open connections over the whole server, and from one client address.
    public static let maxConnections = 10_000
    public static let maxConnectionsPerClient = 1_000
    public static let delegationThreads = 4
    public static let pollMode = PollMode.auto
    public static let io = IOBackendKind.ioUring
}
