import LoadClients

/// A workload file, validated: what to run against which targets.
public struct Workload: Sendable {
    public var name: String
    public var seed: UInt64
    public var targets: [String]
    public var dataset: DataSet
    public var phases: [Phase]
    /// Default threads of the client's runtime (loops); the command line may override it.
    public var threads: Int?
}

public struct DataSet: Sendable, Equatable {
    /// Directory (NFS) or key prefix (S3) under the target's root that holds the data set.
    public var root: String
    public var depth: Int
    public var width: Int
    public var filesPerDirectory: Int
    public var fileSize: SizeDistribution

    public init(root: String = "loadtest", depth: Int = 1, width: Int = 2, filesPerDirectory: Int = 8, fileSize: SizeDistribution = .fixed(4096)) {
        self.root = root
        self.depth = depth
        self.width = width
        self.filesPerDirectory = filesPerDirectory
        self.fileSize = fileSize
    }

    /// One target's data set: `root` with `{target}` (the target's index) and `{protocol}`
    /// (nfs3, s3) filled in, so one workload can give each target a tree of its own.
    public struct Layout: Sendable {
        public var files: [(path: String, size: Int)]
        public var leafDirectories: [String]
        /// Parents first, including the root's own ancestors.
        public var directories: [String]
        /// How many of `directories` are the root's ancestors (shared with other targets).
        public var ancestors: Int
    }

    public func layout(seed: UInt64, target: Int, protocol name: String) -> Layout {
        var copy = self
        copy.root = root.replacing("{target}", with: String(target)).replacing("{protocol}", with: name)
        var ancestors: [String] = []
        var prefix = ""
        for part in copy.root.split(separator: "/").dropLast() {
            prefix += prefix.isEmpty ? String(part) : "/" + part
            ancestors.append(prefix)
        }
        return Layout(files: copy.files(seed: seed), leafDirectories: copy.leafDirectories, directories: ancestors + copy.directories, ancestors: ancestors.count)
    }

    /// Directories, parents first, starting with the root.
    public var directories: [String] {
        var out: [String] = [root]
        var level = [root]
        for _ in 0..<depth {
            var next: [String] = []
            for parent in level {
                for w in 0..<width { next.append("\(parent)/d\(w)") }
            }
            out += next
            level = next
        }
        return out
    }

    /// The leaf directories, which hold the files.
    public var leafDirectories: [String] {
        var level = [root]
        for _ in 0..<depth { level = level.flatMap { parent in (0..<width).map { "\(parent)/d\($0)" } } }
        return level
    }

    /// Every file with its size, drawn from `fileSize` with `seed` (the same every run).
    public func files(seed: UInt64) -> [(path: String, size: Int)] {
        var rng = SplitMix64(seed: seed ^ 0xDA7A_5E7)
        var out: [(String, Int)] = []
        for directory in leafDirectories {
            for f in 0..<filesPerDirectory { out.append(("\(directory)/f\(f)", fileSize.sample(&rng))) }
        }
        return out
    }
}

public enum PhaseKind: String, Sendable, CaseIterable {
    case prepare, warmup, measure, cleanup
    /// Replays a trace file, in order, on one connection per target.
    case replay
}

public enum AccessPattern: String, Sendable, CaseIterable {
    case random, sequential
}

public struct MixEntry: Sendable, Equatable {
    public var op: OpKind
    public var percent: Double
    /// Transfer size (read/write) or object size (put/create); nil = the whole file.
    public var size: SizeDistribution?
    public var access: AccessPattern
}

public struct Phase: Sendable {
    public var name: String
    public var kind: PhaseKind
    /// Seconds, or nil when the phase runs a fixed operation count (or is prepare/cleanup).
    public var duration: Double?
    public var operations: Int?
    /// Connections per target.
    public var clients: Int
    /// Operations in flight per connection.
    public var inFlight: Int
    /// Total operations per second over all connections (nil: as fast as possible).
    public var rate: Double?
    public var mix: [MixEntry]
    /// For replay phases: the operations, and whether to keep their recorded timing.
    public var trace: [TraceOp] = []
    public var recordedTiming = false
}

// MARK: Parsing

/// A workload file that cannot be used: names the file, line and key, and says what would work.
public struct WorkloadError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var key: String
    public var message: String
    public var description: String {
        let place = line > 0 ? "\(file):\(line)" : file
        return key.isEmpty ? "\(place): \(message)" : "\(place): \(key): \(message)"
    }
}

