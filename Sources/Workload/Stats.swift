import Runtime

/// What one operation kind measured in one phase against one target. Kept per loop thread
/// while the phase runs and merged when it ends.
public struct OpStats: Sendable {
    public var count: UInt64 = 0
    public var errors: UInt64 = 0
    public var bytes: UInt64 = 0
    /// Start to end of each successful or failed operation.
    public var latency = LatencyHistogram()
    /// Start to the first byte of the reply.
    public var firstByte = LatencyHistogram()
    /// Error status → count (NFS3 status, HTTP status, or the client's own negative codes).
    public var errorCodes: [Int32: UInt64] = [:]

    public init() {}

    public mutating func merge(_ other: OpStats) {
        count += other.count
        errors += other.errors
        bytes += other.bytes
        latency.add(other.latency)
        firstByte.add(other.firstByte)
        for (code, n) in other.errorCodes { errorCodes[code, default: 0] += n }
    }
}

public struct OpKey: Hashable, Sendable, Comparable {
    public var target: Int
    public var op: String
    public static func < (a: OpKey, b: OpKey) -> Bool { (a.target, a.op) < (b.target, b.op) }
}

public struct PhaseResult: Sendable {
    public var name: String
    public var kind: PhaseKind
    public var seconds: Double
    public var clients: Int
    public var inFlight: Int
    public var ops: [OpKey: OpStats]
    /// The run was stopped (SIGINT) while this phase ran: it holds what was measured until then.
    public var interrupted = false

    public var total: OpStats {
        var all = OpStats()
        for (_, s) in ops { all.merge(s) }
        return all
    }
}
