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
    /// Frames back from the newest one being shown (0: live).
    private var viewOffset = 0
    private var sort = OperationSort.natural

    /// How operation rows are ordered under their protocol.
    enum OperationSort: String, CaseIterable {
        case natural = "protocol order", rate = "ops/s", p99 = "p99", errors = "errors/s"

        var next: OperationSort {
            let all = Self.allCases
            return all[(all.firstIndex(of: self)! + 1) % all.count]
        }
    }

    public init(control: Control, interval: Double) {
        self.control = control
        self.interval = min(10, max(0.1, interval))
        self.model = ConsoleModel(first: control.status())
        model.historyCapacity = Self.historyFrames(interval: self.interval)
    }

    /// Enough frames for ten minutes at this refresh interval (at most 6000).
    static func historyFrames(interval: Double) -> Int { min(6000, max(600, Int((600 / interval).rounded(.up)))) }

    /// Runs until `q` or `shouldStop()`; always restores the terminal.
    public func run(shouldStop: () -> Bool) {
        setlocale(LC_ALL, "")
        guard initscr() != nil else { return }
        defer { endwin() }
        Self.restoreTerminalOnCrash()
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
            if key == 27 {
                // An escape sequence curses did not decode (a terminal's answer to a query,
                // e.g. tmux's version string): drop it whole, its bytes are not keys.
                timeout(0)
                while getch() != ERR {}
                timeout(50)
                continue
            }
            if !handle(key) { return }
            draw()
        }
    }

    /// A crash must not leave the operator's terminal in raw mode: the fatal signals end
    /// curses, then die as they would have.
    static func restoreTerminalOnCrash() {
        for signal in [SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP] {
            Glibc.signal(signal) { number in
                endwin()
                Glibc.signal(number, SIG_DFL)
                raise(number)
            }
        }
    }

    /// Returns false to quit.
    private func handle(_ key: Int32) -> Bool {
        let loops = model.current.loops
        switch key {
        case KEY_LEFT, Int32(UInt8(ascii: "<")):
            let available = model.history.count - 1
            guard available > 0 else { break }
            paused = true
            viewOffset = min(available, viewOffset + 1)
            message = "paused, \(viewOffset) frame(s) back (← → scroll, End or space: live)"
        case KEY_RIGHT, Int32(UInt8(ascii: ">")):
            viewOffset = max(0, viewOffset - 1)
            message = viewOffset == 0 ? "newest frame (space resumes)" : "paused, \(viewOffset) frame(s) back"
        case KEY_END:
            viewOffset = 0
            paused = false
            message = "live"
        case Int32(UInt8(ascii: "s")):
            sort = sort.next
            message = "operations sorted by \(sort.rawValue)"
        case Int32(UInt8(ascii: "w")):
            switch control.saveTuning() {
            case let .success(text): message = text
            case let .failure(error): message = "not saved: \(error)"
            }
        case Int32(UInt8(ascii: "t")):
            report(control.apply(.loopThreads(max(1, loops.count - 1))))
        case Int32(UInt8(ascii: "T")):
            report(control.apply(.loopThreads(loops.count + 1)))
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
            model.historyCapacity = Self.historyFrames(interval: interval)
            message = "refresh every \(Format.fixed(interval, 2)) s"
        case Int32(UInt8(ascii: "]")):
            interval = min(10, interval * 2)
            model.historyCapacity = Self.historyFrames(interval: interval)
            message = "refresh every \(Format.fixed(interval, 2)) s"
        case Int32(UInt8(ascii: " ")):
            paused.toggle()
            if !paused { viewOffset = 0 }
            message = paused ? "paused (space resumes, ← → scroll back)" : "resumed"
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
        let frame = viewOffset > 0 && model.history.count > viewOffset ? model.history[model.history.count - 1 - viewOffset] : nil
        let loopRows = frame?.rows ?? model.rows
        let protocolRows = frame?.protocolRows ?? model.protocolRows
        var y = 0

        let uptime = frame?.uptimeNanoseconds ?? status.uptimeNanoseconds
        let header = " dmanoel-NAS \(status.version)  up \(Format.duration(uptime))  \(status.io.rawValue)"
            + "  cpu \(Format.fixed(frame?.cpuUse ?? model.cpuUse, 2))  rss \(Format.bytes(Double(frame?.residentBytes ?? status.process.residentBytes)))"
            + "  conns \(frame?.connections ?? status.connections)  config \(status.configSource)"
        put(y, 0, Format.pad(header, width, right: false), attributes: dmanoel_color_pair(5))
        y += 1
        let endpoints = status.endpoints.map { "\($0.service) \($0.address)\($0.served ? "" : " (not served yet)")" }
        put(y, 0, " " + (endpoints.isEmpty ? "no endpoints configured" : endpoints.joined(separator: "  ")))
        y += 1

        let mode = status.loops.first.map { "poll_mode \($0.pollMode.rawValue)  spin \(Format.spin($0.spinNanoseconds))" } ?? ""
        let state = frame != nil ? "  HISTORY -\(viewOffset)" : (paused ? "  PAUSED" : "")
        rule(y, "Threads", trailing: "\(mode)  refresh \(Format.fixed(interval, 1))s\(state)", width: width)
        y += 1
        put(y, 0, " LOOP CPU NODE  MODE  POLL%  PASS/s    CQ/s  WAKE/s INFL  SQ CONN    IN/s   OUT/s", attributes: dmanoel_a_bold())
        y += 1
        let threadRows = max(1, min(loopRows.count, height - 12))
        for row in loopRows.prefix(threadRows) {
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
            if row.inFlight >= 64 { put(y, 21 + 6 + 8 + 8 + 8, Format.pad(String(row.inFlight), 5), attributes: dmanoel_color_pair(3)) }
            y += 1
        }
        if loopRows.count > threadRows {
            put(y, 1, "… \(loopRows.count - threadRows) more loops (enlarge the terminal)")
            y += 1
        }
        let d = status.delegation
        put(y, 1, "delegation  \(d.threads) threads  \(d.busy) busy  \(d.queued) queued  \(d.completed) done   rdma: \(status.rdma)")
        y += 1

        rule(y, "Protocols", trailing: (expanded ? "e: totals" : "e: per operation") + "  s: sort (\(sort.rawValue))", width: width)
        y += 1
        // A trend column (op-rate sparkline over recent frames) where the terminal is wide enough.
        let trendWidth = width >= 100 ? min(60, width - 84) : 0
        put(y, 0, " PROTOCOL/OP       OPS/s     MB/s    p50     p99   p99.9     MAX  ERR/s    TOTAL" + (trendWidth > 0 ? "  TREND" : ""),
            attributes: dmanoel_a_bold())
        y += 1
        if protocolRows.isEmpty {
            put(y, 1, "no protocol traffic yet", attributes: dmanoel_a_dim())
            y += 1
        }
        let protocolRoom = max(1, height - y - 6)
        var protocolLines: [(OperationRow, Bool)] = []
        for row in protocolRows {
            protocolLines.append((row.total, true))
            guard expanded else { continue }
            var operations = row.operations.filter { $0.total > 0 }
            switch sort {
            case .natural: break
            case .rate: operations.sort { $0.operationsPerSecond > $1.operationsPerSecond }
            case .p99: operations.sort { $0.p99 > $1.p99 }
            case .errors: operations.sort { $0.errorsPerSecond > $1.errorsPerSecond }
            }
            for op in operations { protocolLines.append((op, false)) }
        }
        for (row, isTotal) in protocolLines.prefix(protocolRoom) {
            let name = isTotal ? row.name : "  " + row.name
            let text = Format.pad(name, 14, right: false) + Format.pad(Format.count(row.operationsPerSecond), 9)
                + Format.pad(Format.fixed(row.bytesPerSecond / 1e6, 1), 9) + Format.pad(Format.latency(row.p50), 7)
                + Format.pad(Format.latency(row.p99), 8) + Format.pad(Format.latency(row.p999), 8)
                + Format.pad(Format.latency(row.maximum), 8) + Format.pad(Format.count(row.errorsPerSecond), 7)
                + Format.pad(Format.count(Double(row.total)), 9)
            put(y, 1, text, attributes: isTotal ? dmanoel_a_bold() : 0)
            // Latency thresholds: yellow past 1 ms, red past 10 ms.
            if row.p99 > 1_000_000 {
                put(y, 1 + 14 + 9 + 9 + 7, Format.pad(Format.latency(row.p99), 8), attributes: dmanoel_color_pair(row.p99 > 10_000_000 ? 4 : 3))
            }
            if isTotal && trendWidth > 0 {
                let end = model.history.count - viewOffset
                let rates = model.history[max(0, end - trendWidth)..<max(0, end)].map { frame in
                    frame.protocolRows.first { $0.total.name == row.name }?.total.operationsPerSecond ?? 0
                }
                put(y, 84, Format.sparkline(Array(rates)), attributes: dmanoel_color_pair(1))
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
        put(height - 1, 0, Format.pad(" q quit  p poll  +/- spin  d/D deleg  [/] refresh  e ops  s sort  ←/→ history  w save  h help", width, right: false),
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
            "  t / T    loop threads: one fewer / one more (needs a restart)",
            "  space    pause or resume the display",
            "  ← / →    scroll back / forward through the last 10 minutes",
            "  End      back to the live view",
            "  e        protocol rows: totals / one row per operation",
            "  s        sort operations: protocol order, ops/s, p99, errors/s",
            "  w        write poll mode, spin and delegation threads to the config",
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
