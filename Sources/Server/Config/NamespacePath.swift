/// Checks on the paths a configuration names.
///
/// Exports, shares and buckets name paths in the server's namespace, where a mount called
/// NAME appears at /NAME: such a path is absolute, has no empty, `.` or `..` components, and
/// starts with a configured mount's name (`/memfs`, `/linux/projects`).
enum NamespacePath {
    static let maximumLength = 4096
    static let maximumComponentLength = 255

    /// Absolute, no empty, `.` or `..` components (so "/a/", "//a" and "/a/../b" are refused),
    /// no component over 255 bytes. "/" itself passes.
    static func checkClean(_ text: String, at path: ConfigKeyPath, what: String, fix extra: String) throws(ConfigError) {
        let quoted = JSONValue.quoted(text)
        guard text.hasPrefix("/") else {
            throw configError(path, "\(quoted) is not an absolute path", fix: "Start \(what) with '/'. \(extra)")
        }
        if text.utf8.count > maximumLength {
            throw configError(path, "the path is \(text.utf8.count) bytes long", fix: "Paths are at most \(maximumLength) bytes.")
        }
        if text == "/" { return }
        let components = text.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        let cleaned = components.filter { !$0.isEmpty && $0 != "." }
        if components.contains(where: \.isEmpty) {
            let suggestion = cleaned.contains("..") ? "" : " Write \(JSONValue.quoted("/" + cleaned.joined(separator: "/")))."
            throw configError(path, "\(quoted) has an empty component (a doubled or trailing '/')", fix: "Remove the extra '/'.\(suggestion)")
        }
        if components.contains(where: { $0 == "." || $0 == ".." }) {
            throw configError(path, "\(quoted) has a \".\" or \"..\" component",
                              fix: "Write the path without \".\" or \"..\" components.")
        }
        if let long = components.first(where: { $0.utf8.count > maximumComponentLength }) {
            throw configError(path, "the component \(JSONValue.quoted(String(long.prefix(20))))… is \(long.utf8.count) bytes long",
                              fix: "Path components are at most \(maximumComponentLength) bytes.")
        }
    }

    /// A path in the server's namespace, which must start with a configured mount's name.
    static func check(_ value: ConfigValue, mounts: [MountSettings]) throws(ConfigError) -> String {
        let names = mounts.map(\.name)
        let mountList = names.isEmpty
            ? "There are no mounts yet: add one under \"mounts\" first."
            : "The mounts are: " + names.map { "/" + $0 }.joined(separator: ", ") + "."
        let text = try value.string(example: names.first.map { "/" + $0 } ?? "/data")
        let extra = "Paths here are in the server's namespace, where each mount appears at /<mount name>."
        if !text.hasPrefix("/") && names.contains(String(text.split(separator: "/").first ?? "")) {
            throw configError(value.path, "\(JSONValue.quoted(text)) is not an absolute path",
                              fix: "Write \(JSONValue.quoted("/" + text)). \(extra)")
        }
        try checkClean(text, at: value.path, what: "the path", fix: "\(extra) \(mountList)")
        let first = String(text.dropFirst().split(separator: "/").first ?? "")
        guard names.contains(first) else {
            let reason = text == "/"
                ? "\"/\" is the namespace root, not a mount"
                : "\(JSONValue.quoted(text)) names no mount: there is no mount called \(JSONValue.quoted(first))"
            let hint = Suggestions.closest(to: first, among: names)
                .map { "Did you mean \(JSONValue.quoted("/" + $0 + text.dropFirst(1 + first.count)))? " } ?? ""
            throw configError(value.path, reason, fix: "\(hint)Start the path with a mount's name. \(mountList)")
        }
        return text
    }
}
