import Glibc
import Logging
import Runtime
import S3
import SMB
import Synchronization
import VFS

/// The running server: the loop group built from the configuration, its endpoints and its
/// live tuning. Protocol listeners attach here as each protocol lands.
public final class NASServer: ServerControl, @unchecked Sendable {
    public let configuration: Configuration
    public let source: String
    public let group: LoopGroup
    public private(set) var endpoints: [Endpoint]
    public let vfs: VirtualFileSystem
    public let rdmaState: String
    private let startedAt = monotonicNanoseconds()
    private let logger: Logger
    private let logSink: LogSink?
    private var smbServer: SMBServer?
    private var s3Gateway: S3Gateway?
    /// The configuration as reloads left it (shares, buckets and users applied), compared with
    /// the file at the next SIGHUP.
    private let applied: Mutex<Configuration>

    /// Starts loops and services for `loaded`, logging its warnings. Throws when the runtime
    /// cannot start (e.g. no usable io_uring and epoll refused, or threads cannot be created).
    public init(_ loaded: LoadedConfiguration, logger: Logger = Logger(label: "dmanoel.server"), logSink: LogSink? = nil) throws(ServerError) {
        configuration = loaded.configuration
        applied = Mutex(loaded.configuration)
        source = loaded.source
        self.logger = logger
        self.logSink = logSink
        // RDMA is probed below through libibverbs itself: one warning, not two.
        for warning in loaded.warnings where warning.keyPath != "server.rdma" {
            logger.warning("\(loaded.source): \(warning)")
        }
        let server = configuration.server

        if server.rdma {
            let devices = RDMAProbe.deviceNames()
            if devices.isEmpty {
                rdmaState = "no RDMA device; TCP only"
                logger.warning("server.rdma is true but libibverbs finds no RDMA device: serving TCP only")
            } else {
                rdmaState = "devices \(devices.joined(separator: ",")) found; RDMA transport not built yet, TCP only"
                logger.warning("RDMA devices \(devices.joined(separator: ", ")) found, but this build has no RDMA transport yet: serving TCP only")
            }
        } else {
            rdmaState = "off"
        }

        do {
            group = try LoopGroup(LoopGroupSettings(
                threads: server.threads, delegationThreads: server.delegationThreads, io: server.io,
                pollMode: server.pollMode, spinNanoseconds: server.spinNanoseconds,
                maxConnections: server.maxConnections, maxConnectionsPerClient: server.maxConnectionsPerClient),
                logger: Logger(label: "dmanoel.runtime"))
        } catch {
            throw ServerError.startup("cannot start the event loops: \(error)")
        }

        vfs = Mounts.build(configuration, group: group, logger: logger)

        let host = server.bind.description
        let display = host.contains(":") ? "[\(host)]" : host
        endpoints = server.ports.filter { $0.port != 0 }.map { entry in
            Endpoint(service: entry.service, address: "\(display):\(entry.port)", served: false)
        }
        if server.nfsPort != 0 {
            do {
                let (nfs, portmap) = try NFSService.start(configuration, vfs: vfs, group: group, logger: logger)
                markServed(port: server.nfsPort, address: "\(display):\(nfs.port)")
                if let portmap { markServed(port: server.portmapPort, address: "\(display):\(portmap.port)") }
            } catch {
                group.shutdown()
                throw error
            }
        }
        if server.smbPort != 0 {
            do {
                let (smb, smbServer) = try SMBService.start(configuration, vfs: vfs, group: group, logger: logger)
                self.smbServer = smbServer
                markServed(port: server.smbPort, address: "\(display):\(smb.port)")
            } catch {
                group.shutdown()
                throw error
            }
        }
        if server.s3Port != 0 {
            do {
                let (s3, s3Gateway) = try S3Service.start(configuration, vfs: vfs, group: group, logger: logger)
                self.s3Gateway = s3Gateway
                markServed(port: server.s3Port, address: "\(display):\(s3.port)")
            } catch {
                group.shutdown()
                throw error
            }
        }
        do {
            let (admin, metrics) = try AdminService.start(configuration, control: self, group: group, logger: logger)
            if let admin { markServed(port: server.adminPort, address: "\(display):\(admin.port)") }
            if let metrics { markServed(port: server.metricsPort, address: "\(display):\(metrics.port)") }
        } catch {
            group.shutdown()
            throw error
        }
        for endpoint in endpoints where !endpoint.served {
            logger.notice("\(endpoint.service) on \(endpoint.address): not served by this build yet")
        }
        logger.info("ready: \(group.loops.count) loop(s) on \(group.io.rawValue), configuration \(source)")
    }

    private func markServed(port: Int, address: String) {
        if let index = endpoints.firstIndex(where: { $0.address.hasSuffix(":\(port)") && !$0.served }) {
            endpoints[index].served = true
            endpoints[index].address = address
        }
    }

    public func status() -> ServerStatus {
        let now = monotonicNanoseconds()
        return ServerStatus(
            version: BuildInfo.version, configSource: source, uptimeNanoseconds: now - startedAt, takenAt: now,
            io: group.io, endpoints: endpoints, process: ProcessStats.current(), loops: group.snapshot(),
            delegation: group.delegation.snapshot(), rdma: rdmaState, protocols: group.protocolSnapshots())
    }

