import Runtime
import Server

/// Rates for one loop over the last interval, computed from two snapshots.
public struct LoopRow: Sendable, Equatable {
    public var index: Int
    public var cpu: Int
    public var node: Int
    public var mode: LoopMode
    public var pollMode: PollMode
    /// Share of the interval the loop spent awake (processing or spinning), 0...1.
    public var pollShare: Double
    public var passesPerSecond: Double
    public var completionsPerSecond: Double
    public var wakeupsPerSecond: Double
    public var inFlight: Int
    public var submissionDepth: Int
    public var connections: Int
    public var bytesInPerSecond: Double
    public var bytesOutPerSecond: Double
}

/// One protocol or operation over the last interval.
public struct OperationRow: Sendable, Equatable {
    public var name: String
    public var operationsPerSecond: Double
    public var bytesPerSecond: Double
    public var errorsPerSecond: Double
    /// Latency percentiles over the interval, in nanoseconds (0 when nothing happened).
    public var p50: UInt64
    public var p99: UInt64
    public var p999: UInt64
    public var maximum: UInt64
    /// Operations since start.
    public var total: UInt64

    init(name: String, now: OperationCounters, before: OperationCounters?, seconds: Double) {
        self.name = name
        let earlier = before ?? OperationCounters()
        let interval = now.latency.subtracting(earlier.latency)
        operationsPerSecond = Double(now.count &- earlier.count) / seconds
        bytesPerSecond = Double(now.bytes &- earlier.bytes) / seconds
        errorsPerSecond = Double(now.errors &- earlier.errors) / seconds
        p50 = interval.percentile(0.5)
        p99 = interval.percentile(0.99)
        p999 = interval.percentile(0.999)
        maximum = interval.maximum
        total = now.count
    }
}

/// A protocol's total row and its per-operation rows.
public struct ProtocolRow: Sendable, Equatable {
    public var total: OperationRow
    public var operations: [OperationRow]
}

/// One refresh of the console: everything drawn, kept for scrolling back.
public struct ConsoleFrame: Sendable, Equatable {
    public var uptimeNanoseconds: UInt64
    public var rows: [LoopRow]
    /// Protocol rows; operations that saw no traffic in the interval are left out.
    public var protocolRows: [ProtocolRow]
    /// Process CPU use over the interval, in CPUs (1.0 = one core busy).
    public var cpuUse: Double
    public var residentBytes: Int
    public var connections: Int
}

/// What the console shows, derived from consecutive server statuses, with the history of the
/// last frames (at least ten minutes of them) for pausing and scrolling back.
public struct ConsoleModel: Sendable {
    public private(set) var current: ServerStatus
    public private(set) var rows: [LoopRow] = []
    public private(set) var protocolRows: [ProtocolRow] = []
    /// Process CPU use over the last interval, in CPUs (1.0 = one core busy).
    public private(set) var cpuUse: Double = 0
    /// Past frames, oldest first; the last is the current one.
    public private(set) var history: [ConsoleFrame] = []
    /// How many frames are kept.
    public var historyCapacity = 600

    public init(first: ServerStatus) {
        current = first
        rows = Self.rows(from: first, to: first)
    }

    public mutating func update(_ next: ServerStatus) {
        let previous = current
        current = next
        rows = Self.rows(from: previous, to: next)
        protocolRows = Self.protocolRows(from: previous, to: next)
        let wall = Double(next.takenAt &- previous.takenAt)
        cpuUse = wall > 0 ? Double(next.process.cpuNanoseconds &- previous.process.cpuNanoseconds) / wall : 0
        let active = protocolRows.map { row in
            ProtocolRow(total: row.total, operations: row.operations.filter { $0.operationsPerSecond > 0 || $0.errorsPerSecond > 0 })
        }
        history.append(ConsoleFrame(uptimeNanoseconds: next.uptimeNanoseconds, rows: rows, protocolRows: active, cpuUse: cpuUse,
                                    residentBytes: next.process.residentBytes, connections: next.connections))
        if history.count > historyCapacity { history.removeFirst(history.count - historyCapacity) }
    }

    /// The recent op rates of protocol `name`, oldest first (for a sparkline).
    public func rateHistory(of name: String, last count: Int) -> [Double] {
        history.suffix(count).map { frame in frame.protocolRows.first { $0.total.name == name }?.total.operationsPerSecond ?? 0 }
    }

    static func protocolRows(from old: ServerStatus, to new: ServerStatus) -> [ProtocolRow] {
        let seconds = max(Double(new.takenAt &- old.takenAt) / 1e9, 1e-9)
        return new.protocols.map { snapshot in
            let before = old.protocols.first { $0.protocolName == snapshot.protocolName }
            let operations = snapshot.operations.indices.map { index in
                OperationRow(name: snapshot.operationNames[index], now: snapshot.operations[index],
                             before: before.flatMap { index < $0.operations.count ? $0.operations[index] : nil }, seconds: seconds)
            }
            return ProtocolRow(total: OperationRow(name: snapshot.protocolName, now: snapshot.total, before: before?.total, seconds: seconds),
                               operations: operations)
        }
    }

