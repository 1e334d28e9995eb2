import ArgumentParser
import Console
import Glibc
import Logging
import Server

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the server, with its live console when the terminal allows.",
        discussion: """
            Without --config the embedded default runs: one in-memory (memfs) mount shared over \
            every protocol on unprivileged ports, bound to 127.0.0.1 (`dmanoel-nas config default` \
            prints it). The console needs a terminal; without one, or with --no-console, the \
            server logs to standard error and runs until SIGINT or SIGTERM.
            """)

    @Option(name: .shortAndLong, help: ArgumentHelp("Configuration file (JSON).", valueName: "file"))
    var config: String?

    @Flag(inversion: .prefixedNo, help: "Show the live console (default: when standard output is a terminal).")
    var console: Bool?

    @Flag(help: "Print one status line per interval instead of the full-screen console.")
    var plain = false

    @Option(help: ArgumentHelp("Console refresh interval in seconds (0.1 to 10).", valueName: "seconds"))
    var interval = 1.0

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    @Option(name: .customLong("log-file"), help: ArgumentHelp("Append log lines to this file instead of standard error.", valueName: "file"))
    var logFile: String?

    func validate() throws {
        guard (0.1...10).contains(interval) else { throw ValidationError("--interval must be between 0.1 and 10 seconds") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of: trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() throws {
        let loaded: LoadedConfiguration
        if let config {
            do {
                loaded = try Configuration.load(path: config)
            } catch {
                writeError("\(error)")
                throw ExitCode(1)
            }
        } else {
            loaded = Configuration.embeddedDefault()
        }

        let fullScreen = (console ?? (isatty(1) == 1)) && !plain
        let sink: LogSink
        do {
            sink = try logFile.map { try LogSink.file($0) } ?? .standardError
        } catch {
            writeError("\(error)")
            throw ExitCode(1)
        }
        LogSetup.bootstrap(level: Logger.Level(rawValue: logLevel)!, sink: sink)
        if fullScreen && isatty(1) != 1 {
            writeError("--console needs a terminal on standard output; use --plain or --no-console")
            throw ExitCode(1)
        }
        if fullScreen { sink.hold(true) }

        // Block the stop and reload signals before any thread starts, so they are only seen here.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGHUP)
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        let server: NASServer
        do {
            server = try NASServer(loaded, logSink: sink)
        } catch {
            sink.hold(false)
            writeError("cannot start: \(error)")
            throw ExitCode(1)
        }

        // With the console on a terminal, SIGHUP is the terminal going away (a closed window, a
        // killed tmux session): the server stops, as a foreground program does. Without one it
        // is the daemon convention: read the configuration again.
        let hangupStops = fullScreen || ((plain || console == true) && isatty(1) == 1)

        func stopRequested() -> Bool {
            var pending = sigset_t()
            sigpending(&pending)
            if sigismember(&pending, SIGHUP) == 1 {
                if hangupStops { return true }
                var hangup = sigset_t()
                sigemptyset(&hangup)
                sigaddset(&hangup, SIGHUP)
                var zero = timespec()
                if sigtimedwait(&hangup, nil, &zero) == SIGHUP { server.reload() }
            }
            return sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1
        }

        if fullScreen {
            FullScreenConsole(control: server, interval: interval).run(shouldStop: stopRequested)
            sink.hold(false)
        } else if plain || console == true {
            PlainConsole.run(server, interval: interval, shouldStop: stopRequested)
        } else {
            var received: Int32 = 0
            while sigwait(&signals, &received) == 0, received == SIGHUP {
                server.reload()
            }
        }
        server.shutdown()
    }
}

/// Writes a line to standard error with one system call.
func writeError(_ text: String) {
    let line = text.hasSuffix("\n") ? text : text + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}