    public func apply(_ change: TuningChange) -> Result<String, ServerError> {
        let scope: (Int?) -> String = { $0.map { "loop \($0)" } ?? "all loops" }
        let text: String
        switch change {
        case let .pollMode(mode, loop):
            if let loop, !(0..<group.loops.count).contains(loop) { return .failure(.startup("no loop \(loop)")) }
            group.setPollMode(mode, loop: loop)
            text = "poll_mode \(mode.rawValue) (\(scope(loop)))"
        case let .spinNanoseconds(value, loop):
            guard (0...1_000_000_000).contains(value) else { return .failure(.startup("spin_ns must be 0 to 1000000000")) }
            if let loop, !(0..<group.loops.count).contains(loop) { return .failure(.startup("no loop \(loop)")) }
            group.setSpinNanoseconds(value, loop: loop)
            text = "spin_ns \(value) (\(scope(loop)))"
        case let .delegationThreads(count):
            do {
                try group.delegation.resize(to: count)
            } catch {
                return .failure(.startup("\(error)"))
            }
            text = "delegation_threads \(count)"
        case let .loopThreads(count):
            return .failure(.startup("the number of loop threads (now \(group.loops.count)) cannot change while the server runs: "
                + "connections stay on the loop that accepted them. Set server.threads to \(count) in the configuration and restart"))
        }
        logger.notice("tuning: \(text)")
        return .success(text)
    }

    public func saveTuning() -> Result<String, ServerError> {
        guard source != Configuration.embeddedDefaultSource else {
            return .failure(.startup("the embedded default has no file to write: save it with `dmanoel-nas config default > nas.json` and start with --config nas.json"))
        }
        let loop = group.snapshot().first
        let delegation = group.delegation.snapshot().threads
        do {
            let text = try TuningFile.update(path: source, pollMode: loop?.pollMode, spinNanoseconds: loop?.spinNanoseconds, delegationThreads: delegation)
            logger.notice("tuning written to \(source): \(text)")
            return .success("wrote \(text) to \(source)")
        } catch {
            return .failure(error)
        }
    }

    public func recentLogLines(_ count: Int) -> [String] {
        logSink?.recentLines(count) ?? []
    }

    /// SIGHUP: reads the configuration file again. A file that does not load is refused with
    /// its error. Changed shares, buckets and users are applied (new SMB tree connects and
    /// sessions, every S3 request after it); other changes are named in the log as needing a
    /// restart. No connection is dropped.
    public func reload() {
        guard source != Configuration.embeddedDefaultSource else {
            logger.notice("reload (SIGHUP): the server runs the embedded default; there is no file to read again")
            return
        }
        let loaded: LoadedConfiguration
        do {
            loaded = try Configuration.load(path: source)
        } catch {
            logger.error("reload (SIGHUP) refused, the running configuration stays: \(error)")
            return
        }
        let new = loaded.configuration
        let reload = ConfigurationReload(running: applied.withLock { $0 }, loaded: new)
        if reload.changes.isEmpty {
            logger.notice("reload (SIGHUP): \(source) is valid and unchanged")
            return
        }
        for change in reload.changes {
            switch change.section {
            case "shares", "buckets", "users":
                let note = change.section == "users" ? " (NFSv4 owner names follow at the next restart)" : ""
                logger.notice("reload (SIGHUP): \(change.key) changed: applied\(note)")
            default:
                logger.warning("reload (SIGHUP): \(change.key) changed: needs a restart; the running value stays")
            }
        }
        guard reload.changes.contains(where: { ["shares", "buckets", "users"].contains($0.section) }) else { return }
        smbServer?.reload(shares: SMBService.shares(new), users: SMBService.users(new, logger: logger))
        if let gateway = s3Gateway {
            let buckets = S3Service.buckets(new)
            let users = S3Service.users(new)
            let bucketUsers = S3Service.bucketUsers(new)
            for (index, loop) in group.loops.enumerated() {
                loop.execute { gateway.reload(loop: index, buckets: buckets, users: users, bucketUsers: bucketUsers) }
            }
        }
        applied.withLock {
            $0.shares = new.shares
            $0.buckets = new.buckets
            $0.users = new.users
        }
    }

    /// Stops gracefully: no new connections or requests, the requests in progress answered
    /// (waiting at most `server.shutdown_timeout_s`), the mounts flushed; then every loop and
    /// thread stops and connections are closed.
    public func shutdown() {
        let timeout = configuration.server.shutdownTimeoutSeconds
        let started = monotonicNanoseconds()
        let left = group.drain(timeoutNanoseconds: UInt64(timeout) * 1_000_000_000)
        if left > 0 {
            logger.warning("stopping with \(left) request(s) still in progress after shutdown_timeout_s (\(timeout) s)")
        }
        let vfs = self.vfs
        _ = try? runBlocking(on: group.loops[0]) { await vfs.shutdown() }
        logger.info("requests drained and mounts flushed in \((monotonicNanoseconds() - started) / 1_000_000) ms")
        group.shutdown()
        logger.info("stopped")
    }
}
