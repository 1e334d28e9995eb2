/// Counters of one operation of one protocol.
public struct OperationCounters: Sendable, Equatable {
    public var count: UInt64 = 0
    public var errors: UInt64 = 0
    public var bytes: UInt64 = 0
    public var latency = LatencyHistogram()

    public init() {}

    public mutating func add(_ other: OperationCounters) {
        count &+= other.count
        errors &+= other.errors
        bytes &+= other.bytes
        latency.add(other.latency)
    }
}

/// Per-operation counters of one protocol on one loop. Only the loop's thread writes them —
/// plain memory, no atomics — and a snapshot is taken by asking the loop to copy them
/// (`LoopGroup.protocolSnapshots`), so readers never see a torn value and the hot path never
/// shares a cache line with them.
public final class ProtocolStats {
    public let protocolName: String
    public let operationNames: [String]
    var operations: [OperationCounters]

    init(protocolName: String, operationNames: [String]) {
        self.protocolName = protocolName
        self.operationNames = operationNames
        operations = Array(repeating: OperationCounters(), count: operationNames.count)
    }

    /// Records one operation; `error` counts protocol-level failures (a non-OK status).
    @inline(__always)
    public func record(_ operation: Int, nanoseconds: UInt64, bytes: Int = 0, error: Bool = false) {
        guard operation >= 0 && operation < operations.count else { return }
        operations[operation].count &+= 1
        operations[operation].bytes &+= UInt64(bytes)
        if error { operations[operation].errors &+= 1 }
        operations[operation].latency.record(nanoseconds)
    }

    func snapshot() -> ProtocolSnapshot {
        ProtocolSnapshot(protocolName: protocolName, operationNames: operationNames, operations: operations)
    }
}

/// Counters of one protocol, merged over loops or from one loop.
public struct ProtocolSnapshot: Sendable, Equatable {
    public var protocolName: String
    public var operationNames: [String]
    public var operations: [OperationCounters]

    public init(protocolName: String, operationNames: [String], operations: [OperationCounters]) {
        self.protocolName = protocolName
        self.operationNames = operationNames
        self.operations = operations
    }

    public var total: OperationCounters {
        operations.reduce(into: OperationCounters()) { $0.add($1) }
    }
}

extension EventLoop {
    /// The counters of `protocolName` on this loop, created on first use. Loop thread only.
    public func protocolStats(_ protocolName: String, operations: [String]) -> ProtocolStats {
        precondition(inLoop, "protocol stats belong to their loop's thread")
        if let existing = protocolStatsTable.first(where: { $0.protocolName == protocolName }) { return existing }
        let stats = ProtocolStats(protocolName: protocolName, operationNames: operations)
        protocolStatsTable.append(stats)
        return stats
    }
}

extension LoopGroup {
    /// Every protocol's counters summed over all loops. Each loop copies its own counters on its
    /// own thread; the caller waits up to `timeout` seconds per loop (a loop that does not
    /// answer in time is left out). Call from a non-loop thread (console, admin API).
    public func protocolSnapshots(timeout: Double = 1.0) -> [ProtocolSnapshot] {
        var merged: [ProtocolSnapshot] = []
        for loop in loops {
            let box = OneShot<[ProtocolSnapshot]>()
            loop.execute { box.set(loop.protocolStatsTable.map { $0.snapshot() }) }
            for snapshot in box.wait(seconds: timeout) ?? [] {
                if let index = merged.firstIndex(where: { $0.protocolName == snapshot.protocolName }) {
                    for op in snapshot.operations.indices where op < merged[index].operations.count {
                        merged[index].operations[op].add(snapshot.operations[op])
                    }
                } else {
                    merged.append(snapshot)
                }
            }
        }
        return merged
    }
}
