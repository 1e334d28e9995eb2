/// One SMB share (the `shares` section): a path in the server's namespace offered under a name.
///
/// Defaults: `guest` false (only configured users may connect), `read_only` false, `encrypt`
/// false (when true the share requires SMB3 encryption), `users` absent (every configured user
/// may connect), `read_only_users` empty. Share names follow Windows rules and are compared
/// without case (see ``ConfigNames``).
public struct ShareSettings: Sendable, Equatable {
    public var name: String
    /// A path in the server's namespace, like "/memfs".
    public var path: String
    /// Allow connections without a user name and password.
    public var guest: Bool
    public var readOnly: Bool
    /// Require SMB3 encryption on this share.
    public var encrypt: Bool
    /// The users who may connect (nil: every configured user); guests as `guest` says.
    public var users: [String]?
    /// Users who may connect but only read, whatever `read_only` says.
    public var readOnlyUsers: [String]

    public init(name: String, path: String, guest: Bool = false, readOnly: Bool = false, encrypt: Bool = false,
                users: [String]? = nil, readOnlyUsers: [String] = []) {
        self.name = name
        self.path = path
        self.guest = guest
        self.readOnly = readOnly
        self.encrypt = encrypt
        self.users = users
        self.readOnlyUsers = readOnlyUsers
    }
}

// MARK: Reading and writing

extension ShareSettings {
    static let keys = ["path", "guest", "read_only", "encrypt", "users", "read_only_users"]

    static func decodeAll(_ value: ConfigValue?, mounts: [MountSettings], users: [UserSettings]) throws(ConfigError) -> [ShareSettings] {
        guard let value else { return [] }
        var shares: [ShareSettings] = []
        for (name, entryValue) in try value.map(of: "SMB shares", example: #""shares": { "data": { "path": "/data" } }"#) {
            try ConfigNames.checkShareName(name, at: entryValue.path)
            if let other = shares.first(where: { $0.name.lowercased() == name.lowercased() }) {
                throw configError(entryValue.path, "SMB share names ignore case, and \(JSONValue.quoted(other.name)) is already a share",
                                  fix: "Rename one of the two shares.")
            }
            let entry = try entryValue.section("an SMB share", keys: keys, example: #"{ "path": "/data" }"#)
            let path = try NamespacePath.check(try entry.require("path", example: "\"/\(mounts.first?.name ?? "data")\""), mounts: mounts)
            shares.append(ShareSettings(
                name: name, path: path,
                guest: try entry.bool("guest", default: false),
                readOnly: try entry.bool("read_only", default: false),
                encrypt: try entry.bool("encrypt", default: false),
                users: try entry.userNames("users", known: users),
                readOnlyUsers: try entry.userNames("read_only_users", known: users) ?? []))
        }
        return shares
    }

    func jsonValue() -> JSONValue {
        var object: JSONObject = ["path": .string(path), "guest": .bool(guest), "read_only": .bool(readOnly), "encrypt": .bool(encrypt)]
        if let users { object["users"] = .array(users.map { .string($0) }) }
        if !readOnlyUsers.isEmpty { object["read_only_users"] = .array(readOnlyUsers.map { .string($0) }) }
        return .object(object)
    }
}
