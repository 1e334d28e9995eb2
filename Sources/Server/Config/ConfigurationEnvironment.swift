#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What the configuration loader asks of the machine it runs on. Everything it learns here
/// becomes a ``ConfigWarning``, never a ``ConfigError``: a file that is valid on one machine is
/// valid on every machine, and `config check` can vet a file meant for another host.
///
/// ``current`` asks the real system; tests and tools can substitute their own answers.
public struct ConfigurationEnvironment: Sendable {
    public enum FileKind: Sendable, Equatable {
        case missing
        case directory
        case regularFile
        case other
    }

    /// What is at a path (following symbolic links).
    public var fileKind: @Sendable (String) -> FileKind
    /// The addresses assigned to this machine's interfaces; `nil` when they cannot be listed.
    public var localAddresses: @Sendable () -> [IPAddress]?
    /// The RDMA devices present (names under /sys/class/infiniband).
    public var rdmaDevices: @Sendable () -> [String]
    /// The effective user ID (0 can bind ports below 1024).
    public var effectiveUserID: @Sendable () -> UInt32

    public init(
        fileKind: @escaping @Sendable (String) -> FileKind,
        localAddresses: @escaping @Sendable () -> [IPAddress]?,
        rdmaDevices: @escaping @Sendable () -> [String],
        effectiveUserID: @escaping @Sendable () -> UInt32
    ) {
        self.fileKind = fileKind
        self.localAddresses = localAddresses
        self.rdmaDevices = rdmaDevices
        self.effectiveUserID = effectiveUserID
    }

    /// The machine this process runs on.
    public static let current = ConfigurationEnvironment(
        fileKind: { path in SystemFiles.kind(of: path) },
        localAddresses: { SystemFiles.interfaceAddresses() },
        rdmaDevices: { SystemFiles.directoryEntries("/sys/class/infiniband") ?? [] },
        effectiveUserID: { UInt32(geteuid()) }
    )
}

/// Plain POSIX access to files, without Foundation.
enum SystemFiles {
    static func kind(of path: String) -> ConfigurationEnvironment.FileKind {
        var info = stat()
        guard stat(path, &info) == 0 else { return .missing }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFREG: return .regularFile
        default: return .other
        }
    }

    static func directoryEntries(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    static func interfaceAddresses() -> [IPAddress]? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return nil }
        defer { freeifaddrs(list) }
        var addresses: [IPAddress] = []
        var cursor = list
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let sa = entry.pointee.ifa_addr else { continue }
            switch Int32(sa.pointee.sa_family) {
            case AF_INET:
                let a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                addresses.append(.v4(UInt32(bigEndian: a)))
            case AF_INET6:
                let bytes = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                    withUnsafeBytes(of: p.pointee.sin6_addr) { Array($0) }
                }
                var value: UInt128 = 0
                for b in bytes { value = value << 8 | UInt128(b) }
                addresses.append(.v6(value))
            default:
                continue
            }
        }
        return addresses
    }

    /// Largest configuration file read: far more than any real configuration needs.
    static let maximumFileSize = 16 << 20

    struct ReadFailure: Error {
        var reason: String
        var fix: String
    }

    /// Reads a whole file with open/read. Also reports whether other users can read it.
    static func readFile(_ path: String) -> Result<(bytes: [UInt8], worldReadable: Bool), ReadFailure> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            let fix: String
            switch code {
            case ENOENT: fix = "Check the path; `dmanoel-nas config default` prints a configuration to start from."
            case EACCES: fix = "Make the file readable by the user the server runs as."
            default: fix = "Check the path and the file's permissions."
            }
            return .failure(ReadFailure(reason: "cannot open the file: \(describeErrno(code))", fix: fix))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            return .failure(ReadFailure(reason: "cannot inspect the file: \(describeErrno(errno))", fix: "Check the file."))
        }
        if info.st_mode & S_IFMT == S_IFDIR {
            return .failure(ReadFailure(reason: "this is a directory, not a file", fix: "Name the configuration file itself."))
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(ReadFailure(reason: "cannot read the file: \(describeErrno(errno))", fix: "Check the file."))
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > maximumFileSize {
                return .failure(ReadFailure(reason: "the file is larger than \(maximumFileSize >> 20) MiB",
                                            fix: "Name a configuration file; this one is far too large to be one."))
            }
        }
        return .success((bytes, info.st_mode & S_IROTH != 0))
    }

    static func describeErrno(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }
}
