import CNcurses
import Glibc
import Runtime
import Server

/// The live ncurses console: header, threads panel, protocol panel, recent log lines, and
/// keys that tune the running server. Works from 80×24 up; Unicode box drawing (not ACS_*) so
/// tmux captures stay readable.
public final class FullScreenConsole<Control: ServerControl> {
    private let control: Control
    private var interval: Double
    private var model: ConsoleModel
    private var paused = false
    private var showHelp = false
    /// Show one row per operation under each protocol.
    private var expanded = false
    private var message = ""

    public init(control: Control, interval: Double) {
        self.control = control
        self.interval = min(10, max(0.1, interval))
        self.model = ConsoleModel(first: control.status())
    }

    /// Runs until `q` or `shouldStop()`; always restores the terminal.
    public func run(shouldStop: () -> Bool) {
        setlocale(LC_ALL, "")
        guard initscr() != nil else { return }
        defer { endwin() }
        cbreak()
        noecho()
        keypad(dmanoel_stdscr(), true)
        curs_set(0)
        timeout(50)
        if has_colors() {
            start_color()
            use_default_colors()
            init_pair(1, Int16(COLOR_GREEN), -1)
            init_pair(2, Int16(COLOR_CYAN), -1)
            init_pair(3, Int16(COLOR_YELLOW), -1)
            init_pair(4, Int16(COLOR_RED), -1)
            init_pair(5, Int16(COLOR_BLACK), Int16(COLOR_CYAN))
        }
        // Sample once quickly so the first screen already shows rates.
        usleep(100_000)
        model.update(control.status())
        var nextRefresh = monotonicNanoseconds()
        while !shouldStop() {
            let now = monotonicNanoseconds()
            if now >= nextRefresh {
                if !paused { model.update(control.status()) }
                draw()
                nextRefresh = now + UInt64(interval * 1e9)
            }
            let key = getch()
            if key == ERR { continue }
            if !handle(key) { return }
            draw()
        }
    }

    /// Returns false to quit.
    private func handle(_ key: Int32) -> Bool {
        let loops = model.current.loops
        switch key {
        case Int32(UInt8(ascii: "q")), Int32(UInt8(ascii: "Q")):
            return false
        case Int32(UInt8(ascii: "p")):
            let now = loops.first?.pollMode ?? .auto
            let next: PollMode = now == .auto ? .always : now == .always ? .never : .auto
            report(control.apply(.pollMode(next, loop: nil)))
        case Int32(UInt8(ascii: "+")), Int32(UInt8(ascii: "=")):
            let now = loops.first?.spinNanoseconds ?? RuntimeDefaults.spinNanoseconds
            report(control.apply(.spinNanoseconds(min(1_000_000_000, max(1000, now * 2)), loop: nil)))
        case Int32(UInt8(ascii: "-")):
            let now = loops.first?.spinNanoseconds ?? RuntimeDefaults.spinNanoseconds
            report(control.apply(.spinNanoseconds(now / 2, loop: nil)))
        case Int32(UInt8(ascii: "d")):
            report(control.apply(.delegationThreads(max(1, model.current.delegation.threads - 1))))
        case Int32(UInt8(ascii: "D")):
            report(control.apply(.delegationThreads(model.current.delegation.threads + 1)))
        case Int32(UInt8(ascii: "[")):
            interval = max(0.1, interval / 2)
            message = "refresh every \(Format.fixed(interval, 2)) s"
        case Int32(UInt8(ascii: "]")):
            interval = min(10, interval * 2)
            message = "refresh every \(Format.fixed(interval, 2)) s"
        case Int32(UInt8(ascii: " ")):
            paused.toggle()
            message = paused ? "paused (space resumes)" : "resumed"
        case Int32(UInt8(ascii: "e")):
            expanded.toggle()
            message = expanded ? "showing every operation (e collapses)" : "showing protocol totals (e expands)"
        case Int32(UInt8(ascii: "h")), Int32(UInt8(ascii: "?")):
            showHelp.toggle()
        case KEY_RESIZE:
            clear()
        default:
            break
        }
        return true
    }

