import LoadClients
import Testing
@testable import Workload

@Suite("YAML subset")
struct YAMLTests {
    @Test func mappingsSequencesAndFlowValues() throws {
        let text = """
            # a comment
            name: demo   # trailing comment
            list:
              - a
              - "b # not a comment"
            nested:
              inner: 3
            items:
              - {op: read, percent: 70}
              - op: write
                size: 1MiB
            flow: [1, 2, 3]
            """
        let node = try YAML.parse(text)
        guard case let .mapping(entries, _) = node else { Issue.record("not a mapping"); return }
        #expect(entries.map(\.key) == ["name", "list", "nested", "items", "flow"])
        #expect(entries[0].value.scalarValue == "demo")
        guard case let .sequence(list, _) = entries[1].value else { Issue.record("list"); return }
        #expect(list.map(\.scalarValue) == ["a", "b # not a comment"])
        guard case let .sequence(items, _) = entries[3].value, case let .mapping(second, line) = items[1] else { Issue.record("items"); return }
        #expect(second.map(\.key) == ["op", "size"])
        #expect(line == 10)
        guard case let .sequence(flow, _) = entries[4].value else { Issue.record("flow"); return }
        #expect(flow.count == 3)
    }

    @Test func listAtTheKeysIndentation() throws {
        let node = try YAML.parse("targets:\n- a\n- b\nname: x\n")
        guard case let .mapping(entries, _) = node, case let .sequence(items, _) = entries[0].value else { Issue.record("shape"); return }
        #expect(items.count == 2)
        #expect(entries[1].key == "name")
    }

    @Test func errorsNameTheLine() {
        #expect(throws: YAMLError(line: 2, message: "duplicate key 'a'")) { try YAML.parse("a: 1\na: 2\n") }
        #expect(throws: YAMLError(line: 3, message: "unexpected indentation")) { try YAML.parse("a:\n  b: 1\n    c: 2\n") }
        #expect(throws: YAMLError(line: 1, message: "unclosed '['")) { try YAML.parse("a: [1, 2\n") }
    }
}

@Suite("Workload files")
struct WorkloadFileTests {
    static let good = """
        name: mix
        seed: 9
        targets: [nfs3://127.0.0.1:2049/memfs, "s3://k:s@127.0.0.1:9000/b"]
        dataset:
          root: data
          depth: 2
          width: 3
          files_per_dir: 4
          file_size: {dist: uniform, min: 1KiB, max: 8KiB}
        clients: 2
        in_flight: 4
        mix:
          - {op: read, percent: 70, size: 4KiB}
          - {op: write, percent: 30, size: 64k, access: sequential}
        phases:
          - kind: prepare
          - {name: warm, kind: warmup, duration: 500ms}
          - {kind: measure, duration: 2s, rate: 1000, in_flight: 8}
          - kind: cleanup
        """