extension Workload {
    /// Parses and validates workload text.
    /// `overrides` are `KEY.PATH=VALUE` settings applied to the file before it is checked
    /// (`phases.measure.duration=30s`, `dataset.file_size=1MiB`, `clients=4`).
    public static func parse(_ text: String, source: String = "<workload>", overrides: [String] = []) throws(WorkloadError) -> Workload {
        var root: YAMLNode
        do throws(YAMLError) {
            root = try YAML.parse(text)
            for setting in overrides {
                guard let eq = setting.firstIndex(of: "="), eq != setting.startIndex else {
                    throw YAMLError(line: 0, message: "--set '\(setting)': expected KEY.PATH=VALUE")
                }
                let path = setting[..<eq].split(separator: ".").map(String.init)
                root = try root.setting(path, to: try YAML.value(setting[setting.index(after: eq)...], line: 0))
            }
        } catch {
            throw WorkloadError(file: source, line: error.line, key: "", message: error.message)
        }
        var reader = Reader(source: source)
        return try reader.workload(root)
    }
}

struct Reader {
    let source: String

    func fail(_ node: YAMLNode, _ key: String, _ message: String) -> WorkloadError {
        WorkloadError(file: source, line: node.line, key: key, message: message)
    }

    func mapping(_ node: YAMLNode, _ key: String, allowed: [String]) throws(WorkloadError) -> [String: (YAMLNode, Int)] {
        guard case let .mapping(entries, _) = node else { throw fail(node, key, "expected a mapping of keys (key: value)") }
        var out: [String: (YAMLNode, Int)] = [:]
        for entry in entries {
            guard allowed.contains(entry.key) else {
                let path = key.isEmpty ? entry.key : "\(key).\(entry.key)"
                throw WorkloadError(file: source, line: entry.line, key: path,
                                    message: "unknown key; expected one of: \(allowed.joined(separator: ", "))")
            }
            out[entry.key] = (entry.value, entry.line)
        }
        return out
    }

    func opt<T>(_ entry: (YAMLNode, Int)?, _ body: (YAMLNode) throws(WorkloadError) -> T) throws(WorkloadError) -> T? {
        guard let (node, _) = entry else { return nil }
        return try body(node)
    }

    func string(_ node: YAMLNode, _ key: String) throws(WorkloadError) -> String {
        guard let s = node.scalarValue, !s.isEmpty else { throw fail(node, key, "expected a text value") }
        return s
    }

    func integer(_ node: YAMLNode, _ key: String, minimum: Int = 0) throws(WorkloadError) -> Int {
        guard let s = node.scalarValue, let v = Int(s.replacingUnderscores()) else { throw fail(node, key, "expected a whole number, found '\(node.scalarValue ?? "a list or mapping")'") }
        guard v >= minimum else { throw fail(node, key, "must be at least \(minimum) (got \(v))") }
        return v
    }

    func number(_ node: YAMLNode, _ key: String) throws(WorkloadError) -> Double {
        guard let s = node.scalarValue, let v = Double(s), v >= 0 else { throw fail(node, key, "expected a non-negative number, found '\(node.scalarValue ?? "a list or mapping")'") }
        return v
    }

    func size(_ node: YAMLNode, _ key: String) throws(WorkloadError) -> Int {
        guard let s = node.scalarValue, let v = Units.bytes(s) else {
            throw fail(node, key, "expected a size such as 4096, 4KiB, 1MiB or 64k, found '\(node.scalarValue ?? "a list or mapping")'")
        }
        return v
    }

    func duration(_ node: YAMLNode, _ key: String) throws(WorkloadError) -> Double {
        guard let s = node.scalarValue, let v = Units.seconds(s), v > 0 else {
            throw fail(node, key, "expected a duration such as 2s, 500ms or 1m, found '\(node.scalarValue ?? "a list or mapping")'")
        }
        return v
    }

    func distribution(_ node: YAMLNode, _ key: String) throws(WorkloadError) -> SizeDistribution {
        if node.scalarValue != nil { return .fixed(try size(node, key)) }
        let m = try mapping(node, key, allowed: ["dist", "size", "min", "max", "median", "sigma"])
        guard let (distNode, _) = m["dist"] else { throw fail(node, key, "a size distribution needs 'dist' (fixed, uniform or lognormal)") }
        switch try string(distNode, key + ".dist") {
        case "fixed":
            guard let (s, _) = m["size"] else { throw fail(node, key, "dist: fixed needs 'size'") }
            return .fixed(try size(s, key + ".size"))
        case "uniform":
            guard let (lo, _) = m["min"], let (hi, _) = m["max"] else { throw fail(node, key, "dist: uniform needs 'min' and 'max'") }
            let a = try size(lo, key + ".min"), b = try size(hi, key + ".max")
            guard a <= b else { throw fail(hi, key + ".max", "must not be below min") }
            return .uniform(min: a, max: b)
        case "lognormal":
            guard let (med, _) = m["median"] else { throw fail(node, key, "dist: lognormal needs 'median' (and optional 'sigma', 'max')") }
            let sigma = try opt(m["sigma"]) { n throws(WorkloadError) in try number(n, key + ".sigma") } ?? 1.0
            let cap = try opt(m["max"]) { n throws(WorkloadError) in try size(n, key + ".max") } ?? 64 * 1024 * 1024
            return .lognormal(median: try size(med, key + ".median"), sigma: sigma, max: cap)
        case let other:
            throw fail(distNode, key + ".dist", "unknown distribution '\(other)'; expected fixed, uniform or lognormal")
        }
    }

