import Glibc
import Runtime
import Server

/// `--plain`: one text line per interval for logs and scripts, e.g.
/// `t=12s conns=3 cpu=0.41 rss=14.2M loop0=EVENT/3%/120pass/s ...`.
public enum PlainConsole {
    public static func line(_ model: ConsoleModel) -> String {
        let status = model.current
        var text = "t=\(status.uptimeNanoseconds / 1_000_000_000)s conns=\(status.connections)"
        text += " cpu=\(Format.fixed(model.cpuUse, 2)) rss=\(Format.bytes(Double(status.process.residentBytes)))"
        for row in model.rows {
            text += " loop\(row.index)=\(row.mode == .poll ? "POLL" : "EVENT")"
            text += "/poll\(Int((row.pollShare * 100).rounded()))%"
            text += "/\(Format.count(row.passesPerSecond))pass/s/\(Format.count(row.completionsPerSecond))cq/s"
            text += "/\(Format.count(row.wakeupsPerSecond))wake/s/in\(Format.bytes(row.bytesInPerSecond))/out\(Format.bytes(row.bytesOutPerSecond))"
        }
        for row in model.protocolRows {
            let name = row.total.name.lowercased()
            text += " \(name)=\(Format.count(row.total.operationsPerSecond))op/s/p50:\(Format.latency(row.total.p50))/p99:\(Format.latency(row.total.p99))"
        }
        text += " delegation=\(status.delegation.busy)/\(status.delegation.threads)busy,\(status.delegation.queued)queued"
        return text
    }

    /// Prints a line every `interval` seconds until `shouldStop` returns true.
    public static func run(_ control: some ServerControl, interval: Double, shouldStop: () -> Bool) {
        var model = ConsoleModel(first: control.status())
        while !shouldStop() {
            let deadline = monotonicNanoseconds() + UInt64(interval * 1e9)
            while monotonicNanoseconds() < deadline && !shouldStop() { usleep(20_000) }
            if shouldStop() { break }
            model.update(control.status())
            let text = line(model) + "\n"
            _ = text.withCString { write(1, $0, strlen($0)) }
        }
    }
}
