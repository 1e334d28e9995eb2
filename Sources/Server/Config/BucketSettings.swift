/// One S3 bucket (the `buckets` section): a path in the server's namespace offered as a bucket.
///
/// Bucket names follow S3's rules (see ``ConfigNames``); objects are the files under `path`.
public struct BucketSettings: Sendable, Equatable {
    public var name: String
    /// A path in the server's namespace, like "/memfs".
    public var path: String

    public init(name: String, path: String) {
        self.name = name
        self.path = path
    }
}

// MARK: Reading and writing

extension BucketSettings {
    static func decodeAll(_ value: ConfigValue?, mounts: [MountSettings]) throws(ConfigError) -> [BucketSettings] {
        guard let value else { return [] }
        var buckets: [BucketSettings] = []
        for (name, entryValue) in try value.map(of: "S3 buckets", example: #""buckets": { "data": { "path": "/data" } }"#) {
            try ConfigNames.checkBucketName(name, at: entryValue.path)
            let entry = try entryValue.section("an S3 bucket", keys: ["path"], example: #"{ "path": "/data" }"#)
            let path = try NamespacePath.check(try entry.require("path", example: "\"/\(mounts.first?.name ?? "data")\""), mounts: mounts)
            buckets.append(BucketSettings(name: name, path: path))
        }
        return buckets
    }

    func jsonValue() -> JSONValue {
        ["path": .string(path)]
    }
}
