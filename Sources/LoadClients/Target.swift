/// A target named by URL: `nfs3://host:port/export`, `nfs4://host:port/path` (NFSv4.1, the
/// path from the server's pseudo root), `smb://user:pass@host:port/share[?sign=1&encrypt=1&dialect=3.1.1]`
/// or `s3://key:secret@host:port/bucket`.
public struct Target: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case nfs3, nfs4, smb, s3
        /// A file protocol (directories, handles) rather than an object store.
        public var isFileProtocol: Bool { self != .s3 }
    }
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
    /// SMB: sign every message (`?sign=1`), encrypt (`?encrypt=1`, SMB 3.x), and the one
    /// dialect to offer (`?dialect=2.1|3.0|3.0.2|3.1.1`; default: all of them).
    public var smbSign = false
    public var smbEncrypt = false
    public var smbDialect: UInt16?

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
        case .nfs4: "nfs4://\(hostPort)\(root)"
        case .smb: "smb://\(accessKey.isEmpty ? "" : accessKey + "@")\(hostPort)/\(root)" + smbQuery
        case .s3: "s3://\(accessKey.isEmpty ? "" : accessKey + "@")\(hostPort)/\(root)"
        }
    }

    private var smbQuery: String {
        var items: [String] = []
        if smbSign { items.append("sign=1") }
        if smbEncrypt { items.append("encrypt=1") }
        if let smbDialect { items.append("dialect=" + (Self.dialectNames.first { $0.value == smbDialect }?.key ?? "?")) }
        return items.isEmpty ? "" : "?" + items.joined(separator: "&")
    }

    static let dialectNames: [String: UInt16] = ["2.1": 0x0210, "3.0": 0x0300, "3.0.2": 0x0302, "3.1.1": 0x0311]

    var hostPort: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses a target URL; the error says what is wrong and what a good one looks like.
    public static func parse(_ text: String) throws(LoadClientError) -> Target {
        let usage = "expected nfs3://HOST:PORT/EXPORT, nfs4://HOST:PORT/PATH, smb://USER:PASS@HOST:PORT/SHARE or s3://KEY:SECRET@HOST:PORT/BUCKET"
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
        var sign = false, encrypt = false
        var dialect: UInt16?
        if let question = rest.firstIndex(of: "?") {
            for item in rest[rest.index(after: question)...].split(separator: "&") {
                let kv = item.split(separator: "=", maxSplits: 1).map(String.init)
                let value = kv.count == 2 ? kv[1] : ""
                switch (kind, kv[0]) {
                case (.nfs3, "mountport"):
                    guard let p = Int(value), p > 0, p < 65536 else { throw LoadClientError("target '\(text)': bad mountport '\(value)'") }
                    mountPort = p
                case (.smb, "sign"), (.smb, "encrypt"):
                    guard value == "0" || value == "1" else { throw LoadClientError("target '\(text)': \(kv[0]) must be 0 or 1, found '\(value)'") }
                    if kv[0] == "sign" { sign = value == "1" } else { encrypt = value == "1" }
                case (.smb, "dialect"):
                    guard let d = dialectNames[value] else {
                        throw LoadClientError("target '\(text)': unknown dialect '\(value)'; expected one of 2.1, 3.0, 3.0.2, 3.1.1")
                    }
                    dialect = d
                default:
                    throw LoadClientError("target '\(text)': unknown parameter '\(item)' (nfs3 URLs take ?mountport=PORT; smb URLs take sign=0|1, encrypt=0|1, dialect=VERSION)")
                }
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
        let defaultPort = switch kind {
        case .nfs3, .nfs4: 2049
        case .smb: 445
        case .s3: 9000
        }
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
        case .nfs4:
            guard path.count > 1 else { throw LoadClientError("target '\(text)': no path below the pseudo root; \(usage)") }
            return Target(kind: .nfs4, host: String(host), port: port, root: path)
        case .smb:
            let share = path.split(separator: "/").first.map(String.init) ?? ""
            guard !share.isEmpty else { throw LoadClientError("target '\(text)': no share; \(usage)") }
            guard !accessKey.isEmpty else { throw LoadClientError("target '\(text)': SMB needs USER:PASS@ before the host; \(usage)") }
            guard !(encrypt && dialect.map { $0 < 0x0300 } ?? false) else { throw LoadClientError("target '\(text)': encryption needs dialect 3.0 or later") }
            var target = Target(kind: .smb, host: String(host), port: port, root: share, accessKey: accessKey, secretKey: secretKey)
            target.smbSign = sign
            target.smbEncrypt = encrypt
            target.smbDialect = dialect
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
