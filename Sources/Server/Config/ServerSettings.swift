import Runtime

/// The `server` section: threads, polling, plugins, addresses and ports.
///
/// Every key is optional. Defaults when a key is absent (or `null`):
///
/// | key                  | default                                                        |
/// |----------------------|----------------------------------------------------------------|
/// | `threads`            | one loop thread per CPU in the process's affinity mask         |
/// | `delegation_threads` | `RuntimeDefaults.delegationThreads` (4)                        |
/// | `rdma`               | `false`                                                        |
/// | `smb_multichannel`   | none                                                           |
/// | `vfs`                | no plugins; each is `{"path": "/abs/lib.so", "config": "…"}`   |
/// | `bind`               | `0.0.0.0`: every IPv4 address of the machine (`::` for IPv6 too)|
/// | `nfs_port`           | 2049 (NFSv3, NFSv4, MOUNT and portmap all answer there)        |
/// | `portmap_port`       | 0 = off (the standard port 111 needs root)                     |
/// | `smb_port`           | 4445 (445 needs root)                                          |
/// | `s3_port`            | 9000                                                           |
/// | `admin_port`         | 9870 (admin HTTP API, JSON)                                    |
/// | `metrics_port`       | 9871 (Prometheus text format)                                  |
/// | `io`                 | `RuntimeDefaults.io` (`io_uring`)                              |
/// | `poll_mode`          | `RuntimeDefaults.pollMode` (`auto`)                            |
/// | `spin_ns`            | `RuntimeDefaults.spinNanoseconds` (50000)                      |
/// | `state_dir`          | none: NFS handles are signed with a key drawn at each start     |
/// | `s3_bucket_root`     | none: only the configured `buckets`; CreateBucket is refused    |
/// | `s3_domain`          | none: path-style addressing only                               |
/// | `request_timeout_s`  | 30: seconds a client has to finish a request it started sending |
/// | `shutdown_timeout_s` | 5 (0 to 600): on SIGTERM, how long requests in progress may take |
/// | `max_connections`    | `RuntimeDefaults.maxConnections` (10000), over all services     |
/// | `max_connections_per_client` | `RuntimeDefaults.maxConnectionsPerClient` (1000), per address |
/// | `nfs4_lease_seconds` | 90 (1 to 3600): NFSv4 state of a silent client expires after it |
/// | `nfs4_grace_seconds` | 0 = off: after a start, only NFSv4 reclaims take state for this long |
/// | `nfs_max_*`, `nfs4_max_*`, `smb_max_*`, `s3_max_*` | per-protocol limits: see ``LimitSettings`` |
///
/// `threads` and `delegation_threads` accept 1 to 1024, `spin_ns` 0 to 1000000000 (one second),
/// `smb_multichannel[].speed` 1 to 100000 (Gbit/s). A plugin's `config` is optional and passed
/// to the plugin as written.
///
/// A port of 0 turns that service off. Two services on the same non-zero port is an error.
/// A port below 1024 while not running as root is a warning (it needs CAP_NET_BIND_SERVICE).
public struct ServerSettings: Sendable, Equatable {
    public static let defaultNFSPort = 2049
    public static let defaultPortmapPort = 0
    public static let defaultSMBPort = 4445
    public static let defaultS3Port = 9000
    public static let defaultAdminPort = 9870
    public static let defaultMetricsPort = 9871
    public static let defaultBind = IPAddress.v4(0)

