import JSON

/// What a SIGHUP finds when it reads the configuration file again: the key paths whose values
/// differ from the running configuration, each with whether the running server can take it.
///
/// Nothing is applied live yet: every change is reported as needing a restart, naming its key,
/// so an operator sees at once what a restart would change and that the file is valid. The
/// connections, exports, shares, buckets and users in use stay as they were.
struct ConfigurationReload {
    /// "server.nfs_port", "shares.photos", "users.alice" (secrets are never printed).
    var changedKeys: [String] = []

    init(running: Configuration, loaded: Configuration) {
        guard case let .object(old) = running.jsonValue(), case let .object(new) = loaded.jsonValue() else { return }
        for section in Configuration.topLevelKeys {
            let before = Self.members(old[section])
            let after = Self.members(new[section])
            var names = before.keys
            for name in after.keys where !names.contains(name) { names.append(name) }
            for name in names where before[name] != after[name] {
                changedKeys.append(ConfigKeyPath.root.key(section).key(name).description)
            }
        }
    }

    private static func members(_ value: JSONValue?) -> JSONObject {
        if case let .object(object)? = value { return object }
        return JSONObject()
    }
}
