/// A target named by URL: `nfs3://host:port/export` or `s3://key:secret@host:port/bucket`.
public struct Target: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable { case nfs3, s3 }
    public var kind: Kind
    public var host: String
    public var port: Int
    /// The export path (NFS, with a leading "/") or the bucket name (S3).
    public var root: String
    public var accessKey: String
    public var secretKey: String
    public var region: String
    /// NFS: the MOUNT port when it is not the NFS port (`?mountport=N`, e.g. nfs-ganesha's 20048).
    public var mountPort: Int?

    public init(kind: Kind, host: String, port: Int, root: String, accessKey: String = "", secretKey: String = "", region: String = "us-east-1") {
        self.kind = kind
        self.host = host
        self.port = port
        self.root = root
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.region = region
    }

    /// The URL without the secret key.
    public var description: String {
        switch kind {
        case .nfs3: "nfs3://\(hostPort)\(root)" + (mountPort.map { "?mountport=\($0)" } ?? "")
        case .s3: "s3://\(accessKey.isEmpty ? "" : accessKey + "@")\(hostPort)/\(root)"
        }
    }

    var hostPort: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses a target URL; the error says what is wrong and what a good one looks like.
    public static func parse(_ text: String) throws(LoadClientError) -> Target {
        let usage = "expected nfs3://HOST:PORT/EXPORT or s3://KEY:SECRET@HOST:PORT/BUCKET"
        let parts = text.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw LoadClientError("target '\(text)': no scheme; \(usage)") }
        let scheme = String(parts[0]).lowercased()
        guard let kind = Kind(rawValue: scheme == "nfs" ? "nfs3" : scheme) else {
            throw LoadClientError("target '\(text)': unknown scheme '\(scheme)'; \(usage)")
        }
        var rest = parts[1]
        var accessKey = "", secretKey = ""
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                accessKey = percentDecode(userinfo[..<colon])
                secretKey = percentDecode(userinfo[userinfo.index(after: colon)...])
            } else {
                accessKey = percentDecode(userinfo)
            }
        }
        var mountPort: Int?
        if let question = rest.firstIndex(of: "?") {
            for item in rest[rest.index(after: question)...].split(separator: "&") {
                let kv = item.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2, kv[0] == "mountport", kind == .nfs3, let p = Int(kv[1]), p > 0, p < 65536 else {
                    throw LoadClientError("target '\(text)': unknown or bad parameter '\(item)' (nfs3 URLs take ?mountport=PORT)")
                }
                mountPort = p
            }
            rest = rest[..<question]
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        let path = String(rest[slash...])
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw LoadClientError("target '\(text)': unclosed '[' in the host") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        if host == "localhost" { host = "127.0.0.1" }
        guard !host.isEmpty else { throw LoadClientError("target '\(text)': no host; \(usage)") }
        let defaultPort = kind == .nfs3 ? 2049 : 9000
        var port = defaultPort
        if let portText {
            guard let value = Int(portText), value > 0, value < 65536 else { throw LoadClientError("target '\(text)': bad port '\(portText)'") }
            port = value
        }
        switch kind {
        case .nfs3:
            guard path.count > 1 else { throw LoadClientError("target '\(text)': no export path; \(usage)") }
            var target = Target(kind: .nfs3, host: String(host), port: port, root: path)
            target.mountPort = mountPort
            return target
        case .s3:
            let bucket = path.split(separator: "/").first.map(String.init) ?? ""
            guard !bucket.isEmpty else { throw LoadClientError("target '\(text)': no bucket; \(usage)") }
            guard !accessKey.isEmpty, !secretKey.isEmpty else { throw LoadClientError("target '\(text)': S3 needs KEY:SECRET@ before the host; \(usage)") }
            return Target(kind: .s3, host: String(host), port: port, root: bucket, accessKey: accessKey, secretKey: secretKey)
        }
    }

    private static func percentDecode(_ text: Substring) -> String {
        var out: [UInt8] = []
        var bytes = Array(text.utf8)[...]
        while let b = bytes.popFirst() {
            if b == UInt8(ascii: "%"), bytes.count >= 2, let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) {
                out.append(v)
                bytes = bytes.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
