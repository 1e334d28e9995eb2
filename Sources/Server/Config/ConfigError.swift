/// Why a configuration was refused: which key, what is wrong with it, and how to fix it.
///
/// `description` reads `FILE: error: server.threads: expected a whole number, got a string
/// ("abc"). Write a whole number without quotes, e.g. "threads": 16.` The server refuses to start
/// with such a configuration; `dmanoel-nas config check` prints the same line.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Where the problem is, like `mounts.linux.module` or `exports["/memfs"].clients[1]`;
    /// empty when the problem is the file as a whole (it cannot be read, it is empty).
    public var keyPath: String
    /// What is wrong, without a final period.
    public var reason: String
    /// What to do about it: one or two sentences ending in a period.
    public var fix: String
    /// The file name, or a name such as `<embedded default>` for text that came from elsewhere.
    public var source: String

    public init(keyPath: String, reason: String, fix: String, source: String = "") {
        self.keyPath = keyPath
        self.reason = reason
        self.fix = fix
        self.source = source
    }

    /// `<key path>: <reason>. <fix>` without the source.
    public var message: String {
        let head = keyPath.isEmpty ? reason : "\(keyPath): \(reason)"
        return fix.isEmpty ? head : "\(head). \(fix)"
    }

    /// `<source>: error: <key path>: <reason>. <fix>`
    public var description: String {
        source.isEmpty ? "error: \(message)" : "\(source): error: \(message)"
    }
}

/// Something about the configuration that depends on the machine it runs on (a plugin library
/// or a host directory that is not there, no RDMA device, a port that needs privileges) rather
/// than on the file itself. The configuration still loads; the server reports these at start
/// and keeps whatever they affect (a mount, RDMA) out of service while it serves the rest.
public struct ConfigWarning: Sendable, Equatable, CustomStringConvertible {
    public var keyPath: String
    /// What was found and what the server will do about it, without a final period.
    public var message: String

    public init(keyPath: String, message: String) {
        self.keyPath = keyPath
        self.message = message
    }

    /// `<key path>: <message>`
    public var description: String {
        keyPath.isEmpty ? message : "\(keyPath): \(message)"
    }
}
