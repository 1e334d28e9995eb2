/// How a user proves who they are over SMB (NTLM): a password, or the NT hash of one
/// (MD4 of the UTF-16LE password, 32 hexadecimal digits) so the password itself need not be
/// written down.
public enum UserCredential: Sendable, Equatable {
    case password(String)
    /// Lowercase hexadecimal, 32 digits.
    case ntHash(String)
}

/// S3 credentials: an access key ID and its secret, used for SigV4 signatures.
public struct S3Credentials: Sendable, Equatable {
    /// 3 to 128 of `A-Z a-z 0-9 . _ -`; unique across users.
    public var accessKey: String
    /// 8 to 128 printable ASCII characters, no spaces.
    public var secretKey: String

    public init(accessKey: String, secretKey: String) {
        self.accessKey = accessKey
        self.secretKey = secretKey
    }
}

/// One entry of `users`: an account for SMB and S3, and the IDs its files are owned by.
///
/// Keys: `password` or `nt_hash` (exactly one), `uid` and `gid` (required), `groups`
/// (supplementary group IDs, optional), `s3_access_key` and `s3_secret_key` (both or neither).
/// ``Configuration/jsonValue()`` includes these secrets: redact them before showing it.
public struct UserSettings: Sendable, Equatable {
    public var name: String
    public var credential: UserCredential
    public var uid: UInt32
    public var gid: UInt32
    /// Supplementary groups; empty when none are given.
    public var groups: [UInt32]
    public var s3: S3Credentials?

    public init(name: String, credential: UserCredential, uid: UInt32, gid: UInt32, groups: [UInt32] = [], s3: S3Credentials? = nil) {
        self.name = name
        self.credential = credential
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.s3 = s3
    }
}

// MARK: Reading and writing

extension UserSettings {
    static let keys = ["password", "nt_hash", "uid", "gid", "groups", "s3_access_key", "s3_secret_key"]

    static func decodeAll(_ value: ConfigValue?) throws(ConfigError) -> [UserSettings] {
        guard let value else { return [] }
        let example = #""users": { "alice": { "password": "…", "uid": 1000, "gid": 1000 } }"#
        var users: [UserSettings] = []
        for (name, entryValue) in try value.map(of: "users", example: example) {
            try ConfigNames.checkUserName(name, at: entryValue.path)
            if let other = users.first(where: { $0.name.lowercased() == name.lowercased() }) {
                throw configError(entryValue.path, "user names ignore case, and \(JSONValue.quoted(other.name)) is already a user",
                                  fix: "Rename one of the two users.")
            }
            let entry = try entryValue.section("a user", keys: keys, example: #"{ "password": "…", "uid": 1000, "gid": 1000 }"#)

            let credential: UserCredential
            switch (entry["password"], entry["nt_hash"]) {
            case (nil, nil):
                throw configError(entryValue.path, "the user has neither a \"password\" nor an \"nt_hash\"",
                                  fix: "Add one, e.g. \"password\": \"…\", or \"nt_hash\" with the 32 hexadecimal digits of the password's NT hash.")
            case (.some, .some):
                throw configError(entryValue.path.key("nt_hash"), "the user has both a \"password\" and an \"nt_hash\"",
                                  fix: "Keep one of the two.")
            case (let passwordValue?, nil):
                let password = try passwordValue.string(example: "…")
                if password.unicodeScalars.count > 256 {
                    throw configError(passwordValue.path, "the password is longer than 256 characters", fix: "Use a shorter password.")
                }
                credential = .password(password)
            case (nil, let hashValue?):
                let hash = try hashValue.string(example: "8846f7eaee8fb117ad06bdd830b7586c")
                guard hash.utf8.count == 32, hash.utf8.allSatisfy({ isHexDigit($0) }) else {
                    throw configError(hashValue.path, "an NT hash is 32 hexadecimal digits; \(describeJSON(hashValue.value)) is not",
                                      fix: "Give the MD4 hash of the UTF-16LE password as 32 hexadecimal digits, or use \"password\" instead.")
                }
                credential = .ntHash(hash.lowercased())
            }

            let uid = try entry.require("uid", example: "1000").uint32(example: "1000")
            let gid = try entry.require("gid", example: "1000").uint32(example: "1000")
            var groups: [UInt32] = []
            if let groupsValue = entry["groups"] {
                let elements = try groupsValue.array()
                if elements.count > 1024 {
                    throw configError(groupsValue.path, "\(elements.count) groups are more than 1024", fix: "List at most 1024 groups.")
                }
                for element in elements { groups.append(try element.uint32(example: "100")) }
            }

            var s3: S3Credentials?
            switch (entry["s3_access_key"], entry["s3_secret_key"]) {
            case (nil, nil):
                break
            case (.some, nil):
                throw configError(entryValue.path.key("s3_access_key"), "\"s3_access_key\" is given without \"s3_secret_key\"",
                                  fix: "Add \"s3_secret_key\", or remove \"s3_access_key\" to give the user no S3 access.")
            case (nil, .some):
                throw configError(entryValue.path.key("s3_secret_key"), "\"s3_secret_key\" is given without \"s3_access_key\"",
                                  fix: "Add \"s3_access_key\", or remove \"s3_secret_key\" to give the user no S3 access.")
            case (let accessValue?, let secretValue?):
                let access = try accessValue.string(example: "\(name)accesskey")
                guard (3...128).contains(access.utf8.count),
                      access.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "." || $0 == "_" || $0 == "-" })
                else {
                    throw configError(accessValue.path, "an S3 access key is 3 to 128 letters, digits, '.', '_' or '-'",
                                      fix: "Choose an access key such as \"\(name.filter { $0.isLetter || $0.isNumber })accesskey\".")
                }
                if let other = users.first(where: { $0.s3?.accessKey == access }) {
                    throw configError(accessValue.path, "user \(JSONValue.quoted(other.name)) has the same S3 access key",
                                      fix: "Give every user their own access key.")
                }
                let secret = try secretValue.string(example: "a-long-random-secret")
                guard (8...128).contains(secret.utf8.count), secret.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                    throw configError(secretValue.path, "an S3 secret key is 8 to 128 printable ASCII characters without spaces",
                                      fix: "Choose a longer random secret, e.g. from `openssl rand -hex 20`.")
                }
                s3 = S3Credentials(accessKey: access, secretKey: secret)
            }
            users.append(UserSettings(name: name, credential: credential, uid: uid, gid: gid, groups: groups, s3: s3))
        }
        return users
    }

    private static func isHexDigit(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "f"))
            || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "F"))
    }

    func jsonValue() -> JSONValue {
        var object = JSONObject()
        switch credential {
        case .password(let password): object["password"] = .string(password)
        case .ntHash(let hash): object["nt_hash"] = .string(hash)
        }
        object["uid"] = .number(Double(uid))
        object["gid"] = .number(Double(gid))
        if !groups.isEmpty { object["groups"] = .array(groups.map { .number(Double($0)) }) }
        if let s3 {
            object["s3_access_key"] = .string(s3.accessKey)
            object["s3_secret_key"] = .string(s3.secretKey)
        }
        return .object(object)
    }
}