    static func rows(from old: ServerStatus, to new: ServerStatus) -> [LoopRow] {
        let seconds = max(Double(new.takenAt &- old.takenAt) / 1e9, 1e-9)
        return new.loops.map { loop in
            let before = old.loops.first { $0.index == loop.index } ?? loop
            let awake = Double(loop.pollNanoseconds &- before.pollNanoseconds)
            let asleep = Double(loop.sleepNanoseconds &- before.sleepNanoseconds)
            let share = awake + asleep > 0 ? awake / (awake + asleep) : (loop.mode == .poll ? 1 : 0)
            func rate(_ a: UInt64, _ b: UInt64) -> Double { Double(a &- b) / seconds }
            return LoopRow(
                index: loop.index, cpu: loop.cpu, node: loop.node, mode: loop.mode, pollMode: loop.pollMode,
                pollShare: share,
                passesPerSecond: rate(loop.passes, before.passes),
                completionsPerSecond: rate(loop.completions, before.completions),
                wakeupsPerSecond: rate(loop.wakeups, before.wakeups),
                inFlight: loop.inFlight, submissionDepth: loop.submissionDepth, connections: loop.connections,
                bytesInPerSecond: rate(loop.bytesIn, before.bytesIn),
                bytesOutPerSecond: rate(loop.bytesOut, before.bytesOut))
        }
    }
}

/// Number formatting shared by the console views.
enum Format {
    /// 1234 → "1.2k", 2_500_000 → "2.5M".
    static func count(_ value: Double) -> String {
        switch value {
        case ..<1_000: return String(Int(value.rounded()))
        case ..<1_000_000: return fixed(value / 1_000, 1) + "k"
        case ..<1_000_000_000: return fixed(value / 1_000_000, 1) + "M"
        default: return fixed(value / 1_000_000_000, 1) + "G"
        }
    }

    /// Bytes with binary units: "512B", "1.5K", "12.0M".
    static func bytes(_ value: Double) -> String {
        switch value {
        case ..<1024: return String(Int(value.rounded())) + "B"
        case ..<(1024 * 1024): return fixed(value / 1024, 1) + "K"
        case ..<(1024 * 1024 * 1024): return fixed(value / 1024 / 1024, 1) + "M"
        default: return fixed(value / 1024 / 1024 / 1024, 1) + "G"
        }
    }

    static func fixed(_ value: Double, _ decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = Int((value * scale).rounded())
        let whole = scaled / Int(scale)
        let fraction = abs(scaled % Int(scale))
        guard decimals > 0 else { return String(whole) }
        let digits = String(fraction)
        let sign = value < 0 && whole == 0 ? "-" : ""
        return sign + String(whole) + "." + String(repeating: "0", count: decimals - digits.count) + digits
    }

    static func duration(_ nanoseconds: UInt64) -> String {
        let total = nanoseconds / 1_000_000_000
        let h = total / 3600, m = (total / 60) % 60, s = total % 60
        func two(_ v: UInt64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(two(h)):\(two(m)):\(two(s))"
    }

    static func pad(_ text: String, _ width: Int, right: Bool = true) -> String {
        if text.count >= width { return String(text.prefix(width)) }
        let fill = String(repeating: " ", count: width - text.count)
        return right ? fill + text : text + fill
    }

    /// A latency: "850ns", "12.3µs", "4.1ms", "1.20s"; "-" when nothing was measured.
    static func latency(_ nanoseconds: UInt64) -> String {
        switch nanoseconds {
        case 0: return "-"
        case ..<1_000: return "\(nanoseconds)ns"
        case ..<1_000_000: return fixed(Double(nanoseconds) / 1e3, nanoseconds < 100_000 ? 1 : 0) + "µs"
        case ..<1_000_000_000: return fixed(Double(nanoseconds) / 1e6, nanoseconds < 100_000_000 ? 1 : 0) + "ms"
        default: return fixed(Double(nanoseconds) / 1e9, 2) + "s"
        }
    }

    /// A sparkline of `values` (one block character each, scaled to their maximum).
    static func sparkline(_ values: [Double]) -> String {
        let blocks: [Character] = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
        let top = values.max() ?? 0
        guard top > 0 else { return String(repeating: " ", count: values.count) }
        return String(values.map { value in
            value <= 0 ? blocks[0] : blocks[max(1, min(8, Int((value / top * 8).rounded(.up))))]
        })
    }

    static func spin(_ nanoseconds: Int) -> String {
        nanoseconds >= 1_000_000 ? fixed(Double(nanoseconds) / 1e6, 1) + "ms" : fixed(Double(nanoseconds) / 1e3, 0) + "µs"
    }
}
