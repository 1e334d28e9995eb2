/// One S3 bucket (the `buckets` section): a path in the server's namespace offered as a bucket.
///
/// Bucket names follow S3's rules (see ``ConfigNames``); objects are the files under `path`.
/// `users`, when given, lists the users whose S3 keys may reach the bucket (others get
/// AccessDenied and do not see it in ListBuckets); absent, every user with keys may.
public struct BucketSettings: Sendable, Equatable {
    public var name: String
    /// A path in the server's namespace, like "/memfs".
    public var path: String
    /// The users who may use the bucket; nil: every user with S3 keys.
    public var users: [String]?

    public init(name: String, path: String, users: [String]? = nil) {
        self.name = name
        self.path = path
        self.users = users
    }
}

// MARK: Reading and writing

extension BucketSettings {
    static func decodeAll(_ value: ConfigValue?, mounts: [MountSettings], users: [UserSettings]) throws(ConfigError) -> [BucketSettings] {
        guard let value else { return [] }
        var buckets: [BucketSettings] = []
        for (name, entryValue) in try value.map(of: "S3 buckets", example: #""buckets": { "data": { "path": "/data" } }"#) {
            try ConfigNames.checkBucketName(name, at: entryValue.path)
            let entry = try entryValue.section("an S3 bucket", keys: ["path", "users"], example: #"{ "path": "/data" }"#)
            let path = try NamespacePath.check(try entry.require("path", example: "\"/\(mounts.first?.name ?? "data")\""), mounts: mounts)
            buckets.append(BucketSettings(name: name, path: path, users: try entry.userNames("users", known: users)))
        }
        return buckets
    }

    func jsonValue() -> JSONValue {
        var object: JSONObject = ["path": .string(path)]
        if let users { object["users"] = .array(users.map { .string($0) }) }
        return .object(object)
    }
}
