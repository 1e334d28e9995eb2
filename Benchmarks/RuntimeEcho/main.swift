import ArgumentParser
import Glibc
import Runtime

/// The runtime's side of scripts/bench-runtime: echoes every byte back, by reference (the
/// received slice is queued for sending, no copy).
final class EchoHandler: ConnectionHandler {
    override func received(_ bytes: ByteSlice, on connection: Connection) -> Int {
        connection.send(bytes)
        return bytes.count
    }
}

struct RuntimeEcho: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runtime-echo",
        abstract: "TCP echo server on the dmanoel-NAS runtime, for the ping-pong benchmark.")

    @Option(help: "Address to bind.") var host = "127.0.0.1"
    @Option(help: "Port (0: pick a free one).") var port = 0
    @Option(help: "Loop threads.") var threads = 1
    @Option(help: "io_uring or epoll.") var io = "io_uring"
    @Option(name: .customLong("poll-mode"), help: "auto, always or never.") var pollMode = "auto"
    @Option(name: .customLong("spin-ns"), help: "Idle time before an auto loop sleeps.") var spinNs = RuntimeDefaults.spinNanoseconds
    @Option(help: "Comma-separated CPUs for the loop threads (default: the affinity mask).") var cpus: String?

    func run() throws {
        guard let backend = IOBackendKind(rawValue: io) else { throw ValidationError("--io must be io_uring or epoll") }
        guard let mode = PollMode(rawValue: pollMode) else { throw ValidationError("--poll-mode must be auto, always or never") }
        var topology: Topology?
        if let cpus {
            let list = cpus.split(separator: ",").compactMap { Int($0) }
            guard !list.isEmpty else { throw ValidationError("--cpus: expected a comma-separated list of CPU numbers") }
            topology = Topology(nodes: [(0, list)], simulated: false)
        }
        // Block the stop signals before any loop thread exists, so only sigwait sees them.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        let group = try LoopGroup(LoopGroupSettings(threads: threads, delegationThreads: 1, io: backend, pollMode: mode,
                                                    spinNanoseconds: spinNs, topology: topology))
        let listener = try group.listen(host: host, port: port) { _ in EchoHandler() }
        print("listening \(listener.boundAddress)")
        fflush(nil)
        var received: Int32 = 0
        sigwait(&signals, &received)
        group.shutdown()
    }
}

RuntimeEcho.main()
