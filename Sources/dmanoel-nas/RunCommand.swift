import ArgumentParser
import Glibc
import LoadClients
import Workload

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a workload file against NFSv3 or S3 targets and write the results.",
        discussion: """
            Targets are URLs: nfs3://HOST:PORT/EXPORT or s3://KEY:SECRET@HOST:PORT/BUCKET; \
            --target replaces the file's `targets`. Results go to DIR/results.jsonl (JSON \
            lines: a run line, then per phase a phase line and one op line per target and \
            operation with counts, errors, bytes, percentiles and histogram buckets). \
            Read them with `dmanoel-nas report`.
            """)

    @Argument(help: ArgumentHelp("The workload file (YAML; see Workloads/README.md).", valueName: "workload.yaml"))
    var workload: String

    @Option(name: .customLong("target"), help: ArgumentHelp("A target URL (repeatable); replaces the file's targets.", valueName: "url"))
    var targets: [String] = []

    @Option(help: ArgumentHelp("Seconds for each measure phase (replaces its duration or operation count).", valueName: "seconds"))
    var duration: Double?

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("Directory for results.jsonl (default: results/NAME).", valueName: "dir"))
    var output: String?

    @Option(help: ArgumentHelp("Loop threads of the client (default: the file's `threads`, else 1).", valueName: "n"))
    var threads: Int?

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a key of the file (repeatable): phases.measure.duration=30s, dataset.file_size=1MiB, clients=4.", valueName: "key=value"))
    var overrides: [String] = []

    @Option(help: ArgumentHelp("Seconds between progress lines and interval samples in the results while a phase runs (0: none).", valueName: "seconds"))
    var interval = 1.0

    @Flag(help: "Print nothing but errors.")
    var quiet = false

    func fail(_ message: String) -> ExitCode {
        writeError("dmanoel-nas run: \(message)")
        return ExitCode(1)
    }

    func run() throws {
        guard let text = Results.readFile(workload) else { throw fail("cannot read \(workload)") }
        var loaded: Workload
        do {
            loaded = try Workload.parse(text, source: workload, overrides: overrides)
        } catch {
            throw fail(error.description)
        }
        if !targets.isEmpty { loaded.targets = targets }
        guard !loaded.targets.isEmpty else { throw fail("no targets: give --target URL or `targets:` in \(workload)") }
        var parsedTargets: [Target] = []
        for url in loaded.targets {
            do { parsedTargets.append(try Target.parse(url)) } catch { throw fail(error.description) }
        }
        if let duration, duration <= 0 { throw fail("--duration must be positive") }
        let threadCount = threads ?? loaded.threads ?? 1
        guard threadCount >= 1 else { throw fail("--threads must be at least 1") }
        let directory = output ?? "results/\(loaded.name)"
        guard makeDirectories(directory) else { throw fail("cannot create the output directory \(directory)") }
        let resultsPath = directory + "/results.jsonl"

        let runner: Runner
        do {
            runner = try Runner(workload: loaded, targets: parsedTargets, threads: threadCount)
            try runner.connect()
        } catch {
            throw fail("\(error)")
        }
        var lines = [Results.runLine(workload: loaded, source: workload, targets: parsedTargets, threads: threadCount, started: Int(time(nil)))]
        let quiet = self.quiet
        runner.onPhase = { phase in
            lines += Results.lines(phase, targets: parsedTargets)
            guard !quiet else { return }
            let total = phase.total
            print("phase \(phase.name) (\(phase.kind.rawValue))\(phase.interrupted ? ", interrupted" : ""): \(Report.fixed(phase.seconds, 2)) s, \(total.count) ops, "
                  + "\(Report.fixed(Double(total.count) / max(phase.seconds, 1e-9), 1)) ops/s, "
                  + "\(Report.fixed(Double(total.bytes) / max(phase.seconds, 1e-9) / 1e6, 2)) MB/s, \(total.errors) errors")
        }
        if interval > 0 {
            runner.progressInterval = interval
            var last = (elapsed: 0.0, ops: UInt64(0), bytes: UInt64(0), phase: "")
            runner.onProgress = { p in
                if p.phase != last.phase { last = (0, 0, 0, p.phase) }
                // The time series: totals so far at each interval, in the result file too.
                lines.append(Results.intervalLine(p))
                guard !quiet else {
                    last = (p.elapsed, p.ops, p.bytes, p.phase)
                    return
                }
                let span = max(p.elapsed - last.elapsed, 1e-9)
                let now = Double(p.ops - last.ops) / span
                let mbNow = Double(p.bytes - last.bytes) / span / 1e6
                let planned = p.planned.map { "/\(Report.fixed($0, 1))" } ?? ""
                print("  \(p.phase) \(Report.fixed(p.elapsed, 1))\(planned) s: \(Report.fixed(now, 0)) ops/s now, "
                      + "\(Report.fixed(Double(p.ops) / max(p.elapsed, 1e-9), 0)) avg, \(Report.fixed(mbNow, 2)) MB/s, \(p.errors) errors")
                fflush(nil)
                last = (p.elapsed, p.ops, p.bytes, p.phase)
            }
        }
        // Ctrl-C: end the running phase, skip to cleanup, keep and write what was measured.
        // A second Ctrl-C ends the process at once (the handler resets itself).
        signal(SIGINT) { _ in
            Runner.requestStop()
            signal(SIGINT, SIG_DFL)
        }
        let phases = runner.run(durationOverride: duration)
        signal(SIGINT, SIG_DFL)
        if Runner.stopRequested && !quiet { print("stopped by SIGINT: results hold what was measured until then") }
        runner.shutdown()
        guard Results.writeFile(resultsPath, lines.joined(separator: "\n") + "\n") else { throw fail("cannot write \(resultsPath)") }
        if !quiet {
            if let record = try? Results.read(path: resultsPath) {
                var shown = record
                shown.label = directory
                print("")
                print(Report.markdown([shown]), terminator: "")
            }
            print("results: \(resultsPath)")
        }
        let errors = phases.filter { $0.kind == .measure || $0.kind == .warmup }.reduce(0) { $0 + $1.total.errors }
        if errors > 0 && !quiet { writeError("dmanoel-nas run: \(errors) operations failed (see error_codes in the results)") }
    }

    private func makeDirectories(_ path: String) -> Bool {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST { return false }
        }
        return true
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Turn result files of `dmanoel-nas run` into a latency report (Markdown, HTML or CSV).",
        discussion: """
            Each RESULTS is a results.jsonl file or the directory holding one. With several, \
            the report ends with a comparison table (ops/s and p99 per run, and the ratio to \
            the first run). HTML reports are one self-contained file with an SVG percentile plot.
            """)

    @Argument(help: ArgumentHelp("Result files or directories.", valueName: "results"))
    var results: [String]

    @Option(help: "md (tables), html (tables and an SVG percentile plot, one file) or csv (one row per phase and op).")
    var format: String = "md"

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("Write the report here instead of standard output.", valueName: "file"))
    var output: String?

    @Option(name: .customLong("label"), help: ArgumentHelp("A name per run, in order (default: the path).", valueName: "name"))
    var labels: [String] = []

    func run() throws {
        guard let format = Report.Format(rawValue: format) else {
            writeError("dmanoel-nas report: --format must be md, html or csv")
            throw ExitCode(1)
        }
        guard !results.isEmpty else {
            writeError("dmanoel-nas report: give at least one result file")
            throw ExitCode(1)
        }
        var runs: [RunRecord] = []
        for (i, path) in results.enumerated() {
            do {
                var run = try Results.read(path: path)
                if i < labels.count { run.label = labels[i] }
                runs.append(run)
            } catch {
                writeError("dmanoel-nas report: \(error)")
                throw ExitCode(1)
            }
        }
        let text: String
        switch format {
        case .md: text = Report.markdown(runs)
        case .html: text = Report.html(runs)
        case .csv: text = Report.csv(runs)
        }
        if let output {
            guard Results.writeFile(output, text) else {
                writeError("dmanoel-nas report: cannot write \(output)")
                throw ExitCode(1)
            }
        } else {
            print(text, terminator: "")
        }
    }
}

struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Convert a trace into the replay format of workload files.",
        subcommands: [FromDBench.self])

    struct FromDBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "from-dbench",
            abstract: "Convert a dbench 4 load file (e.g. /usr/share/dbench/client.txt) into a trace.",
            discussion: """
                Open file numbers become paths; \\clients\\ is dropped from paths, which become \
                relative to the replaying workload's data-set root. Calls with no operation in \
                the vocabulary (Rename, LockX, SET_FILE_INFORMATION, Deltree, ...) are left out \
                and counted on standard error.
                """)

        @Argument(help: ArgumentHelp("The dbench load file.", valueName: "loadfile"))
        var loadfile: String

        @Option(help: ArgumentHelp("Stop after this many operations.", valueName: "n"))
        var limit: Int?

        @Option(name: [.short, .customLong("output")], help: ArgumentHelp("Write the trace here instead of standard output.", valueName: "file"))
        var output: String?

        func run() throws {
            guard let text = Results.readFile(loadfile) else {
                writeError("dmanoel-nas trace: cannot read \(loadfile)")
                throw ExitCode(1)
            }
            let (ops, skipped) = Trace.fromDBench(text, limit: limit)
            let body = "# converted from the dbench load file \(loadfile) by `dmanoel-nas trace from-dbench`\n"
                + ops.map(\.line).joined(separator: "\n") + "\n"
            if let output {
                guard Results.writeFile(output, body) else {
                    writeError("dmanoel-nas trace: cannot write \(output)")
                    throw ExitCode(1)
                }
            } else {
                print(body, terminator: "")
            }
            let left = skipped.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
            writeError("dmanoel-nas trace: \(ops.count) operations\(left.isEmpty ? "" : "; left out: " + left)")
        }
    }
}
