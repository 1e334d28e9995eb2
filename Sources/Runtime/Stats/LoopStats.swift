import Synchronization

/// Whether a loop is spinning on its queues or sleeping in the kernel.
public enum LoopMode: Int, Sendable {
    case poll = 0
    case event = 1
}

/// Counters of one loop thread. Only the owning loop writes them (relaxed stores, no
/// read-modify-write, so no shared cache-line traffic on the hot path); other threads read
/// them as snapshots. The loop keeps its running totals in plain fields and publishes them
/// here once per pass.
public final class LoopStats: Sendable {
    let mode = Atomic<Int>(LoopMode.poll.rawValue)
    let passes = Atomic<UInt64>(0)
    let completions = Atomic<UInt64>(0)
    let wakeups = Atomic<UInt64>(0)
    let tasksRun = Atomic<UInt64>(0)
    let pollNanoseconds = Atomic<UInt64>(0)
    let sleepNanoseconds = Atomic<UInt64>(0)
    let inFlight = Atomic<Int>(0)
    let submissionDepth = Atomic<Int>(0)
    let connections = Atomic<Int>(0)
    let bytesIn = Atomic<UInt64>(0)
    let bytesOut = Atomic<UInt64>(0)
    let buffersOutstanding = Atomic<Int>(0)
    let requestsInProgress = Atomic<Int>(0)
    let bufferBytes = Atomic<Int>(0)

    init() {}
}

/// A point-in-time copy of one loop's counters, safe to keep and compare.
public struct LoopSnapshot: Sendable, Equatable {
    public var index: Int
    public var cpu: Int
    public var node: Int
    public var backend: IOBackendKind
    public var pollMode: PollMode
    public var spinNanoseconds: Int
    public var mode: LoopMode
    public var passes: UInt64
    public var completions: UInt64
    public var wakeups: UInt64
    public var tasksRun: UInt64
    /// Time spent awake (processing or spinning) since start.
    public var pollNanoseconds: UInt64
    /// Time spent asleep in the kernel since start.
    public var sleepNanoseconds: UInt64
    /// Operations submitted to the kernel and not yet completed.
    public var inFlight: Int
    /// Submissions queued at the last kernel entry.
    public var submissionDepth: Int
    public var connections: Int
    public var bytesIn: UInt64
    public var bytesOut: UInt64
    /// Placement of this loop's buffer memory: "numa node N", or "default" when libnuma could not.
    public var memoryPolicy: String
    /// Buffers of the loop's pool handed out and not returned (receive buffers of open
    /// connections, requests in progress): back to its idle level when clients are gone.
    public var buffersOutstanding: Int
    /// Bytes the loop's pool holds from the system, in use or free.
    public var bufferBytes: Int
    /// Protocol requests started on this loop and not yet answered.
    public var requestsInProgress: Int

    public init(index: Int, cpu: Int, node: Int, backend: IOBackendKind, pollMode: PollMode, spinNanoseconds: Int, mode: LoopMode,
                passes: UInt64, completions: UInt64, wakeups: UInt64, tasksRun: UInt64, pollNanoseconds: UInt64, sleepNanoseconds: UInt64,
                inFlight: Int, submissionDepth: Int, connections: Int, bytesIn: UInt64, bytesOut: UInt64, memoryPolicy: String,
                buffersOutstanding: Int = 0, bufferBytes: Int = 0, requestsInProgress: Int = 0) {
        self.index = index
        self.cpu = cpu
        self.node = node
        self.backend = backend
        self.pollMode = pollMode
        self.spinNanoseconds = spinNanoseconds
        self.mode = mode
        self.passes = passes
        self.completions = completions
        self.wakeups = wakeups
        self.tasksRun = tasksRun
        self.pollNanoseconds = pollNanoseconds
        self.sleepNanoseconds = sleepNanoseconds
        self.inFlight = inFlight
        self.submissionDepth = submissionDepth
        self.connections = connections
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.memoryPolicy = memoryPolicy
        self.buffersOutstanding = buffersOutstanding
        self.bufferBytes = bufferBytes
        self.requestsInProgress = requestsInProgress
    }
}

/// Busy and queued work of the delegation pool.
public struct DelegationSnapshot: Sendable, Equatable {
    public var threads: Int
    public var busy: Int
    public var queued: Int
    public var completed: UInt64

    public init(threads: Int, busy: Int, queued: Int, completed: UInt64) {
        self.threads = threads
        self.busy = busy
        self.queued = queued
        self.completed = completed
    }
}