    @Test func parsesEveryPart() throws {
        let w = try Workload.parse(Self.good, source: "mix.yaml")
        #expect(w.name == "mix")
        #expect(w.seed == 9)
        #expect(w.targets.count == 2)
        #expect(w.dataset == DataSet(root: "data", depth: 2, width: 3, filesPerDirectory: 4, fileSize: .uniform(min: 1024, max: 8192)))
        #expect(w.phases.map(\.kind) == [.prepare, .warmup, .measure, .cleanup])
        #expect(w.phases[1].name == "warm")
        #expect(w.phases[1].duration == 0.5)
        #expect(w.phases[2].rate == 1000)
        #expect(w.phases[2].inFlight == 8)
        #expect(w.phases[2].clients == 2)
        #expect(w.phases[2].mix == [
            MixEntry(op: .read, percent: 70, size: .fixed(4096), access: .random),
            MixEntry(op: .write, percent: 30, size: .fixed(65536), access: .sequential),
        ])
        #expect(w.dataset.directories.count == 1 + 3 + 9)
        #expect(w.dataset.files(seed: 9).count == 9 * 4)
    }

    /// A refused file: the error names the file, line and key, and says what is expected.
    @Test(arguments: [
        ("phases:\n  - {kind: measure, duration: fast, mix: [{op: read}]}\n", 2, "phases[0].duration", "expected a duration"),
        ("phases:\n  - kind: measure\n    duration: 1s\n    mix:\n      - {op: reed}\n", 5, "phases[0].mix[0].op", "unknown operation 'reed'"),
        ("name: x\nphase:\n  - kind: prepare\n", 2, "phase", "unknown key; expected one of"),
        ("dataset:\n  depth: -1\nphases: []\n", 2, "dataset.depth", "must be at least 0"),
        ("dataset:\n  file_size: {dist: zipf}\nphases: []\n", 2, "dataset.file_size.dist", "unknown distribution 'zipf'"),
        ("targets: [ftp://x]\nphases: []\n", 1, "targets[0]", "unknown scheme 'ftp'"),
        ("phases:\n  - kind: measure\n    mix: [{op: read}]\n", 2, "phases[0]", "needs 'duration' or 'operations'"),
        ("phases:\n  - {kind: warmup, duration: 1s}\n", 2, "phases[0]", "needs a 'mix'"),
        ("name: x\n", 1, "phases", "needs 'phases'"),
    ] as [(String, Int, String, String)])
    func refused(text: String, line: Int, key: String, words: String) {
        do {
            _ = try Workload.parse(text, source: "bad.yaml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.file == "bad.yaml")
            #expect(error.line == line, "\(error)")
            #expect(error.key == key, "\(error)")
            #expect(error.description.contains(words), "\(error)")
            #expect(error.description.hasPrefix("bad.yaml:\(line): \(key): "))
        }
    }

    @Test func overridesFromTheCommandLine() throws {
        let w = try Workload.parse(Self.good, source: "mix.yaml", overrides: [
            "phases.measure.duration=30s", "phases.warm.in_flight=3", "dataset.file_size={dist: fixed, size: 1MiB}", "clients=5", "name=other",
        ])
        #expect(w.phases[2].duration == 30)
        #expect(w.phases[1].inFlight == 3)
        #expect(w.dataset.fileSize == .fixed(1 << 20))
        #expect(w.name == "other")
        // A phase without its own `clients` takes the top-level one.
        #expect(w.phases[2].clients == 5)
        #expect(throws: WorkloadError.self) { try Workload.parse(Self.good, overrides: ["phases.nosuch.duration=1s"]) }
        #expect(throws: WorkloadError.self) { try Workload.parse(Self.good, overrides: ["nonsense"]) }
        do {
            _ = try Workload.parse(Self.good, source: "mix.yaml", overrides: ["phases.measure.duration=soon"])
            Issue.record("accepted a bad override")
        } catch {
            #expect(error.description == "mix.yaml: phases[2].duration: expected a duration such as 2s, 500ms or 1m, found 'soon'")
        }
    }

    @Test func units() {
        #expect(Units.bytes("4KiB") == 4096)
        #expect(Units.bytes("1MiB") == 1 << 20)
        #expect(Units.bytes("64k") == 65536)
        #expect(Units.bytes("1_000") == 1000)
        #expect(Units.bytes("4 furlongs") == nil)
        #expect(Units.seconds("500ms") == 0.5)
        #expect(Units.seconds("2") == 2)
        #expect(Units.seconds("1m") == 60)
    }

    @Test func shippedWorkloadsParse() throws {
        for name in ["nfs-metadata-mix", "nfs-4k-random-read", "nfs-4k-random-write", "nfs-1m-seq-read", "nfs-1m-seq-write",
                     "nfs-build-like", "s3-small-object-mix", "s3-1m-objects", "multi-protocol"] {
            let path = #filePath.split(separator: "/").dropLast(3).joined(separator: "/")
            guard let text = Results.readFile("/\(path)/Workloads/\(name).yaml") else { Issue.record("missing \(name)"); continue }
            let w = try Workload.parse(text, source: name)
            #expect(w.phases.contains { $0.kind == .measure }, "\(name)")
        }
    }
}

