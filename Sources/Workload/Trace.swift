import LoadClients

/// A recorded operation to replay. Trace files are text, one operation per line:
///
///     [@SECONDS] OP PATH [OFFSET [LENGTH]] [!ok|!noent|!any]
///
/// `@SECONDS` is when it was issued (from the trace's start; used with `timing: recorded`),
/// OP a name of the operation vocabulary, PATH relative to the data-set root, and the
/// expectation says which outcome counts as success (default !ok). `#` starts a comment.
public struct TraceOp: Sendable, Equatable {
    public enum Expect: String, Sendable { case ok, noent, any }
    public var time: Double?
    public var op: OpKind
    public var path: String
    public var offset: UInt64
    public var length: Int
    public var expect: Expect

    public init(time: Double? = nil, op: OpKind, path: String, offset: UInt64 = 0, length: Int = 0, expect: Expect = .ok) {
        self.time = time
        self.op = op
        self.path = path
        self.offset = offset
        self.length = length
        self.expect = expect
    }

    public var line: String {
        var out = time.map { "@\($0) " } ?? ""
        out += "\(op.rawValue) \(path)"
        if offset != 0 || length != 0 { out += " \(offset) \(length)" }
        if expect != .ok { out += " !\(expect.rawValue)" }
        return out
    }
}

public enum Trace {
    /// Parses a trace; errors name the line.
    public static func parse(_ text: String, source: String) throws(WorkloadError) -> [TraceOp] {
        var ops: [TraceOp] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            var words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard !words.isEmpty else { continue }
            func fail(_ message: String) -> WorkloadError { WorkloadError(file: source, line: index + 1, key: "", message: message) }
            var op = TraceOp(op: .stat, path: "")
            if words[0].hasPrefix("@") {
                guard let t = Double(words[0].dropFirst()), t >= 0 else { throw fail("bad time '\(words[0])'; expected @SECONDS") }
                op.time = t
                words.removeFirst()
            }
            if let last = words.last, last.hasPrefix("!") {
                guard let e = TraceOp.Expect(rawValue: String(last.dropFirst())) else { throw fail("bad expectation '\(last)'; expected !ok, !noent or !any") }
                op.expect = e
                words.removeLast()
            }
            guard words.count >= 2, words.count <= 4 else { throw fail("expected [@SECONDS] OP PATH [OFFSET [LENGTH]] [!EXPECT]") }
            guard let kind = OpKind(rawValue: words[0]) else {
                throw fail("unknown operation '\(words[0])'; expected one of: \(OpKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            op.op = kind
            op.path = words[1]
            if words.count > 2 {
                guard let o = UInt64(words[2]) else { throw fail("bad offset '\(words[2])'") }
                op.offset = o
            }
            if words.count > 3 {
                guard let l = Int(words[3]), l >= 0 else { throw fail("bad length '\(words[3])'") }
                op.length = l
            }
            ops.append(op)
        }
        return ops
    }

    /// Converts a dbench 4 load file (client.txt: NTCreateX, ReadX, WriteX, Close, Unlink,
    /// QUERY_*_INFORMATION, FIND_FIRST, Flush, Mkdir, ...) into trace operations. Open file
    /// numbers are mapped back to paths; `\clients\client1\` becomes the path prefix. Calls the
    /// vocabulary has no word for (Rename, LockX, SET_FILE_INFORMATION, Deltree, ...) are left
    /// out and counted in `skipped`.
    public static func fromDBench(_ text: String, limit: Int? = nil) -> (ops: [TraceOp], skipped: [String: Int]) {
        var ops: [TraceOp] = []
        var skipped: [String: Int] = [:]
        var open: [String: String] = [:]
        var created: Set<String> = []
        func path(_ quoted: String) -> String {
            var p = quoted
            if p.hasPrefix("\"") { p.removeFirst() }
            if p.hasSuffix("\"") { p.removeLast() }
            var parts = p.split(separator: "\\").map(String.init)
            if parts.first == "clients" { parts.removeFirst() }
            return parts.joined(separator: "/")
        }
        func expect(_ status: String) -> TraceOp.Expect {
            switch status {
            case "NT_STATUS_OK": .ok
            case "NT_STATUS_OBJECT_NAME_NOT_FOUND", "NT_STATUS_NO_SUCH_FILE", "NT_STATUS_OBJECT_PATH_NOT_FOUND": .noent
            default: .any
            }
        }
        for raw in text.split(separator: "\n") {
            if let limit, ops.count >= limit { break }
            let w = raw.split(separator: " ").map(String.init)
            guard let call = w.first, !call.hasPrefix("#"), let status = w.last else { continue }
            switch call {
            case "NTCreateX" where w.count >= 6 && !path(w[1]).isEmpty:
                let p = path(w[1])
                let options = Int(w[2].dropFirst(2), radix: 16) ?? 0
                let disposition = Int(w[3].dropFirst(2), radix: 16) ?? 1
                let e = expect(status)
                if e == .ok { open[w[4]] = p }
                if options & 1 != 0 && disposition == 2 {
                    ops.append(TraceOp(op: .mkdir, path: p, expect: .any))
                } else if e == .ok && (disposition == 2 || disposition >= 4 || (disposition == 3 && !created.contains(p))) {
                    created.insert(p)
                    ops.append(TraceOp(op: .create, path: p))
                } else {
                    ops.append(TraceOp(op: .lookup, path: p, expect: e))
                }
            case "ReadX" where w.count >= 5, "WriteX" where w.count >= 5:
                guard let p = open[w[1]], let offset = UInt64(w[2]), let length = Int(w[3]) else { skipped[call, default: 0] += 1; continue }
                ops.append(TraceOp(op: call == "ReadX" ? .read : .write, path: p, offset: offset, length: length, expect: expect(status)))
            case "QUERY_FILE_INFORMATION" where w.count >= 3:
                guard let p = open[w[1]] else { skipped[call, default: 0] += 1; continue }
                ops.append(TraceOp(op: .stat, path: p, expect: .any))
            case "QUERY_PATH_INFORMATION" where w.count >= 3:
                ops.append(TraceOp(op: .stat, path: path(w[1]), expect: expect(status)))
            case "FIND_FIRST" where w.count >= 3:
                let p = path(w[1])
                let dir = p.split(separator: "/").dropLast().joined(separator: "/")
                ops.append(TraceOp(op: .readdir, path: dir, expect: .any))
            case "Unlink" where w.count >= 2:
                created.remove(path(w[1]))
                ops.append(TraceOp(op: .remove, path: path(w[1]), expect: expect(status) == .ok ? .ok : .any))
            case "Flush" where w.count >= 2:
                guard let p = open[w[1]] else { skipped[call, default: 0] += 1; continue }
                ops.append(TraceOp(op: .commit, path: p, expect: .any))
            case "Mkdir" where w.count >= 2 && !path(w[1]).isEmpty:
                ops.append(TraceOp(op: .mkdir, path: path(w[1]), expect: .any))
            case "Close" where w.count >= 2:
                open[w[1]] = nil
            default:
                skipped[call, default: 0] += 1
            }
        }
        return (ops, skipped)
    }
}
