import JSON

/// What a SIGHUP finds when it reads the configuration file again: the entries whose values
/// differ from the running configuration, by top-level section ("server", "mounts",
/// "exports", "shares", "buckets", "users") and key path. Values are never printed (users
/// carry secrets).
struct ConfigurationReload {
    struct Change {
        var section: String
        /// "server.nfs_port", "shares.photos", "users.alice".
        var key: String
    }

    var changes: [Change] = []

    init(running: Configuration, loaded: Configuration) {
        guard case let .object(old) = running.jsonValue(), case let .object(new) = loaded.jsonValue() else { return }
        for section in Configuration.topLevelKeys {
            let before = Self.members(old[section])
            let after = Self.members(new[section])
            var names = before.keys
            for name in after.keys where !names.contains(name) { names.append(name) }
            for name in names where before[name] != after[name] {
                changes.append(Change(section: section, key: ConfigKeyPath.root.key(section).key(name).description))
            }
        }
    }

    private static func members(_ value: JSONValue?) -> JSONObject {
        if case let .object(object)? = value { return object }
        return JSONObject()
    }
}