@Suite("Targets")
struct TargetTests {
    @Test func parsesURLs() throws {
        #expect(try Target.parse("nfs3://127.0.0.1:2050/memfs") == Target(kind: .nfs3, host: "127.0.0.1", port: 2050, root: "/memfs"))
        #expect(try Target.parse("nfs3://[::1]/memfs") == Target(kind: .nfs3, host: "::1", port: 2049, root: "/memfs"))
        let s3 = try Target.parse("s3://key:se%2Fcret@localhost:9001/bucket")
        #expect(s3 == Target(kind: .s3, host: "127.0.0.1", port: 9001, root: "bucket", accessKey: "key", secretKey: "se/cret"))
        #expect(s3.description == "s3://key@127.0.0.1:9001/bucket")
        #expect(throws: LoadClientError.self) { try Target.parse("s3://127.0.0.1:9000/bucket") }
        #expect(throws: LoadClientError.self) { try Target.parse("nfs3://127.0.0.1:99999/x") }
        #expect(throws: LoadClientError.self) { try Target.parse("127.0.0.1:2049") }
        var ganesha = Target(kind: .nfs3, host: "127.0.0.1", port: 2049, root: "/bench")
        ganesha.mountPort = 20048
        #expect(try Target.parse("nfs3://127.0.0.1:2049/bench?mountport=20048") == ganesha)
        #expect(ganesha.description == "nfs3://127.0.0.1:2049/bench?mountport=20048")
        #expect(throws: LoadClientError.self) { try Target.parse("nfs3://127.0.0.1/x?version=4") }
    }
}

@Suite("Traces")
struct TraceTests {
    @Test func parsesTheReplayFormat() throws {
        let ops = try Trace.parse("# c\n@0.5 write a/b 4096 512 # x\nlookup a/c !noent\nreaddir a\n", source: "t")
        #expect(ops == [
            TraceOp(time: 0.5, op: .write, path: "a/b", offset: 4096, length: 512),
            TraceOp(op: .lookup, path: "a/c", expect: .noent),
            TraceOp(op: .readdir, path: "a"),
        ])
        #expect(ops.map(\.line) == ["@0.5 write a/b 4096 512", "lookup a/c !noent", "readdir a"])
        do {
            _ = try Trace.parse("stat a\nstat a 1 2 3 4\n", source: "t.trace")
            Issue.record("accepted")
        } catch {
            #expect(error.description.hasPrefix("t.trace:2: expected [@SECONDS] OP PATH"))
        }
    }

    @Test func dbenchFileNumbersBecomePaths() {
        let load = """
            NTCreateX "\\clients\\client1\\x.doc" 0x40 0x5 7 NT_STATUS_OK
            WriteX 7 0 100 100 NT_STATUS_OK
            Close 7 NT_STATUS_OK
            ReadX 7 0 100 100 NT_STATUS_OK
            LockX 7 0 1 NT_STATUS_OK
            """
        let (ops, skipped) = Trace.fromDBench(load)
        #expect(ops == [TraceOp(op: .create, path: "client1/x.doc"), TraceOp(op: .write, path: "client1/x.doc", offset: 0, length: 100)])
        // The read after Close has no open file to name: it is counted as left out.
        #expect(skipped == ["ReadX": 1, "LockX": 1])
    }

    @Test func replayPhasesReadTheirTraceBesideTheWorkload() throws {
        let dir = "/tmp/dmanoel-trace-test-\(getpid())"
        mkdir(dir, 0o755)
        defer { unlink(dir + "/t.trace"); rmdir(dir) }
        #expect(Results.writeFile(dir + "/t.trace", "stat a\n"))
        let w = try Workload.parse("phases:\n  - {kind: replay, trace: t.trace, timing: recorded}\n", source: dir + "/w.yaml")
        #expect(w.phases[0].trace == [TraceOp(op: .stat, path: "a")])
        #expect(w.phases[0].recordedTiming)
        #expect(throws: WorkloadError.self) { try Workload.parse("phases:\n  - {kind: replay}\n", source: dir + "/w.yaml") }
    }
}

import Glibc
