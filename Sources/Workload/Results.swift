import Glibc
import JSON
import LoadClients
import Runtime

/// One op row of a result file, as the report reads it back.
public struct OpRecord: Sendable {
    public var phase: String
    public var kind: String
    public var target: String
    public var op: String
    public var seconds: Double
    public var count: UInt64
    public var errors: UInt64
    public var bytes: UInt64
    public var latency: LatencyHistogram
    public var errorCodes: [(code: Int32, count: UInt64)]

    public var opsPerSecond: Double { seconds > 0 ? Double(count) / seconds : 0 }
    public var megabytesPerSecond: Double { seconds > 0 ? Double(bytes) / seconds / 1_000_000 : 0 }
}

/// A result file: the run's header and its op rows.
public struct RunRecord: Sendable {
    public var label: String
    public var workload: String
    public var targets: [String]
    public var ops: [OpRecord]
    /// The time series: per phase, (seconds since the phase began, operations so far).
    public var intervals: [(phase: String, t: Double, count: UInt64)] = []
}

/// Writes and reads result files: JSON lines, one object per line, `type` run / phase / op.
public enum Results {
    static func us(_ ns: UInt64) -> JSONValue { .number((Double(ns) / 10).rounded() / 100) }

    public static func runLine(workload: Workload, source: String, targets: [Target], threads: Int, started: Int) -> String {
        let cpus = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        let object: JSONObject = [
            "type": "run",
            "workload": .string(workload.name),
            "file": .string(source),
            "targets": .array(targets.map { .string($0.description) }),
            "seed": .number(Double(workload.seed)),
            "threads": .number(Double(threads)),
            "started_unix": .number(Double(started)),
            "host": .string(String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)),
            "cpus": .number(Double(cpus)),
        ]
        return JSONValue.object(object).serialized(pretty: false)
    }

    /// One sample of the running phase's totals (the results' time series).
    public static func intervalLine(_ p: Runner.Progress) -> String {
        let o: JSONObject = [
            "type": "interval", "phase": .string(p.phase), "t": .number((p.elapsed * 1000).rounded() / 1000),
            "count": .number(Double(p.ops)), "errors": .number(Double(p.errors)), "bytes": .number(Double(p.bytes)),
        ]
        return JSONValue.object(o).serialized(pretty: false)
    }

    /// The phase line and one line per (target, op).
    public static func lines(_ phase: PhaseResult, targets: [Target]) -> [String] {
        let total = phase.total
        var out: [String] = []
        let header: JSONObject = [
            "type": "phase", "phase": .string(phase.name), "kind": .string(phase.kind.rawValue),
            "seconds": .number(phase.seconds), "clients": .number(Double(phase.clients)), "in_flight": .number(Double(phase.inFlight)),
            "count": .number(Double(total.count)), "errors": .number(Double(total.errors)), "bytes": .number(Double(total.bytes)),
            "interrupted": .bool(phase.interrupted),
        ]
        out.append(JSONValue.object(header).serialized(pretty: false))
        for key in phase.ops.keys.sorted() {
            let s = phase.ops[key]!
            let h = s.latency
            var o = JSONObject()
            o["type"] = "op"
            o["phase"] = .string(phase.name)
            o["kind"] = .string(phase.kind.rawValue)
            o["target"] = .string(targets[key.target].description)
            o["protocol"] = .string(targets[key.target].kind.rawValue)
            o["op"] = .string(key.op)
            o["seconds"] = .number(phase.seconds)
            o["count"] = .number(Double(s.count))
            o["errors"] = .number(Double(s.errors))
            o["bytes"] = .number(Double(s.bytes))
            o["ops_per_s"] = .number((Double(s.count) / max(phase.seconds, 1e-9) * 10).rounded() / 10)
            o["mb_per_s"] = .number((Double(s.bytes) / max(phase.seconds, 1e-9) / 1e6 * 100).rounded() / 100)
            o["mean_us"] = us(h.total > 0 ? h.sum / h.total : 0)
            o["p50_us"] = us(h.percentile(0.5))
            o["p90_us"] = us(h.percentile(0.9))
            o["p99_us"] = us(h.percentile(0.99))
            o["p999_us"] = us(h.percentile(0.999))
            o["max_us"] = us(h.maximum)
            o["ttfb_p50_us"] = us(s.firstByte.percentile(0.5))
            o["ttfb_p99_us"] = us(s.firstByte.percentile(0.99))
            var codes = JSONObject()
            for (code, n) in s.errorCodes.sorted(by: { $0.key < $1.key }) { codes[String(code)] = .number(Double(n)) }
            o["error_codes"] = .object(codes)
            o["hist_sum_ns"] = .number(Double(h.sum))
            o["hist_max_ns"] = .number(Double(h.maximum))
            o["buckets"] = .array(h.nonEmptyBuckets.map { .array([.number(Double($0.index)), .number(Double($0.count))]) })
            out.append(JSONValue.object(o).serialized(pretty: false))
        }
        return out
    }

    /// Reads a result file (or a directory holding results.jsonl). Errors name the line.
    public static func read(path: String) throws(LoadClientError) -> RunRecord {
        var file = path
        var st = stat()
        if stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR { file = path + "/results.jsonl" }
        guard let text = readFile(file) else { throw LoadClientError("\(file): cannot read it") }
        var run = RunRecord(label: path, workload: "", targets: [], ops: [])
        for (index, line) in text.split(separator: "\n").enumerated() where !line.isEmpty {
            let value: JSONValue
            do { value = try JSONValue.parse(String(line)) } catch {
                throw LoadClientError("\(file):\(index + 1): not JSON (\(error))")
            }
            switch value["type"]?.stringValue {
            case "run":
                run.workload = value["workload"]?.stringValue ?? ""
                run.targets = value["targets"]?.arrayValue?.compactMap(\.stringValue) ?? []
            case "interval":
                if let phase = value["phase"]?.stringValue, let t = value["t"]?.doubleValue, let c = value["count"]?.doubleValue {
                    run.intervals.append((phase, t, UInt64(c)))
                }
            case "op":
                let buckets: [(index: Int, count: UInt64)] = (value["buckets"]?.arrayValue ?? []).compactMap { pair in
                    guard let i = pair[0]?.intValue, let c = pair[1]?.doubleValue else { return nil }
                    return (i, UInt64(c))
                }
                let histogram = LatencyHistogram(buckets: buckets, maximum: UInt64(value["hist_max_ns"]?.doubleValue ?? 0),
                                                 sum: UInt64(value["hist_sum_ns"]?.doubleValue ?? 0))
                var codes: [(Int32, UInt64)] = []
                for (k, v) in value["error_codes"]?.objectValue ?? JSONObject() {
                    if let code = Int32(k), let n = v.doubleValue { codes.append((code, UInt64(n))) }
                }
                run.ops.append(OpRecord(
                    phase: value["phase"]?.stringValue ?? "", kind: value["kind"]?.stringValue ?? "",
                    target: value["target"]?.stringValue ?? "", op: value["op"]?.stringValue ?? "",
                    seconds: value["seconds"]?.doubleValue ?? 0, count: UInt64(value["count"]?.doubleValue ?? 0),
                    errors: UInt64(value["errors"]?.doubleValue ?? 0), bytes: UInt64(value["bytes"]?.doubleValue ?? 0),
                    latency: histogram, errorCodes: codes))
            default:
                continue
            }
        }
        guard !run.ops.isEmpty else { throw LoadClientError("\(file): no operation results in it") }
        return run
    }

    public static func readFile(_ path: String) -> String? {
        guard let f = fopen(path, "rb") else { return nil }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public static func writeFile(_ path: String, _ text: String) -> Bool {
        guard let f = fopen(path, "wb") else { return false }
        defer { fclose(f) }
        var text = text
        return text.withUTF8 { fwrite($0.baseAddress, 1, $0.count, f) == $0.count }
    }
}
