import Runtime

/// Latency reports from result files: a table per run and phase (ops/s, MB/s, p50/p90/p99/
/// p99.9/max, errors), a comparison table when several runs are given, and in HTML an inline
/// SVG percentile plot.
public enum Report {
    public enum Format: String, Sendable, CaseIterable { case md, html, csv }

    /// Fixed-point text without Foundation.
    public static func fixed(_ value: Double, _ decimals: Int) -> String {
        guard value.isFinite else { return "-" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        let whole = Int(scaled / scale)
        var text = (value < 0 && scaled > 0 ? "-" : "") + String(whole)
        if decimals > 0 {
            let fraction = Int(scaled) - whole * Int(scale)
            let digits = String(fraction)
            text += "." + String(repeating: "0", count: decimals - digits.count) + digits
        }
        return text
    }

    /// Microseconds with a sensible number of decimals.
    public static func micros(_ ns: UInt64) -> String {
        let us = Double(ns) / 1000
        return fixed(us, us < 100 ? 1 : 0)
    }

    static let columns = ["op", "target", "ops", "ops/s", "MB/s", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs", "errors"]

    static func row(_ op: OpRecord) -> [String] {
        let h = op.latency
        var errors = String(op.errors)
        if !op.errorCodes.isEmpty { errors += " (" + op.errorCodes.map { "\($0.code)×\($0.count)" }.joined(separator: ", ") + ")" }
        return [op.op, op.target, String(op.count), fixed(op.opsPerSecond, 1), fixed(op.megabytesPerSecond, 2),
                micros(h.percentile(0.5)), micros(h.percentile(0.9)), micros(h.percentile(0.99)), micros(h.percentile(0.999)),
                micros(h.maximum), errors]
    }

    /// Phases shown: the measure phases when a run has any, else every phase.
    static func shownPhases(_ run: RunRecord) -> [String] {
        var seen: [String] = []
        let measured = run.ops.contains { $0.kind == "measure" || $0.kind == "replay" }
        for op in run.ops where (!measured || op.kind == "measure" || op.kind == "replay") && !seen.contains(op.phase) { seen.append(op.phase) }
        return seen
    }

    /// The comparison rows: (phase, op) present in every run, with ops/s and p99 per run.
    static func comparison(_ runs: [RunRecord]) -> [(phase: String, op: String, values: [(ops: Double, p99: UInt64)])] {
        guard let first = runs.first else { return [] }
        var out: [(String, String, [(Double, UInt64)])] = []
        for phase in shownPhases(first) {
            var ops: [String] = []
            for op in first.ops where op.phase == phase && !ops.contains(op.op) { ops.append(op.op) }
            for name in ops {
                var values: [(Double, UInt64)] = []
                for run in runs {
                    let rows = run.ops.filter { $0.phase == phase && $0.op == name }
                    guard !rows.isEmpty else { break }
                    var h = LatencyHistogram()
                    var count: UInt64 = 0
                    for r in rows { h.add(r.latency); count += r.count }
                    values.append((Double(count) / max(rows[0].seconds, 1e-9), h.percentile(0.99)))
                }
                if values.count == runs.count { out.append((phase, name, values)) }
            }
        }
        return out
    }

    public static func markdown(_ runs: [RunRecord]) -> String {
        var out = "# Latency report\n\n"
        for run in runs {
            out += "## \(run.label) — workload `\(run.workload)`\n\n"
            if !run.targets.isEmpty { out += "Targets: " + run.targets.map { "`\($0)`" }.joined(separator: ", ") + "\n\n" }
            for phase in shownPhases(run) {
                let rows = run.ops.filter { $0.phase == phase }
                let seconds = rows.first?.seconds ?? 0
                out += "### Phase \(phase) (\(fixed(seconds, 2)) s)\n\n"
                out += "| " + columns.joined(separator: " | ") + " |\n"
                out += "|" + columns.map { _ in "---" }.joined(separator: "|") + "|\n"
                for op in rows { out += "| " + row(op).joined(separator: " | ") + " |\n" }
                out += "\n"
            }
        }
        if runs.count > 1 {
            out += "## Comparison (ops/s and p99 µs; ratio = run / first run)\n\n"
            var header = ["phase", "op"]
            for (i, run) in runs.enumerated() {
                header += ["\(run.label) ops/s", "\(run.label) p99 µs"]
                if i > 0 { header.append("ratio ops/s") }
            }
            out += "| " + header.joined(separator: " | ") + " |\n|" + header.map { _ in "---" }.joined(separator: "|") + "|\n"
            for line in comparison(runs) {
                var cells = [line.phase, line.op]
                for (i, v) in line.values.enumerated() {
                    cells += [fixed(v.ops, 1), micros(v.p99)]
                    if i > 0 { cells.append(line.values[0].ops > 0 ? fixed(v.ops / line.values[0].ops, 2) : "-") }
                }
                out += "| " + cells.joined(separator: " | ") + " |\n"
            }
            out += "\n"
        }
        return out
    }

    /// One row per run, phase, target and operation (every phase, not only measure), with the
    /// same numbers as the tables, for spreadsheets and plotting tools.
    public static func csv(_ runs: [RunRecord]) -> String {
        var out = "run,workload,phase,kind,target,op,count,errors,bytes,seconds,ops_per_s,mb_per_s,mean_us,p50_us,p90_us,p99_us,p999_us,max_us\n"
        func field(_ s: String) -> String {
            s.contains(",") || s.contains("\"") ? "\"" + s.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\"" : s
        }
        for run in runs {
            for op in run.ops {
                let h = op.latency
                let us = { (ns: UInt64) in fixed(Double(ns) / 1000, 2) }
                out += [field(run.label), field(run.workload), field(op.phase), op.kind, field(op.target), op.op, String(op.count),
                        String(op.errors), String(op.bytes), fixed(op.seconds, 6), fixed(op.opsPerSecond, 1), fixed(op.megabytesPerSecond, 2),
                        us(h.total > 0 ? h.sum / h.total : 0), us(h.percentile(0.5)), us(h.percentile(0.9)), us(h.percentile(0.99)),
                        us(h.percentile(0.999)), us(h.maximum)].joined(separator: ",") + "\n"
            }
        }
        return out
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }

    public static func html(_ runs: [RunRecord]) -> String {
        var out = """
            <!DOCTYPE html><html><head><meta charset="utf-8"><title>Latency report</title><style>
            body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
            td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#eee}td:first-child,td:nth-child(2){text-align:left}
            </style></head><body><h1>Latency report</h1>

            """
        var series: [(String, LatencyHistogram)] = []
        for run in runs {
            out += "<h2>\(escape(run.label)) — workload <code>\(escape(run.workload))</code></h2>\n"
            for phase in shownPhases(run) {
                let rows = run.ops.filter { $0.phase == phase }
                out += "<h3>Phase \(escape(phase)) (\(fixed(rows.first?.seconds ?? 0, 2)) s)</h3>\n<table><tr>"
                out += columns.map { "<th>\(escape($0))</th>" }.joined() + "</tr>\n"
                for op in rows {
                    out += "<tr>" + row(op).map { "<td>\(escape($0))</td>" }.joined() + "</tr>\n"
                    series.append(("\(runs.count > 1 ? run.label + " " : "")\(op.op) \(op.target)", op.latency))
                }
                out += "</table>\n"
            }
        }
        if runs.count > 1 {
            out += "<h2>Comparison</h2>\n<table><tr><th>phase</th><th>op</th>"
            for (i, run) in runs.enumerated() {
                out += "<th>\(escape(run.label)) ops/s</th><th>\(escape(run.label)) p99 µs</th>" + (i > 0 ? "<th>ratio ops/s</th>" : "")
            }
            out += "</tr>\n"
            for line in comparison(runs) {
                out += "<tr><td>\(escape(line.phase))</td><td>\(escape(line.op))</td>"
                for (i, v) in line.values.enumerated() {
                    out += "<td>\(fixed(v.ops, 1))</td><td>\(micros(v.p99))</td>"
                    if i > 0 { out += "<td>\(line.values[0].ops > 0 ? fixed(v.ops / line.values[0].ops, 2) : "-")</td>" }
                }
                out += "</tr>\n"
            }
            out += "</table>\n"
        }
        out += "<h2>Percentile ladder</h2>\n" + svg(series) + "\n"
        var rates: [(String, [(Double, Double)])] = []
        for run in runs {
            for phase in shownPhases(run) {
                let samples = run.intervals.filter { $0.phase == phase }
                var points: [(Double, Double)] = []
                var previous = (t: 0.0, count: UInt64(0))
                for s in samples where s.t > previous.t {
                    points.append((s.t, Double(s.count - min(s.count, previous.count)) / (s.t - previous.t)))
                    previous = (s.t, s.count)
                }
                if !points.isEmpty { rates.append(("\(runs.count > 1 ? run.label + " " : "")\(phase)", points)) }
            }
        }
        if !rates.isEmpty { out += "<h2>Operations per second over time</h2>\n" + timeSeries(rates) + "\n" }
        out += "</body></html>\n"
        return out
    }

    /// Latency (log scale) against percentile ("nines" scale: 0, 90, 99, 99.9, 99.99).
    static func svg(_ series: [(String, LatencyHistogram)]) -> String {
        let width = 760.0, height = 420.0, left = 70.0, right = 230.0, top = 20.0, bottom = 50.0
        let plotW = width - left - right, plotH = height - top - bottom
        let fractions: [Double] = (0...80).map { 1 - pow10(-Double($0) / 20) }   // 0 .. 99.99 %
        var lo = Double.infinity, hi = 0.0
        for (_, h) in series where h.total > 0 {
            lo = min(lo, Double(max(h.percentile(0), 100)))
            hi = max(hi, Double(max(h.maximum, 100)))
        }
        if !lo.isFinite { lo = 1000; hi = 10000 }
        let logLo = log10(lo) - 0.05, logHi = max(log10(hi) + 0.05, logLo + 1)
        func x(_ f: Double) -> Double { left + min(-log10(max(1 - f, 1e-4)) / 4, 1) * plotW }
        func y(_ ns: Double) -> Double { top + plotH - (log10(max(ns, 1)) - logLo) / (logHi - logLo) * plotH }
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-size=\"11\">"
        out += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plotW)\" height=\"\(plotH)\" fill=\"none\" stroke=\"#999\"/>"
        for (label, f) in [("0%", 0.0), ("90%", 0.9), ("99%", 0.99), ("99.9%", 0.999), ("99.99%", 0.9999)] {
            out += "<line x1=\"\(x(f))\" x2=\"\(x(f))\" y1=\"\(top)\" y2=\"\(top + plotH)\" stroke=\"#eee\"/>"
            out += "<text x=\"\(x(f))\" y=\"\(top + plotH + 15)\" text-anchor=\"middle\">\(label)</text>"
        }
        var decade = floor(logLo)
        while decade <= logHi {
            if decade >= logLo {
                let ns = pow10(decade)
                out += "<line x1=\"\(left)\" x2=\"\(left + plotW)\" y1=\"\(y(ns))\" y2=\"\(y(ns))\" stroke=\"#eee\"/>"
                out += "<text x=\"\(left - 5)\" y=\"\(y(ns) + 4)\" text-anchor=\"end\">\(micros(UInt64(ns))) µs</text>"
            }
            decade += 1
        }
        out += "<text x=\"\(left + plotW / 2)\" y=\"\(height - 10)\" text-anchor=\"middle\">percentile</text>"
        for (i, (label, h)) in series.enumerated() where h.total > 0 {
            let color = colors[i % colors.count]
            let points = fractions.map { f in "\(fixed(x(f), 1)),\(fixed(y(Double(h.percentile(f))), 1))" }.joined(separator: " ")
            out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(points)\"/>"
            let ly = top + 12 + Double(i) * 14
            out += "<line x1=\"\(left + plotW + 10)\" x2=\"\(left + plotW + 25)\" y1=\"\(ly - 4)\" y2=\"\(ly - 4)\" stroke=\"\(color)\" stroke-width=\"2\"/>"
            out += "<text x=\"\(left + plotW + 30)\" y=\"\(ly)\">\(escape(String(label.prefix(34))))</text>"
        }
        return out + "</svg>"
    }

    /// ops/s against seconds into the phase, one line per run and phase (from `interval` lines).
    static func timeSeries(_ series: [(String, [(Double, Double)])]) -> String {
        let width = 760.0, height = 300.0, left = 70.0, right = 230.0, top = 20.0, bottom = 45.0
        let plotW = width - left - right, plotH = height - top - bottom
        let maxT = max(series.flatMap { $0.1.map(\.0) }.max() ?? 1, 1e-3)
        let maxY = max(series.flatMap { $0.1.map(\.1) }.max() ?? 1, 1) * 1.1
        func x(_ t: Double) -> Double { left + t / maxT * plotW }
        func y(_ v: Double) -> Double { top + plotH - v / maxY * plotH }
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-size=\"11\">"
        out += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plotW)\" height=\"\(plotH)\" fill=\"none\" stroke=\"#999\"/>"
        for i in 0...4 {
            let v = maxY * Double(i) / 4
            out += "<text x=\"\(left - 5)\" y=\"\(fixed(y(v) + 4, 1))\" text-anchor=\"end\">\(fixed(v, 0))</text>"
            let t = maxT * Double(i) / 4
            out += "<text x=\"\(fixed(x(t), 1))\" y=\"\(top + plotH + 15)\" text-anchor=\"middle\">\(fixed(t, 1)) s</text>"
        }
        for (i, (label, points)) in series.enumerated() {
            let color = colors[i % colors.count]
            out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"" + points.map { "\(fixed(x($0.0), 1)),\(fixed(y($0.1), 1))" }.joined(separator: " ") + "\"/>"
            let ly = top + 12 + Double(i) * 14
            out += "<line x1=\"\(left + plotW + 10)\" x2=\"\(left + plotW + 25)\" y1=\"\(ly - 4)\" y2=\"\(ly - 4)\" stroke=\"\(color)\" stroke-width=\"2\"/>"
            out += "<text x=\"\(left + plotW + 30)\" y=\"\(ly)\">\(escape(String(label.prefix(34))))</text>"
        }
        return out + "</svg>"
    }

    static func pow10(_ e: Double) -> Double { Glibc.pow(10, e) }
}

import Glibc