    mutating func workload(_ node: YAMLNode) throws(WorkloadError) -> Workload {
        let top = try mapping(node, "", allowed: ["name", "seed", "threads", "targets", "target", "dataset", "phases", "mix", "clients", "in_flight", "rate"])
        let name = try opt(top["name"]) { n throws(WorkloadError) in try string(n, "name") } ?? "workload"
        let seed = try opt(top["seed"]) { n throws(WorkloadError) in UInt64(try integer(n, "seed")) } ?? 1
        let threads = try opt(top["threads"]) { n throws(WorkloadError) in try integer(n, "threads", minimum: 1) }
        var targets: [String] = []
        if let (t, _) = top["target"] { targets.append(try string(t, "target")) }
        if let (t, _) = top["targets"] {
            guard case let .sequence(items, _) = t else { throw fail(t, "targets", "expected a list of target URLs") }
            for (i, item) in items.enumerated() { targets.append(try string(item, "targets[\(i)]")) }
        }
        for (i, url) in targets.enumerated() {
            do { _ = try Target.parse(url) } catch {
                let line = top["targets"]?.1 ?? top["target"]?.1 ?? 1
                throw WorkloadError(file: source, line: line, key: "targets[\(i)]", message: error.description)
            }
        }
        var dataset = DataSet()
        if let (d, _) = top["dataset"] {
            let m = try mapping(d, "dataset", allowed: ["root", "depth", "width", "files_per_dir", "file_size"])
            if let (n, _) = m["root"] { dataset.root = try string(n, "dataset.root") }
            if let (n, _) = m["depth"] { dataset.depth = try integer(n, "dataset.depth", minimum: 0) }
            if let (n, _) = m["width"] { dataset.width = try integer(n, "dataset.width", minimum: 1) }
            if let (n, _) = m["files_per_dir"] { dataset.filesPerDirectory = try integer(n, "dataset.files_per_dir", minimum: 1) }
            if let (n, _) = m["file_size"] { dataset.fileSize = try distribution(n, "dataset.file_size") }
            guard !dataset.root.isEmpty, !dataset.root.hasPrefix("/") else { throw fail(d, "dataset.root", "must be a relative path under the export or bucket") }
        }
        let defaultClients = try opt(top["clients"]) { n throws(WorkloadError) in try integer(n, "clients", minimum: 1) } ?? 1
        let defaultInFlight = try opt(top["in_flight"]) { n throws(WorkloadError) in try integer(n, "in_flight", minimum: 1) } ?? 1
        let defaultRate = try opt(top["rate"]) { n throws(WorkloadError) in try number(n, "rate") }
        let defaultMix = try opt(top["mix"]) { n throws(WorkloadError) in try mix(n, "mix") }
        guard let (phasesNode, _) = top["phases"] else { throw fail(node, "phases", "a workload needs 'phases' (a list: prepare, warmup, measure, cleanup)") }
        guard case let .sequence(items, _) = phasesNode else { throw fail(phasesNode, "phases", "expected a list of phases") }
        var phases: [Phase] = []
        for (i, item) in items.enumerated() {
            let key = "phases[\(i)]"
            let m = try mapping(item, key, allowed: ["name", "kind", "duration", "operations", "clients", "in_flight", "rate", "mix", "trace", "timing"])
            var kind: PhaseKind
            let name = try opt(m["name"]) { n throws(WorkloadError) in try string(n, key + ".name") }
            if let (k, _) = m["kind"] {
                let text = try string(k, key + ".kind")
                guard let parsed = PhaseKind(rawValue: text.replacingOccurrences("-", "")) else {
                    throw fail(k, key + ".kind", "unknown phase kind '\(text)'; expected prepare, warmup, measure, cleanup or replay")
                }
                kind = parsed
            } else if let name, let parsed = PhaseKind(rawValue: name.replacingOccurrences("-", "")) {
                kind = parsed
            } else {
                throw fail(item, key, "a phase needs 'kind' (prepare, warmup, measure or cleanup) or one of those as its name")
            }
            let phaseDuration = try opt(m["duration"]) { n throws(WorkloadError) in try duration(n, key + ".duration") }
            let operations = try opt(m["operations"]) { n throws(WorkloadError) in try integer(n, key + ".operations", minimum: 1) }
            let phaseMix = try opt(m["mix"]) { n throws(WorkloadError) in try mix(n, key + ".mix") } ?? defaultMix
            if kind == .warmup || kind == .measure {
                guard phaseDuration != nil || operations != nil else { throw fail(item, key, "a \(kind.rawValue) phase needs 'duration' or 'operations'") }
                guard let phaseMix, !phaseMix.isEmpty else { throw fail(item, key, "a \(kind.rawValue) phase needs a 'mix' (here or at the top level)") }
            }
            var trace: [TraceOp] = []
            var recorded = false
            if kind == .replay {
                guard let (t, _) = m["trace"] else { throw fail(item, key, "a replay phase needs 'trace' (a trace file, relative to the workload file)") }
                let name = try string(t, key + ".trace")
                let path = name.hasPrefix("/") ? name : (source.contains("/") ? String(source[..<source.lastIndex(of: "/")!]) + "/" : "") + name
                guard let text = Results.readFile(path) else { throw fail(t, key + ".trace", "cannot read the trace file \(path)") }
                trace = try Trace.parse(text, source: path)
                if let (tm, _) = m["timing"] {
                    switch try string(tm, key + ".timing") {
                    case "asap": recorded = false
                    case "recorded": recorded = true
                    case let other: throw fail(tm, key + ".timing", "expected asap or recorded, found '\(other)'")
                    }
                }
            }
            phases.append(Phase(
                name: name ?? kind.rawValue, kind: kind, duration: phaseDuration, operations: operations,
                clients: try opt(m["clients"]) { n throws(WorkloadError) in try integer(n, key + ".clients", minimum: 1) } ?? defaultClients,
                inFlight: try opt(m["in_flight"]) { n throws(WorkloadError) in try integer(n, key + ".in_flight", minimum: 1) } ?? defaultInFlight,
                rate: try opt(m["rate"]) { n throws(WorkloadError) in try number(n, key + ".rate") } ?? defaultRate,
                mix: phaseMix ?? [], trace: trace, recordedTiming: recorded))
        }
        return Workload(name: name, seed: seed, targets: targets, dataset: dataset, phases: phases, threads: threads)
    }

