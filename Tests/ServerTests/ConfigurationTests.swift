import Testing
import Server
import Runtime
import Foundation

@Suite("Configuration loading")
struct ConfigurationTests {
    @Test func referenceConfigLoadsWithWarningsOnABareMachine() throws {
        let loaded = try Configuration.load(path: TestFiles.referenceConfigPath, environment: .stub())
        let config = loaded.configuration
        #expect(config.server.threads == 16)
        #expect(config.server.delegationThreads == 64)
        #expect(config.server.rdma)
        #expect(config.server.smbMultichannel == [SMBMultichannelInterface(address: IPAddress("192.168.1.1")!, speedGbps: 200)])
        #expect(config.server.vfsPlugins == [VFSPluginSettings(
            name: "demofs", libraryPath: "/usr/local/lib/dmanoel-NAS_vfs_demofs.so", configPath: "/usr/local/etc/demofs.json")])
        #expect(config.mounts.map(\.name) == ["memfs", "linux", "demofs"])
        #expect(config.mounts.map(\.module) == [.memfs, .ioUring, .plugin("demofs")])
        #expect(config.mount(named: "linux")?.path == "/share")
        #expect(config.exports.map(\.name) == ["/memfs", "/linux", "/demofs"])
        #expect(config.exports.map(\.path) == ["/memfs", "/linux", "/demofs"])
        #expect(config.shares.map(\.name) == ["memfs", "linux", "demofs"])
        #expect(config.buckets.map(\.name) == ["linux", "demofs", "memfs"])
        #expect(config.users.isEmpty)
        #expect(Set(loaded.warnings.map(\.keyPath)) == [
            "server.rdma", "server.smb_multichannel[0].address", "server.vfs.demofs.path",
            "server.vfs.demofs.config", "mounts.linux.path",
        ])
        let linux = try #require(loaded.warnings.first { $0.keyPath == "mounts.linux.path" })
        #expect(linux.message.contains("/share does not exist"))
        #expect(linux.message.contains("offline and serves the rest"))
        let plugin = try #require(loaded.warnings.first { $0.keyPath == "server.vfs.demofs.path" })
        #expect(plugin.message.contains("mount \"demofs\" offline"))
    }

    @Test func referenceConfigHasNoWarningsWhereEverythingExists() throws {
        let loaded = try Configuration.load(path: TestFiles.referenceConfigPath, environment: .referenceHost)
        #expect(loaded.warnings.isEmpty, "\(loaded.warnings)")
        #expect(loaded.source == TestFiles.referenceConfigPath)
    }

    @Test func referenceConfigLoadsOnThisMachine() throws {
        // The real environment: whatever is missing here is only a warning.
        _ = try Configuration.load(path: TestFiles.referenceConfigPath)
    }

    @Test func embeddedDefault() throws {
        let loaded = try Configuration.parse(Configuration.embeddedDefaultText, source: "default", environment: .stub())
        #expect(loaded.warnings.isEmpty, "\(loaded.warnings)")
        let config = loaded.configuration
        #expect(config.server.bind == IPAddress("127.0.0.1"))
        #expect(config.server.bind.isLoopback)
        #expect(config.server.nfsPort == 2049)
        #expect(config.server.portmapPort == 0)
        #expect(config.server.smbPort == 4445)
        #expect(config.server.s3Port == 9000)
        #expect(config.server.adminPort == 9870)
        #expect(config.server.metricsPort == 9871)
        #expect(config.server.io == .ioUring)
        #expect(config.server.pollMode == .auto)
        #expect(config.mounts == [MountSettings(name: "memfs", module: .memfs, path: "/")])
        #expect(config.exports == [ExportSettings(name: "/memfs", path: "/memfs")])
        #expect(config.shares == [ShareSettings(name: "memfs", path: "/memfs", guest: true)])
        #expect(config.buckets == [BucketSettings(name: "memfs", path: "/memfs")])
        #expect(config.users == [UserSettings(
            name: "nas", credential: .password("nas"), uid: 1000, gid: 1000,
            s3: S3Credentials(accessKey: "nasaccesskey", secretKey: "nassecretkey123"))])
        #expect(Configuration.embeddedDefault().configuration == config)
        #expect(Configuration.embeddedDefault().source == Configuration.embeddedDefaultSource)
    }

    @Test func defaultsWhenKeysAreAbsent() throws {
        let loaded = try Configuration.parse("{}", source: "empty", environment: .stub())
        let server = loaded.configuration.server
        #expect(server == ServerSettings())
        #expect(server.threads == nil)
        #expect(server.delegationThreads == RuntimeDefaults.delegationThreads)
        #expect(server.rdma == false)
        #expect(server.bind == IPAddress("0.0.0.0"))
        let ports: [Int] = [server.nfsPort, server.portmapPort, server.smbPort, server.s3Port, server.adminPort, server.metricsPort]
        #expect(ports == [2049, 0, 4445, 9000, 9870, 9871])
        #expect(server.io == RuntimeDefaults.io)
        #expect(server.pollMode == RuntimeDefaults.pollMode)
        #expect(server.spinNanoseconds == RuntimeDefaults.spinNanoseconds)
        #expect(loaded.configuration.exports.isEmpty)
        #expect(loaded.warnings.map(\.keyPath) == ["mounts"])
    }

    @Test func nullMeansDefault() throws {
        let config = try Configuration.parse(#"{"server": {"threads": null, "io": null, "nfs_port": null}}"#,
                                             source: "t", environment: .stub()).configuration
        #expect(config.server == ServerSettings())
    }

    @Test func everySettingIsRead() throws {
        let text = """
            {
                "server": {
                    "threads": 2, "delegation_threads": 8, "rdma": false,
                    "smb_multichannel": [{"address": "127.0.0.1", "speed": 10}, {"address": "::1", "speed": 100}],
                    "vfs": {"demofs": {"path": "/opt/demofs.so"}},
                    "bind": "::", "nfs_port": 12049, "portmap_port": 10111, "smb_port": 0, "s3_port": 19000,
                    "admin_port": 0, "metrics_port": 0, "io": "epoll", "poll_mode": "never", "spin_ns": 0
                },
                "mounts": {
                    "data": {"module": "linux", "path": "/srv/data", "cache_ttl_ms": 250},
                    "fast.1": {"module": "io_uring", "path": "/srv/fast"},
                    "demo": {"module": "demofs", "path": "/sub/dir"}
                },
                "exports": {
                    "/data": {"read_only": true, "squash": "all", "anon_uid": 99, "anon_gid": 98,
                              "clients": ["10.0.0.0/8", "2001:db8::/32", "192.168.1.7"]},
                    "/projects": {"path": "/fast.1/projects", "squash": "root"}
                },
                "shares": {"Data": {"path": "/data", "read_only": true, "encrypt": true}},
                "buckets": {"demo-bucket.1": {"path": "/demo/objects"}},
                "users": {
                    "alice": {"password": "secret", "uid": 1001, "gid": 1001, "groups": [10, 20]},
                    "bob": {"nt_hash": "8846F7EAEE8FB117AD06BDD830B7586C", "uid": 0, "gid": 0,
                            "s3_access_key": "BOBKEY", "s3_secret_key": "bobsecret!"}
                }
            }
            """
        let env = ConfigurationEnvironment.stub(files: ["/srv/data": .directory, "/srv/fast": .directory, "/opt/demofs.so": .regularFile])
        let loaded = try Configuration.parse(text, source: "t", environment: env)
        #expect(loaded.warnings.isEmpty, "\(loaded.warnings)")
        let c = loaded.configuration
        #expect(c.server == ServerSettings(
            threads: 2, delegationThreads: 8, rdma: false,
            smbMultichannel: [.init(address: IPAddress("127.0.0.1")!, speedGbps: 10), .init(address: IPAddress("::1")!, speedGbps: 100)],
            vfsPlugins: [.init(name: "demofs", libraryPath: "/opt/demofs.so")],
            bind: IPAddress("::")!, nfsPort: 12049, portmapPort: 10111, smbPort: 0, s3Port: 19000, adminPort: 0, metricsPort: 0,
            io: .epoll, pollMode: .never, spinNanoseconds: 0))
        #expect(c.mounts == [
            MountSettings(name: "data", module: .linux, path: "/srv/data", cacheTTLMilliseconds: 250),
            MountSettings(name: "fast.1", module: .ioUring, path: "/srv/fast"),
            MountSettings(name: "demo", module: .plugin("demofs"), path: "/sub/dir"),
        ])
        #expect(c.exports == [
            ExportSettings(name: "/data", path: "/data", readOnly: true, squash: .all, anonUID: 99, anonGID: 98,
                           clients: [IPNetwork("10.0.0.0/8")!, IPNetwork("2001:db8::/32")!, IPNetwork("192.168.1.7")!]),
            ExportSettings(name: "/projects", path: "/fast.1/projects", squash: .root),
        ])
        #expect(c.exports[0].admits(IPAddress("10.9.8.7")!))
        #expect(!c.exports[0].admits(IPAddress("192.168.1.8")!))
        #expect(c.exports[1].admits(IPAddress("192.168.1.8")!))
        #expect(c.shares == [ShareSettings(name: "Data", path: "/data", readOnly: true, encrypt: true)])
        #expect(c.buckets == [BucketSettings(name: "demo-bucket.1", path: "/demo/objects")])
        #expect(c.users == [
            UserSettings(name: "alice", credential: .password("secret"), uid: 1001, gid: 1001, groups: [10, 20]),
            UserSettings(name: "bob", credential: .ntHash("8846f7eaee8fb117ad06bdd830b7586c"), uid: 0, gid: 0,
                         s3: S3Credentials(accessKey: "BOBKEY", secretKey: "bobsecret!")),
        ])

        // Round trip: parse(serialize(x)) == x, and the serialization is stable.
        let serialized = c.jsonValue().serialized()
        let again = try Configuration.parse(serialized, source: "t", environment: env).configuration
        #expect(again == c)
        #expect(again.jsonValue().serialized() == serialized)
    }

    @Test func roundTripsOfTheShippedConfigurations() throws {
        for loaded in [
            try Configuration.load(path: TestFiles.referenceConfigPath, environment: .stub()),
            Configuration.embeddedDefault(),
        ] {
            let text = loaded.configuration.jsonValue().serialized()
            let again = try Configuration.parse(text, source: "again", environment: .stub())
            #expect(again.configuration == loaded.configuration)
            #expect(Configuration.topLevelKeys == loaded.configuration.jsonValue().objectValue?.keys)
        }
    }

    @Test func environmentWarnings() throws {
        let text = withMemfs(#""server": {"bind": "10.1.2.3", "nfs_port": 2049, "smb_port": 445, "portmap_port": 111}"#)
        let asUser = try Configuration.parse(text, source: "t", environment: .stub())
        #expect(asUser.warnings.map(\.keyPath) == ["server.bind", "server.portmap_port", "server.smb_port"])
        #expect(asUser.warnings[1].message.contains("CAP_NET_BIND_SERVICE"))
        let asRoot = try Configuration.parse(text, source: "t", environment: .stub(uid: 0))
        #expect(asRoot.warnings.map(\.keyPath) == ["server.bind"])
        let unknownAddresses = try Configuration.parse(text, source: "t", environment: .stub(addresses: nil, uid: 0))
        #expect(unknownAddresses.warnings.isEmpty)

        let notADirectory = try Configuration.parse(#"{"mounts": {"d": {"module": "linux", "path": "/etc/passwd"}}}"#,
                                                    source: "t", environment: .stub(files: ["/etc/passwd": .regularFile]))
        #expect(notADirectory.warnings.map(\.description) == [
            #"mounts.d.path: /etc/passwd is not a directory; the server keeps mount "d" (/d) offline and serves the rest"#,
        ])
        let uncached = try Configuration.parse(#"{"mounts": {"m": {"module": "memfs", "path": "/", "cache_ttl_ms": 100}}}"#,
                                               source: "t", environment: .stub())
        #expect(uncached.warnings.map(\.description) == [
            "mounts.m.cache_ttl_ms: the memfs module is not cached (only linux and io_uring are), so cache_ttl_ms has no effect",
        ])
        #expect(uncached.configuration.mounts.first?.cacheTTLMilliseconds == 100)
        let rdma = withMemfs(#""server": {"rdma": true}"#)
        #expect(try Configuration.parse(rdma, source: "t", environment: .stub()).warnings.map(\.keyPath) == ["server.rdma"])
        #expect(try Configuration.parse(rdma, source: "t", environment: .stub(rdmaDevices: ["mlx5_0"])).warnings.isEmpty)
    }

    @Test func loadReadsFilesAndWarnsAboutReadableSecrets() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cfgtest-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("nas.json").path
        try Configuration.embeddedDefaultText.write(toFile: file, atomically: true, encoding: .utf8)

        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file)
        let open = try Configuration.load(path: file, environment: .stub())
        #expect(open.warnings.map(\.keyPath) == ["users"])
        #expect(open.configuration == Configuration.embeddedDefault().configuration)

        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file)
        #expect(try Configuration.load(path: file, environment: .stub()).warnings.isEmpty)

        do {
            _ = try Configuration.load(path: dir.appendingPathComponent("missing.json").path)
            Issue.record("a missing file loaded")
        } catch {
            #expect(error.keyPath == "")
            #expect(error.reason.contains("No such file"))
            #expect(error.description.hasPrefix(dir.appendingPathComponent("missing.json").path + ": error: cannot open the file"))
        }
        do {
            _ = try Configuration.load(path: dir.path)
            Issue.record("a directory loaded")
        } catch {
            #expect(error.reason.contains("directory"))
        }

        let bad = dir.appendingPathComponent("bad.json").path
        try Data([0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]).write(to: URL(fileURLWithPath: bad))
        do {
            _ = try Configuration.load(path: bad)
            Issue.record("invalid UTF-8 loaded")
        } catch {
            #expect(error.reason.contains("not valid UTF-8"))
            #expect(error.source == bad)
        }
    }
}
