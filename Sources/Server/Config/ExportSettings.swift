/// How NFS maps the IDs of AUTH_SYS callers.
public enum SquashMode: String, Sendable, CaseIterable, Equatable {
    /// Callers keep their IDs (the default).
    case none
    /// A caller claiming uid 0 acts as `anon_uid`/`anon_gid`.
    case root
    /// Every caller acts as `anon_uid`/`anon_gid`.
    case all
}

/// One NFS export: a path in the server's namespace offered to NFS clients under a name.
///
/// The `exports` section is optional; without it every mount is exported at /NAME with the
/// defaults below (an empty `exports` object exports nothing). Keys of the section are the names clients mount (`"/memfs"`); `path`
/// defaults to that name. Defaults: `read_only` false, `squash` "none", `anon_uid` and
/// `anon_gid` 65534 (nobody), `clients` absent = every client. `clients` lists CIDR networks
/// (`10.0.0.0/8`, `2001:db8::/32`) or single addresses; an IPv4 network also admits the
/// IPv4-mapped IPv6 form of its addresses.
public struct ExportSettings: Sendable, Equatable {
    public static let defaultAnonymousID: UInt32 = 65534

    /// The path clients mount, like "/memfs".
    public var name: String
    /// The exported path in the server's namespace, like "/memfs" or "/linux/projects".
    public var path: String
    public var readOnly: Bool
    public var squash: SquashMode
    public var anonUID: UInt32
    public var anonGID: UInt32
    /// The networks allowed to use the export; `nil` admits every client.
    public var clients: [IPNetwork]?

    public init(
        name: String, path: String, readOnly: Bool = false, squash: SquashMode = .none,
        anonUID: UInt32 = ExportSettings.defaultAnonymousID, anonGID: UInt32 = ExportSettings.defaultAnonymousID,
        clients: [IPNetwork]? = nil
    ) {
        self.name = name
        self.path = path
        self.readOnly = readOnly
        self.squash = squash
        self.anonUID = anonUID
        self.anonGID = anonGID
        self.clients = clients
    }

    /// The export a mount gets when the configuration has no `exports` section.
    public init(defaultFor mount: MountSettings) {
        self.init(name: mount.namespacePath, path: mount.namespacePath)
    }

    /// Whether a client at `address` may use this export.
    public func admits(_ address: IPAddress) -> Bool {
        guard let clients else { return true }
        return clients.contains { $0.contains(address) }
    }
}

// MARK: Reading and writing

extension ExportSettings {
    static let keys = ["path", "read_only", "squash", "anon_uid", "anon_gid", "clients"]

    static func decodeAll(_ value: ConfigValue?, mounts: [MountSettings]) throws(ConfigError) -> [ExportSettings] {
        guard let value else { return mounts.map(ExportSettings.init(defaultFor:)) }
        let example = #""exports": { "/data": { "path": "/data", "read_only": true } }"#
        var exports: [ExportSettings] = []
        for (name, entryValue) in try value.map(of: "NFS exports", example: example) {
            try NamespacePath.checkClean(name, at: entryValue.path, what: "an export name",
                                         fix: "Export names are the paths NFS clients mount, e.g. \"/data\".")
            if name == "/" {
                throw configError(entryValue.path, "\"/\" cannot be an export name: it is the NFSv4 pseudo-root that lists the exports",
                                  fix: "Name the export after what it serves, e.g. \"/data\".")
            }
            let entry = try entryValue.section("an NFS export", keys: keys, example: #"{ "path": "/data", "read_only": true }"#)
            var export = ExportSettings(name: name, path: name)
            if let pathValue = entry["path"] {
                export.path = try NamespacePath.check(pathValue, mounts: mounts)
            } else {
                // The path defaults to the export's name, which must then name a mount.
                export.path = try NamespacePath.check(ConfigValue(value: .string(name), path: entryValue.path), mounts: mounts)
            }
            export.readOnly = try entry.bool("read_only", default: false)
            export.squash = try entry.choice("squash", default: SquashMode.none)
            export.anonUID = try entry["anon_uid"]?.uint32(example: "65534") ?? defaultAnonymousID
            export.anonGID = try entry["anon_gid"]?.uint32(example: "65534") ?? defaultAnonymousID
            if let clientsValue = entry["clients"] {
                var clients: [IPNetwork] = []
                let elements = try clientsValue.array()
                if elements.isEmpty {
                    throw configError(clientsValue.path, "an empty list admits no client",
                                      fix: "List the networks allowed, e.g. [\"10.0.0.0/8\"], or remove \"clients\" to admit every client.")
                }
                for element in elements {
                    let text = try element.string(example: "10.0.0.0/8")
                    switch IPNetwork.parse(text) {
                    case .success(let network):
                        clients.append(network)
                    case .failure(let error):
                        throw configError(element.path, "\(JSONValue.quoted(text)) is not a network: \(error.reason)",
                                          fix: "Write an address or a CIDR network such as \"192.168.1.0/24\" or \"2001:db8::/32\".")
                    }
                }
                export.clients = clients
            }
            exports.append(export)
        }
        return exports
    }

    func jsonValue() -> JSONValue {
        var object: JSONObject = [
            "path": .string(path),
            "read_only": .bool(readOnly),
            "squash": .string(squash.rawValue),
            "anon_uid": .number(Double(anonUID)),
            "anon_gid": .number(Double(anonGID)),
        ]
        if let clients { object["clients"] = .array(clients.map { .string($0.description) }) }
        return .object(object)
    }
}
