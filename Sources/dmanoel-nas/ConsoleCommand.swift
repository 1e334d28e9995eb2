import ArgumentParser
import Console
import Glibc
import Server

struct ConsoleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Watch and tune a running server through its admin API.",
        discussion: """
            Shows the same console as `serve --console`, for a server started elsewhere (for \
            example with --no-console under a service manager). Tuning keys work when the \
            console runs on the server's machine: the admin API accepts changes only from \
            loopback.
            """)

    @Option(help: ArgumentHelp("The server's admin API (server.admin_port).", valueName: "host:port"))
    var connect = "127.0.0.1:\(ServerSettings.defaultAdminPort)"

    @Flag(help: "Print one status line per interval instead of the full-screen console.")
    var plain = false

    @Option(help: ArgumentHelp("Refresh interval in seconds (0.1 to 10).", valueName: "seconds"))
    var interval = 1.0

    func validate() throws {
        guard (0.1...10).contains(interval) else { throw ValidationError("--interval must be between 0.1 and 10 seconds") }
    }

    func run() throws {
        let remote: RemoteServer
        do {
            remote = try RemoteServer(address: connect)
            _ = try remote.fetchStatus()
        } catch {
            writeError("dmanoel-nas console: \(error)")
            throw ExitCode(1)
        }
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        func stopRequested() -> Bool {
            var pending = sigset_t()
            sigpending(&pending)
            return sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1
        }
        if plain || isatty(1) != 1 {
            PlainConsole.run(remote, interval: interval, shouldStop: stopRequested)
        } else {
            FullScreenConsole(control: remote, interval: interval).run(shouldStop: stopRequested)
        }
    }
}