    private func report(_ result: Result<String, ServerError>) {
        switch result {
        case let .success(text):
            model.update(control.status())
            message = "applied: \(text)"
        case let .failure(error):
            message = "refused: \(error)"
        }
    }

    // MARK: Drawing

    private func draw() {
        erase()
        let width = Int(dmanoel_cols())
        let height = Int(dmanoel_lines())
        let status = model.current
        var y = 0

        let header = " dmanoel-NAS \(status.version)  up \(Format.duration(status.uptimeNanoseconds))  \(status.io.rawValue)"
            + "  cpu \(Format.fixed(model.cpuUse, 2))  rss \(Format.bytes(Double(status.process.residentBytes)))"
            + "  conns \(status.connections)  config \(status.configSource)"
        put(y, 0, Format.pad(header, width, right: false), attributes: dmanoel_color_pair(5))
        y += 1
        let endpoints = status.endpoints.map { "\($0.service) \($0.address)\($0.served ? "" : " (not served yet)")" }
        put(y, 0, " " + (endpoints.isEmpty ? "no endpoints configured" : endpoints.joined(separator: "  ")))
        y += 1

        let mode = status.loops.first.map { "poll_mode \($0.pollMode.rawValue)  spin \(Format.spin($0.spinNanoseconds))" } ?? ""
        rule(y, "Threads", trailing: "\(mode)  refresh \(Format.fixed(interval, 1))s\(paused ? "  PAUSED" : "")", width: width)
        y += 1
        put(y, 0, " LOOP CPU NODE  MODE  POLL%  PASS/s    CQ/s  WAKE/s INFL  SQ CONN    IN/s   OUT/s", attributes: dmanoel_a_bold())
        y += 1
        let threadRows = max(1, min(model.rows.count, height - 12))
        for row in model.rows.prefix(threadRows) {
            let fields = Format.pad(String(row.index), 5) + Format.pad(String(row.cpu), 4) + Format.pad(String(row.node), 5)
            put(y, 0, fields)
            let modeText = row.mode == .poll ? "POLL " : "EVENT"
            put(y, 15, modeText, attributes: dmanoel_color_pair(row.mode == .poll ? 1 : 2) | dmanoel_a_bold())
            let rest = Format.pad(String(Int((row.pollShare * 100).rounded())), 6)
                + Format.pad(Format.count(row.passesPerSecond), 8) + Format.pad(Format.count(row.completionsPerSecond), 8)
                + Format.pad(Format.count(row.wakeupsPerSecond), 8) + Format.pad(String(row.inFlight), 5)
                + Format.pad(String(row.submissionDepth), 4) + Format.pad(String(row.connections), 5)
                + Format.pad(Format.bytes(row.bytesInPerSecond), 8) + Format.pad(Format.bytes(row.bytesOutPerSecond), 8)
            put(y, 21, rest)
            y += 1
        }
        if model.rows.count > threadRows {
            put(y, 1, "… \(model.rows.count - threadRows) more loops (enlarge the terminal)")
            y += 1
        }
        let d = status.delegation
        put(y, 1, "delegation  \(d.threads) threads  \(d.busy) busy  \(d.queued) queued  \(d.completed) done   rdma: \(status.rdma)")
        y += 1

        rule(y, "Protocols", trailing: expanded ? "e: totals" : "e: per operation", width: width)
        y += 1
        put(y, 0, " PROTOCOL/OP       OPS/s     MB/s    p50     p99   p99.9     MAX  ERR/s    TOTAL", attributes: dmanoel_a_bold())
        y += 1
        if model.protocolRows.isEmpty {
            put(y, 1, "no protocol traffic yet", attributes: dmanoel_a_dim())
            y += 1
        }
        let protocolRoom = max(1, height - y - 6)
        var protocolLines: [(OperationRow, Bool)] = []
        for row in model.protocolRows {
            protocolLines.append((row.total, true))
            if expanded { for op in row.operations where op.total > 0 { protocolLines.append((op, false)) } }
        }
        for (row, isTotal) in protocolLines.prefix(protocolRoom) {
            let name = isTotal ? row.name : "  " + row.name
            let text = Format.pad(name, 14, right: false) + Format.pad(Format.count(row.operationsPerSecond), 9)
                + Format.pad(Format.fixed(row.bytesPerSecond / 1e6, 1), 9) + Format.pad(Format.latency(row.p50), 7)
                + Format.pad(Format.latency(row.p99), 8) + Format.pad(Format.latency(row.p999), 8)
                + Format.pad(Format.latency(row.maximum), 8) + Format.pad(Format.count(row.errorsPerSecond), 7)
                + Format.pad(Format.count(Double(row.total)), 9)
            put(y, 1, text, attributes: isTotal ? dmanoel_a_bold() : 0)
            if row.p99 > 10_000_000 {
                put(y, 1 + 14 + 9 + 9 + 7, Format.pad(Format.latency(row.p99), 8), attributes: dmanoel_color_pair(4))
            }
            y += 1
        }

        rule(y, "Log", trailing: "", width: width)
        y += 1
        let logRows = max(0, height - y - 2)
        for line in control.recentLogLines(logRows) {
            let trimmed = line.hasSuffix("\n") ? String(line.dropLast()) : line
            let warn = trimmed.contains(" WARNING ") || trimmed.contains(" ERROR ")
            put(y, 1, String(trimmed.prefix(width - 2)), attributes: warn ? dmanoel_color_pair(3) : 0)
            y += 1
        }

        if !message.isEmpty { put(height - 2, 1, String(message.prefix(width - 2)), attributes: dmanoel_color_pair(3)) }
        put(height - 1, 0, Format.pad(" q quit  p poll  +/- spin  d/D delegation  [/] refresh  e ops  space pause  h help", width, right: false),
            attributes: dmanoel_color_pair(5))
        if showHelp { drawHelp(width: width, height: height) }
        refresh()
    }

