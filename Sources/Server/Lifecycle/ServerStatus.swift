import Runtime

/// A service endpoint from the configuration and whether this build serves it.
public struct Endpoint: Sendable, Equatable {
    public var service: String
    public var address: String
    /// False while the protocol behind this port is not part of this build yet.
    public var served: Bool

    public init(service: String, address: String, served: Bool) {
        self.service = service
        self.address = address
        self.served = served
    }
}

/// Everything the console, the admin API and the metrics read about a running server at one
/// moment. Built from per-thread snapshots; reading it never blocks a loop.
public struct ServerStatus: Sendable {
    public var version: String
    public var configSource: String
    public var uptimeNanoseconds: UInt64
    /// Monotonic time the status was taken, for computing rates between two statuses.
    public var takenAt: UInt64
    public var io: IOBackendKind
    public var endpoints: [Endpoint]
    public var process: ProcessStats
    public var loops: [LoopSnapshot]
    public var delegation: DelegationSnapshot
    public var rdma: String
    /// Per-protocol, per-operation counters and latency histograms (cumulative since start).
    public var protocols: [ProtocolSnapshot]

    public var connections: Int { loops.map(\.connections).reduce(0, +) }

    public init(version: String, configSource: String, uptimeNanoseconds: UInt64, takenAt: UInt64, io: IOBackendKind, endpoints: [Endpoint],
                process: ProcessStats, loops: [LoopSnapshot], delegation: DelegationSnapshot, rdma: String, protocols: [ProtocolSnapshot]) {
        self.version = version
        self.configSource = configSource
        self.uptimeNanoseconds = uptimeNanoseconds
        self.takenAt = takenAt
        self.io = io
        self.endpoints = endpoints
        self.process = process
        self.loops = loops
        self.delegation = delegation
        self.rdma = rdma
        self.protocols = protocols
    }
}

/// A change an operator makes while the server runs (console keys, later the admin API).
public enum TuningChange: Sendable, Equatable {
    /// Poll mode for every loop (`loop` nil) or one loop.
    case pollMode(PollMode, loop: Int?)
    case spinNanoseconds(Int, loop: Int?)
    case delegationThreads(Int)
    /// The number of event-loop threads: refused while the server runs (connections are bound
    /// to their loop's ring), with the way to change it at the next start.
    case loopThreads(Int)
}

/// What the console watches and tunes: the server in this process, or (later) one reached
/// through its admin API.
public protocol ServerControl: Sendable {
    func status() -> ServerStatus
    /// Applies a change and returns a line describing what took effect.
    func apply(_ change: TuningChange) -> Result<String, ServerError>
    func recentLogLines(_ count: Int) -> [String]
    /// Writes the current tuning (poll mode, spin, delegation threads) into the configuration
    /// file the server runs from; returns a line saying what was written.
    func saveTuning() -> Result<String, ServerError>
}