    /// Event-loop threads; `nil` means one per CPU in the process's affinity mask.
    public var threads: Int?
    /// Threads that run blocking system calls for the `linux` module and the like.
    public var delegationThreads: Int
    /// Look for RDMA devices at start and serve over them when present.
    public var rdma: Bool
    /// Interfaces announced to SMB3 clients for multichannel.
    public var smbMultichannel: [SMBMultichannelInterface]
    /// VFS plugins (shared libraries), in file order; each name becomes a mount module.
    public var vfsPlugins: [VFSPluginSettings]
    /// The address every service listens on; `0.0.0.0` or `::` means every address.
    public var bind: IPAddress
    public var nfsPort: Int
    public var portmapPort: Int
    public var smbPort: Int
    public var s3Port: Int
    public var adminPort: Int
    public var metricsPort: Int
    public var io: IOBackendKind
    /// Where S3 CreateBucket makes bucket directories: a path in the server's namespace
    /// (checked against the mounts by ``Configuration``); nil refuses CreateBucket.
    public var s3BucketRoot: String?
    /// With a domain such as "s3.example.test", a request for host "BUCKET.s3.example.test"
    /// addresses BUCKET (virtual-hosted style); path style keeps working.
    public var s3Domain: String?
    /// Connections the server keeps open at once, and from one client address; more are
    /// closed as they are accepted.
    /// Seconds a client has to finish sending a request it started (an RPC record, an HTTP
    /// head or body): slow or stalled senders are disconnected after it.
    public var requestTimeoutSeconds = 30
    /// On SIGTERM/SIGINT: seconds the server waits for requests in progress after it stops
    /// accepting connections and reading new requests (then flushes the mounts and exits).
    public var shutdownTimeoutSeconds = 5
    public var maxConnections = RuntimeDefaults.maxConnections
    public var maxConnectionsPerClient = RuntimeDefaults.maxConnectionsPerClient
    public var pollMode: PollMode
    /// How long an `auto` loop spins with nothing to do before it sleeps, in nanoseconds.
    public var spinNanoseconds: Int
    /// A directory for state that must outlive a restart (the key NFS handles are signed with,
    /// so clients keep their handles to linux/io_uring files across restarts). nil: none.
    public var stateDirectory: String? = nil
    /// NFSv4 lease time in seconds (`nfs4_lease_seconds`): a client silent longer loses its state.
    public var nfs4LeaseSeconds: Int = 90
    /// NFSv4 grace period after a start (`nfs4_grace_seconds`): only reclaims take state
    /// during it; 0 turns it off.
    public var nfs4GraceSeconds: Int = 0
    /// Per-protocol request, in-flight and open limits.
    public var limits = LimitSettings()

    public init(
        threads: Int? = nil,
        delegationThreads: Int = RuntimeDefaults.delegationThreads,
        rdma: Bool = false,
        smbMultichannel: [SMBMultichannelInterface] = [],
        vfsPlugins: [VFSPluginSettings] = [],
        bind: IPAddress = ServerSettings.defaultBind,
        nfsPort: Int = ServerSettings.defaultNFSPort,
        portmapPort: Int = ServerSettings.defaultPortmapPort,
        smbPort: Int = ServerSettings.defaultSMBPort,
        s3Port: Int = ServerSettings.defaultS3Port,
        adminPort: Int = ServerSettings.defaultAdminPort,
        metricsPort: Int = ServerSettings.defaultMetricsPort,
        io: IOBackendKind = RuntimeDefaults.io,
        pollMode: PollMode = RuntimeDefaults.pollMode,
        spinNanoseconds: Int = RuntimeDefaults.spinNanoseconds
    ) {
        self.threads = threads
        self.delegationThreads = delegationThreads
        self.rdma = rdma
        self.smbMultichannel = smbMultichannel
        self.vfsPlugins = vfsPlugins
        self.bind = bind
        self.nfsPort = nfsPort
        self.portmapPort = portmapPort
        self.smbPort = smbPort
        self.s3Port = s3Port
        self.adminPort = adminPort
        self.metricsPort = metricsPort
        self.io = io
        self.pollMode = pollMode
        self.spinNanoseconds = spinNanoseconds
    }

    /// The plugin declared under `vfs` with this name.
    public func plugin(named name: String) -> VFSPluginSettings? {
        vfsPlugins.first { $0.name == name }
    }

    /// Each port setting with its key and the service it belongs to, in file order.
    public var ports: [(key: String, service: String, port: Int)] {
        [
            ("nfs_port", "NFS (with MOUNT and portmap)", nfsPort),
            ("portmap_port", "portmap", portmapPort),
            ("smb_port", "SMB", smbPort),
            ("s3_port", "S3", s3Port),
            ("admin_port", "the admin API", adminPort),
            ("metrics_port", "the metrics endpoint", metricsPort),
        ]
    }
}

/// One `server.smb_multichannel` entry: an address SMB3 clients may also connect to.
public struct SMBMultichannelInterface: Sendable, Equatable {
    public var address: IPAddress
    /// Link speed announced to clients, in Gbit/s.
    public var speedGbps: Int

    public init(address: IPAddress, speedGbps: Int) {
        self.address = address
        self.speedGbps = speedGbps
    }
}

/// One `server.vfs` entry: a VFS plugin, loaded with dlopen, usable as a mount `module`.
public struct VFSPluginSettings: Sendable, Equatable {
    /// The name mounts use as their `module`.
    public var name: String
    /// Absolute path of the shared library (`path`).
    public var libraryPath: String
    /// Passed to the plugin as it is (`config`); `nil` when absent.
    public var configPath: String?