    func mix(_ node: YAMLNode, _ key: String) throws(WorkloadError) -> [MixEntry] {
        guard case let .sequence(items, _) = node else { throw fail(node, key, "expected a list of operations ({op: read, percent: 70, ...})") }
        var out: [MixEntry] = []
        for (i, item) in items.enumerated() {
            let k = "\(key)[\(i)]"
            let m = try mapping(item, k, allowed: ["op", "percent", "size", "access"])
            guard let (opNode, _) = m["op"] else { throw fail(item, k, "each mix entry needs 'op'") }
            let opName = try string(opNode, k + ".op")
            guard let op = OpKind(rawValue: opName) else {
                throw fail(opNode, k + ".op", "unknown operation '\(opName)'; expected one of: \(OpKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let percent = try opt(m["percent"]) { n throws(WorkloadError) in try number(n, k + ".percent") } ?? 100
            let size = try opt(m["size"]) { n throws(WorkloadError) in try distribution(n, k + ".size") }
            var access = AccessPattern.random
            if let (a, _) = m["access"] {
                let text = try string(a, k + ".access")
                guard let parsed = AccessPattern(rawValue: text) else { throw fail(a, k + ".access", "expected random or sequential, found '\(text)'") }
                access = parsed
            }
            out.append(MixEntry(op: op, percent: percent, size: size, access: access))
        }
        let total = out.reduce(0) { $0 + $1.percent }
        guard total > 0 else { throw fail(node, key, "the percentages add up to 0") }
        return out
    }
}

extension String {
    func replacingOccurrences(_ target: Character, _ replacement: String) -> String {
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }
    func replacingUnderscores() -> String { replacingOccurrences("_", "") }
}

/// Sizes ("4KiB", "1M", "512") and durations ("2s", "500ms", "1m").
public enum Units {
    public static func bytes(_ text: String) -> Int? {
        let t = text.replacingUnderscores().lowercased()
        let digits = t.prefix { $0.isNumber || $0 == "." }
        guard let value = Double(digits) else { return nil }
        let unit = t.dropFirst(digits.count).trimmingCharacters()
        let scale: Double
        switch unit {
        case "", "b": scale = 1
        case "k", "kb", "kib": scale = 1024
        case "m", "mb", "mib": scale = 1024 * 1024
        case "g", "gb", "gib": scale = 1024 * 1024 * 1024
        default: return nil
        }
        return Int(value * scale)
    }

    public static func seconds(_ text: String) -> Double? {
        let t = text.lowercased()
        let digits = t.prefix { $0.isNumber || $0 == "." }
        guard let value = Double(digits) else { return nil }
        switch t.dropFirst(digits.count).trimmingCharacters() {
        case "", "s": return value
        case "ms": return value / 1000
        case "m", "min": return value * 60
        default: return nil
        }
    }
}