    private func drawHelp(width: Int, height: Int) {
        let lines = [
            "Keys",
            "  q        quit (the server stops too when it runs in this process)",
            "  p        poll mode for all loops: auto → always → never",
            "  + / -    spin time before an auto loop sleeps: double / halve",
            "  d / D    delegation threads: one fewer / one more",
            "  [ / ]    refresh interval: halve / double (0.1 s to 10 s)",
            "  space    pause or resume the display",
            "  e        protocol rows: totals / one row per operation",
            "  h or ?   this help",
            "",
            "MODE: POLL = spinning on its queues, EVENT = asleep in the kernel.",
            "POLL% = share of the interval the loop was awake.",
        ]
        let top = max(1, (height - lines.count) / 2 - 1)
        let left = max(0, (width - 70) / 2)
        for (i, line) in lines.enumerated() where top + i < height - 1 {
            put(top + i, left, Format.pad(line, min(70, width - left), right: false), attributes: dmanoel_a_reverse())
        }
    }

    private func rule(_ y: Int, _ title: String, trailing: String, width: Int) {
        var text = "── \(title) "
        let tail = trailing.isEmpty ? "" : " \(trailing) ──"
        let fill = max(0, width - text.count - tail.count)
        text += String(repeating: "─", count: fill) + tail
        put(y, 0, text, attributes: dmanoel_color_pair(3))
    }

    private func put(_ y: Int, _ x: Int, _ text: String, attributes: Int32 = 0) {
        guard y >= 0, y < Int(dmanoel_lines()), x < Int(dmanoel_cols()) else { return }
        let room = Int(dmanoel_cols()) - x
        let clipped = text.count > room ? String(text.prefix(room)) : text
        if attributes != 0 { attron(attributes) }
        mvaddstr(Int32(y), Int32(x), clipped)
        if attributes != 0 { attroff(attributes) }
    }
}