    public init(name: String, libraryPath: String, configPath: String? = nil) {
        self.name = name
        self.libraryPath = libraryPath
        self.configPath = configPath
    }
}

// MARK: Reading and writing

extension ServerSettings {
    static let keys = [
        "threads", "delegation_threads", "rdma", "smb_multichannel", "vfs", "bind", "nfs_port",
        "portmap_port", "smb_port", "s3_port", "admin_port", "metrics_port", "io", "poll_mode", "spin_ns",
        "state_dir", "s3_bucket_root", "s3_domain", "max_connections", "max_connections_per_client", "request_timeout_s", "shutdown_timeout_s",
        "nfs4_lease_seconds", "nfs4_grace_seconds",
    ] + LimitSettings.keys

    static func decode(_ value: ConfigValue?) throws(ConfigError) -> ServerSettings {
        var settings = ServerSettings()
        guard let value else { return settings }
        let section = try value.section("the server settings", keys: keys, example: #""server": { "threads": 4 }"#)

        settings.threads = try section.optionalInt(
            "threads", in: 1...1024, example: "4",
            hint: "Use 1 to 1024, or leave \"threads\" out for one thread per CPU the process may run on.")
        settings.delegationThreads = try section.int(
            "delegation_threads", in: 1...1024, default: RuntimeDefaults.delegationThreads, example: "4")
        settings.rdma = try section.bool("rdma", default: false)
        settings.spinNanoseconds = try section.int(
            "spin_ns", in: 0...1_000_000_000, default: RuntimeDefaults.spinNanoseconds, example: "50000",
            hint: "Use 0 (sleep at once) to 1000000000 (one second); the default is \(RuntimeDefaults.spinNanoseconds).")
        settings.maxConnections = try section.int(
            "max_connections", in: 1...1_000_000, default: RuntimeDefaults.maxConnections, example: "10000",
            hint: "Use 1 to 1000000 connections over all services; the default is \(RuntimeDefaults.maxConnections).")
        settings.maxConnectionsPerClient = try section.int(
            "max_connections_per_client", in: 1...1_000_000, default: RuntimeDefaults.maxConnectionsPerClient, example: "1000",
            hint: "Use 1 to 1000000 connections from one client address; the default is \(RuntimeDefaults.maxConnectionsPerClient).")
        settings.requestTimeoutSeconds = try section.int(
            "request_timeout_s", in: 1...3600, default: 30, example: "30",
            hint: "Use 1 to 3600 seconds; the default is 30.")
        settings.shutdownTimeoutSeconds = try section.int(
            "shutdown_timeout_s", in: 0...600, default: 5, example: "5",
            hint: "Use 0 (stop at once) to 600 seconds; the default is 5.")
        settings.io = try section.choice("io", default: RuntimeDefaults.io)
        settings.nfs4LeaseSeconds = try section.int(
            "nfs4_lease_seconds", in: 1...3600, default: 90, example: "90",
            hint: "Use 1 to 3600 seconds; clients renew about every third of it.")
        settings.nfs4GraceSeconds = try section.int(
            "nfs4_grace_seconds", in: 0...3600, default: 0, example: "0",
            hint: "Use 0 (no grace period) to 3600 seconds.")
        settings.pollMode = try section.choice("poll_mode", default: RuntimeDefaults.pollMode)
        settings.limits = try LimitSettings.decode(section)
        if let stateValue = section["state_dir"] {
            let directory = try stateValue.string(example: "/var/lib/dmanoel-nas")
            guard directory.hasPrefix("/") else {
                throw configError(stateValue.path, "\(JSONValue.quoted(directory)) is not an absolute path",
                                  fix: "Give a directory's full path, e.g. \"state_dir\": \"/var/lib/dmanoel-nas\".")
            }
            settings.stateDirectory = directory
        }

        if let domainValue = section["s3_domain"] {
            let domain = try domainValue.string(example: "s3.example.test").lowercased()
            let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
            guard domain.utf8.count <= 253, labels.count >= 1, labels.allSatisfy({ label in
                !label.isEmpty && label.utf8.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                    && label.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == UInt8(ascii: "-") }
            }) else {
                throw configError(domainValue.path, "\(JSONValue.quoted(domain)) is not a DNS name",
                                  fix: "Give the domain clients put after the bucket name, e.g. \"s3_domain\": \"s3.example.test\" (no port, no scheme).")
            }
            settings.s3Domain = domain
        }

        if let bind = section["bind"] {
            settings.bind = try bind.address(
                example: "127.0.0.1",
                fix: "Use an address of this machine, \"0.0.0.0\" for every IPv4 address or \"::\" for every address, e.g. \"bind\": \"127.0.0.1\".")
        }

        var ports: [String: (port: Int, explicit: Bool)] = [:]
        for (key, _, defaultPort) in settings.ports {
            let explicit = section[key] != nil
            let port = try section.int(key, in: 0...65535, default: defaultPort, example: "\(defaultPort)",
                                       hint: "Use a port from 1 to 65535, or 0 to turn the service off.")
            ports[key] = (port, explicit)
        }
        settings.nfsPort = ports["nfs_port"]!.port
        settings.portmapPort = ports["portmap_port"]!.port
        settings.smbPort = ports["smb_port"]!.port
        settings.s3Port = ports["s3_port"]!.port
        settings.adminPort = ports["admin_port"]!.port
        settings.metricsPort = ports["metrics_port"]!.port

        // Port clashes: reported at the key the file sets (the later one when it sets both),
        // naming the other.
        let all = settings.ports
        for (i, later) in all.enumerated() where later.port != 0 {
            if let earlier = all[..<i].first(where: { $0.port == later.port }) {
                let (blamed, other) = ports[later.key]!.explicit || !ports[earlier.key]!.explicit ? (later, earlier) : (earlier, later)
                let otherShown = "server.\(other.key)" + (ports[other.key]!.explicit ? "" : " (by default)")
                throw configError(
                    section.path.key(blamed.key),
                    "port \(blamed.port) is already taken by \(otherShown); \(blamed.service) and \(other.service) cannot share a port",
                    fix: "Give \(blamed.key) another port, or 0 to turn \(blamed.service) off.")
            }
        }

        if let list = section["smb_multichannel"] {
            for element in try list.array() {
                let entry = try element.section("an SMB multichannel interface", keys: ["address", "speed"],
                                                example: #"{ "address": "192.168.1.10", "speed": 25 }"#)
                let addressValue = try entry.require("address", example: "\"192.168.1.10\"")
                let address = try addressValue.address(
                    example: "192.168.1.10",
                    fix: "Use an address of one of this machine's interfaces, e.g. \"address\": \"192.168.1.10\".")
                if address.isUnspecified {
                    throw configError(addressValue.path, "\(address) is not the address of an interface",
                                      fix: "Name the interface's own address, e.g. \"address\": \"192.168.1.10\".")
                }
                if settings.smbMultichannel.contains(where: { $0.address == address }) {
                    throw configError(addressValue.path, "\(address) is listed twice",
                                      fix: "Remove one of the two entries.")
                }
                let speed = try entry.require("speed", example: "25").int(
                    in: 1...100_000, example: "25", hint: "Give the link speed in Gbit/s (1 to 100000), e.g. \"speed\": 25.")
                settings.smbMultichannel.append(SMBMultichannelInterface(address: address, speedGbps: speed))
            }
        }

        if let vfs = section["vfs"] {
            for (name, entryValue) in try vfs.map(of: "VFS plugins", example: #""vfs": { "demofs": { "path": "/usr/local/lib/demofs.so" } }"#) {
                try ConfigNames.checkSimpleName(name, at: entryValue.path, kind: "plugin")
                if MountModule.builtinNames.contains(name) {
                    throw configError(entryValue.path, "\(JSONValue.quoted(name)) is a built-in module",
                                      fix: "Give the plugin another name; \(listChoices(MountModule.builtinNames, conjunction: "and")) are built in.")
                }
                let entry = try entryValue.section("a VFS plugin", keys: ["path", "config"],
                                                   example: #"{ "path": "/usr/local/lib/demofs.so" }"#)
                let pathValue = try entry.require("path", example: "\"/usr/local/lib/\(name).so\"")
                let path = try pathValue.string(example: "/usr/local/lib/\(name).so")
                guard path.hasPrefix("/") else {
                    throw configError(pathValue.path, "\(JSONValue.quoted(path)) is not an absolute path",
                                      fix: "Give the shared library's full path, e.g. \"path\": \"/usr/local/lib/\(name).so\".")
                }
                let config = try entry["config"]?.string(example: "/usr/local/etc/\(name).json")
                settings.vfsPlugins.append(VFSPluginSettings(name: name, libraryPath: path, configPath: config))
            }
        }
        return settings
    }

    func jsonValue() -> JSONValue {
        var object = JSONObject()
        if let threads { object["threads"] = .number(Double(threads)) }
        object["delegation_threads"] = .number(Double(delegationThreads))
        object["rdma"] = .bool(rdma)
        if !smbMultichannel.isEmpty {
            object["smb_multichannel"] = .array(smbMultichannel.map {
                ["address": .string($0.address.description), "speed": .number(Double($0.speedGbps))]
            })
        }
        if !vfsPlugins.isEmpty {
            var plugins = JSONObject()
            for plugin in vfsPlugins {
                var entry: JSONObject = ["path": .string(plugin.libraryPath)]
                if let config = plugin.configPath { entry["config"] = .string(config) }
                plugins[plugin.name] = .object(entry)
            }
            object["vfs"] = .object(plugins)
        }
        object["bind"] = .string(bind.description)
        for (key, _, port) in ports { object[key] = .number(Double(port)) }
        object["io"] = .string(io.rawValue)
        object["poll_mode"] = .string(pollMode.rawValue)
        object["spin_ns"] = .number(Double(spinNanoseconds))
        if let stateDirectory { object["state_dir"] = .string(stateDirectory) }
        if let s3BucketRoot { object["s3_bucket_root"] = .string(s3BucketRoot) }
        if let s3Domain { object["s3_domain"] = .string(s3Domain) }
        object["request_timeout_s"] = .number(Double(requestTimeoutSeconds))
        object["shutdown_timeout_s"] = .number(Double(shutdownTimeoutSeconds))
        object["max_connections"] = .number(Double(maxConnections))
        object["max_connections_per_client"] = .number(Double(maxConnectionsPerClient))
        if nfs4LeaseSeconds != 90 { object["nfs4_lease_seconds"] = .number(Double(nfs4LeaseSeconds)) }
        if nfs4GraceSeconds != 0 { object["nfs4_grace_seconds"] = .number(Double(nfs4GraceSeconds)) }
        limits.encode(into: &object)
        return .object(object)
    }

    /// Facts about this machine that affect these settings.
    func environmentWarnings(_ environment: ConfigurationEnvironment, mounts: [MountSettings], into warnings: inout [ConfigWarning]) {
        let base = ConfigKeyPath.root.key("server")
        func warn(_ path: ConfigKeyPath, _ message: String) {
            warnings.append(ConfigWarning(keyPath: path.description, message: message))
        }
        if rdma {
            let devices = environment.rdmaDevices()
            if devices.isEmpty {
                warn(base.key("rdma"), "no RDMA device is present (/sys/class/infiniband is empty or missing); the server will say so at start and serve TCP only")
            }
        }
        let local = environment.localAddresses()
        if !bind.isUnspecified, let local, !local.contains(bind) {
            warn(base.key("bind"), "\(bind) is not an address of this machine; the services cannot listen until it is")
        }
        for (i, interface) in smbMultichannel.enumerated() {
            if let local, !local.contains(interface.address) {
                warn(base.key("smb_multichannel").index(i).key("address"),
                     "\(interface.address) is not an address of this machine; clients will not be able to use it for multichannel")
            }
        }
        if environment.effectiveUserID() != 0 {
            for (key, service, port) in ports where port > 0 && port < 1024 {
                warn(base.key(key), "port \(port) is below 1024 and this process is not root; \(service) can listen there only with CAP_NET_BIND_SERVICE")
            }
        }
        for plugin in vfsPlugins {
            let users = mounts.filter { $0.module == .plugin(plugin.name) }.map(\.name)
            let consequence = users.isEmpty
                ? "no mount uses it"
                : "the server keeps \(users.count == 1 ? "mount" : "mounts") \(listChoices(users, conjunction: "and")) offline and serves the rest"
            let pluginPath = base.key("vfs").key(plugin.name)
            switch environment.fileKind(plugin.libraryPath) {
            case .regularFile:
                break
            case .missing:
                warn(pluginPath.key("path"), "\(plugin.libraryPath) does not exist; \(consequence)")
            case .directory, .other:
                warn(pluginPath.key("path"), "\(plugin.libraryPath) is not a regular file; \(consequence)")
            }
            if let config = plugin.configPath, config.hasPrefix("/"), environment.fileKind(config) == .missing {
                warn(pluginPath.key("config"), "\(config) does not exist; the plugin may refuse to start without it")
            }
        }
    }
}

extension ConfigValue {
    /// An IPv4 or IPv6 address in a string.
    func address(example literal: String, fix: String) throws(ConfigError) -> IPAddress {
        let text = try string(example: literal)
        switch IPAddress.parse(text) {
        case .success(let address):
            return address
        case .failure(let error):
            throw configError(path, "\(JSONValue.quoted(text)) is not an IPv4 or IPv6 address: \(error.reason)", fix: fix)
        }
    }
}
