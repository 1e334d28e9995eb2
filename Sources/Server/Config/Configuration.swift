/// The whole configuration of a server: what it serves, to whom, and how it runs.
///
/// A configuration is a JSON object with the keys `server`, `mounts`, `exports`, `shares`,
/// `buckets` and `users`, all optional (see each settings type for its keys and defaults).
/// Mounts put filesystems into the server's namespace at /NAME; exports (NFS), shares (SMB)
/// and buckets (S3) name paths in that namespace.
///
/// Loading is strict about the file and lenient about the machine:
/// - anything wrong in the file (bad JSON, a duplicate or unknown key, a wrong type, a value
///   out of range, a path that names no mount, two services on one port) is a ``ConfigError``
///   that names the key and the fix, and the server refuses to start;
/// - facts about the machine (a plugin library or host directory that is not there, no RDMA
///   device, an address that is not local, a port below 1024 without root) are
///   ``ConfigWarning``s: the configuration loads, and the server keeps the affected mount or
///   feature out of service while it serves the rest.
public struct Configuration: Sendable, Equatable {
    public var server: ServerSettings
    /// In file order.
    public var mounts: [MountSettings]
    /// The `exports` section, or when it is absent one export per mount at /NAME.
    public var exports: [ExportSettings]
    public var shares: [ShareSettings]
    public var buckets: [BucketSettings]
    public var users: [UserSettings]

    /// The top-level keys, in the order ``jsonValue()`` writes them.
    public static let topLevelKeys = ["server", "mounts", "exports", "shares", "buckets", "users"]

    /// `exports: nil` exports every mount at /NAME, as a file without `exports` does.
    public init(
        server: ServerSettings = ServerSettings(),
        mounts: [MountSettings] = [],
        exports: [ExportSettings]? = nil,
        shares: [ShareSettings] = [],
        buckets: [BucketSettings] = [],
        users: [UserSettings] = []
    ) {
        self.server = server
        self.mounts = mounts
        self.exports = exports ?? mounts.map(ExportSettings.init(defaultFor:))
        self.shares = shares
        self.buckets = buckets
        self.users = users
    }

    public func mount(named name: String) -> MountSettings? {
        mounts.first { $0.name == name }
    }

    // MARK: Loading

    /// Reads and checks a configuration file (plain open/read; at most 16 MiB).
    ///
    /// Besides the warnings of ``parse(_:source:environment:)``, warns when the file holds
    /// passwords or keys and every user of the machine can read it.
    public static func load(path: String, environment: ConfigurationEnvironment = .current) throws(ConfigError) -> LoadedConfiguration {
        let bytes: [UInt8]
        let worldReadable: Bool
        switch SystemFiles.readFile(path) {
        case .failure(let failure):
            throw ConfigError(keyPath: "", reason: failure.reason, fix: failure.fix, source: path)
        case .success(let read):
            (bytes, worldReadable) = read
        }
        let json: JSONValue
        do {
            json = try JSONValue.parse(bytes: bytes)
        } catch {
            throw syntaxError(error, source: path)
        }
        var loaded = try decode(json, source: path, environment: environment)
        // Every user carries a secret: a password, or an NT hash, which is as good as the
        // password for NTLM.
        if worldReadable && !loaded.configuration.users.isEmpty {
            loaded.warnings.append(ConfigWarning(
                keyPath: "users",
                message: "the file holds passwords or keys and every user of this machine can read it; make it private with chmod 600"))
        }
        return loaded
    }

    /// Parses and checks configuration text; `source` names it in messages.
    public static func parse(_ text: String, source: String, environment: ConfigurationEnvironment = .current) throws(ConfigError) -> LoadedConfiguration {
        let json: JSONValue
        do {
            json = try JSONValue.parse(text)
        } catch {
            throw syntaxError(error, source: source)
        }
        return try decode(json, source: source, environment: environment)
    }

    /// Checks an already parsed document (from the admin API, for instance).
    public static func decode(_ json: JSONValue, source: String, environment: ConfigurationEnvironment = .current) throws(ConfigError) -> LoadedConfiguration {
        var context = ConfigDecodingContext(environment: environment)
        do {
            let configuration = try decode(ConfigValue(value: json, path: .root), context: &context)
            let warnings = context.warnings + configuration.environmentWarnings(environment)
            return LoadedConfiguration(configuration: configuration, warnings: warnings, source: source)
        } catch {
            var error = error
            error.source = source
            throw error
        }
    }

