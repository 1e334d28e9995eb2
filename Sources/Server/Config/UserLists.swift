/// Lists of configured user names in shares and buckets (`users`, `read_only_users`).
extension ConfigSection {
    /// The names under `key`, each a user of the `users` section; nil when the key is absent.
    func userNames(_ key: String, known: [UserSettings]) throws(ConfigError) -> [String]? {
        guard let value = self[key] else { return nil }
        var names: [String] = []
        for item in try value.array() {
            let name = try item.string(example: "\"\(known.first?.name ?? "alice")\"")
            guard known.contains(where: { $0.name == name }) else {
                let choices = known.isEmpty ? "the \"users\" section has none" : "configured: " + known.map(\.name).joined(separator: ", ")
                throw configError(item.path, "no user \(JSONValue.quoted(name)) is configured (\(choices))",
                                  fix: "Name users of the \"users\" section, or add \(JSONValue.quoted(name)) there.")
            }
            if !names.contains(name) { names.append(name) }
        }
        return names
    }
}