    private static func decode(_ root: ConfigValue, context: inout ConfigDecodingContext) throws(ConfigError) -> Configuration {
        guard case .object = root.value else {
            throw configError(.root, "the configuration must be a JSON object, got \(describeJSON(root.value))",
                              fix: "Write it as { \"mounts\": { … }, … }; `dmanoel-nas config default` prints a complete example.")
        }
        let top = try root.section("the configuration", keys: topLevelKeys, example: "{ \"mounts\": { … } }")
        var server = try ServerSettings.decode(top["server"])
        let mounts = try MountSettings.decodeAll(top["mounts"], plugins: server.vfsPlugins, context: &context)
        // The bucket root names a namespace path, so it is checked once the mounts are known.
        if let serverValue = top["server"],
           let rootValue = try serverValue.section("the server settings", keys: ServerSettings.keys, example: #""server": { "threads": 4 }"#)["s3_bucket_root"] {
            server.s3BucketRoot = try NamespacePath.check(rootValue, mounts: mounts)
        }
        // Users first: shares and buckets may name them.
        let users = try UserSettings.decodeAll(top["users"])
        return Configuration(
            server: server,
            mounts: mounts,
            exports: try ExportSettings.decodeAll(top["exports"], mounts: mounts),
            shares: try ShareSettings.decodeAll(top["shares"], mounts: mounts, users: users),
            buckets: try BucketSettings.decodeAll(top["buckets"], mounts: mounts, users: users),
            users: users)
    }

    private static func syntaxError(_ error: JSONParseError, source: String) -> ConfigError {
        let fix = error.message.hasPrefix("duplicate key")
            ? "Keep only one of them: a JSON object cannot repeat a key."
            : "Correct the JSON there; `dmanoel-nas config default` prints a valid configuration to compare with."
        return ConfigError(keyPath: error.keyPath, reason: "invalid JSON at \(error)", fix: fix, source: source)
    }

    /// What this machine lacks for this configuration: missing plugin libraries and host
    /// directories, no RDMA device, addresses that are not local, privileged ports. The
    /// loaders include these; the server can call it again at start.
    public func environmentWarnings(_ environment: ConfigurationEnvironment = .current) -> [ConfigWarning] {
        var warnings: [ConfigWarning] = []
        server.environmentWarnings(environment, mounts: mounts, into: &warnings)
        for mount in mounts { mount.environmentWarnings(environment, into: &warnings) }
        return warnings
    }

    // MARK: Writing

    /// The configuration as JSON, every setting written out (defaults included, `threads` only
    /// when set), keys in the documented order. ``parse(_:source:environment:)`` of its
    /// serialization gives back an equal configuration. It includes passwords and keys.
    public func jsonValue() -> JSONValue {
        var object = JSONObject()
        object["server"] = server.jsonValue()
        var mountsObject = JSONObject()
        for mount in mounts { mountsObject[mount.name] = mount.jsonValue() }
        object["mounts"] = .object(mountsObject)
        var exportsObject = JSONObject()
        for export in exports { exportsObject[export.name] = export.jsonValue() }
        object["exports"] = .object(exportsObject)
        var sharesObject = JSONObject()
        for share in shares { sharesObject[share.name] = share.jsonValue() }
        object["shares"] = .object(sharesObject)
        var bucketsObject = JSONObject()
        for bucket in buckets { bucketsObject[bucket.name] = bucket.jsonValue() }
        object["buckets"] = .object(bucketsObject)
        var usersObject = JSONObject()
        for user in users { usersObject[user.name] = user.jsonValue() }
        object["users"] = .object(usersObject)
        return .object(object)
    }
}

/// A configuration that passed every check, with the warnings about this machine.
public struct LoadedConfiguration: Sendable {
    public var configuration: Configuration
    public var warnings: [ConfigWarning]
    /// The file it came from, or a name like `<embedded default>`.
    public var source: String

    public init(configuration: Configuration, warnings: [ConfigWarning], source: String) {
        self.configuration = configuration
        self.warnings = warnings
        self.source = source
    }
}
