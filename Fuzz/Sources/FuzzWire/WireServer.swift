import Glibc
import Logging
import Server

/// The whole server, as `dmanoel-nas serve` runs it, inside the fuzzing process: one loop over a
/// memfs mount with an NFS export, a guest SMB share and an S3 bucket, on free loopback ports.
/// A fuzz input is sent over a fresh TCP connection, as a client would send it: the bytes
/// reach the same record marking, NetBIOS framing or HTTP parsing, and then the same
/// decoders and operations, as real traffic.
///
/// The configuration is `WireServer.configuration` (scripts/fuzz-seeds starts the real binary
/// with the same file to capture seed traffic from real clients): the handle key in the state
/// directory is fixed, so NFS handles in captured seeds stay valid here.
public final class WireServer: @unchecked Sendable {
    public let nfsPort: UInt16
    public let smbPort: UInt16
    public let s3Port: UInt16
    private let server: NASServer

    /// Started on first use; lives as long as the process.
    public static let shared = WireServer()

    /// The key NFS handles are signed with: 32 bytes of 0x5A.
    public static let handleKey = [UInt8](repeating: 0x5A, count: 32)

    /// The configuration, with the ports and state directory filled in.
    public static func configuration(nfs: UInt16, smb: UInt16, s3: UInt16, stateDirectory: String) -> String {
        """
        {"server": {"bind": "127.0.0.1", "threads": 1, "delegation_threads": 1, "poll_mode": "never", "io": "epoll",
                    "nfs_port": \(nfs), "smb_port": \(smb), "s3_port": \(s3), "admin_port": 0, "metrics_port": 0,
                    "request_timeout_s": 5, "state_dir": "\(stateDirectory)"},
         "mounts": {"m": {"module": "memfs", "path": "/"}},
         "shares": {"public": {"path": "/m", "guest": true}, "data": {"path": "/m"}},
         "buckets": {"bucket": {"path": "/m"}},
         "users": {"alice": {"password": "secret1", "uid": 1000, "gid": 1000,
                             "s3_access_key": "AKIAFUZZ", "s3_secret_key": "fuzzsecret"}}}
        """
    }

    private init() {
        LoggingSystem.bootstrap { _ in SwiftLogNoOpLogHandler() }
        let state = "/tmp/dmanoel-fuzz-state-\(getpid())"
        mkdir(state, 0o700)
        let fd = open(state + "/handle.key", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0, "cannot write \(state)/handle.key")
        _ = Self.handleKey.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        close(fd)
        nfsPort = Self.freePort()
        smbPort = Self.freePort()
        s3Port = Self.freePort()
        let text = Self.configuration(nfs: nfsPort, smb: smbPort, s3: s3Port, stateDirectory: state)
        do {
            let loaded = try Configuration.parse(text, source: "fuzz")
            server = try NASServer(loaded)
        } catch {
            fatalError("fuzz: the server does not start: \(error)")
        }
    }

    /// A port nothing listens on right now (bound to 0 and released).
    static func freePort() -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    /// Sends `bytes` to the SMB port one NetBIOS frame at a time, as a client does: each frame
    /// waits for the server's answer before the next goes (the server runs the messages it
    /// has received at once, so a captured session sent in one piece would run SESSION_SETUP
    /// before NEGOTIATE had finished). The SessionId the server chose (it is random) replaces
    /// the captured one in later frames, so replayed sessions reach the commands behind them.
    public func exchangeSMB(_ bytes: UnsafeRawBufferPointer, quiet: Int32 = 100) {
        guard let fd = openConnection(port: smbPort) else { return }
        defer { close(fd) }
        var frame = [UInt8]()
        var position = 0
        var session: UInt64 = 0
        var pending = [UInt8]()
        while position < bytes.count {
            let length = bytes.count - position >= 4
                ? Int(bytes[position + 1]) << 16 | Int(bytes[position + 2]) << 8 | Int(bytes[position + 3]) : 0
            let end = min(bytes.count, position + 4 + length)
            frame = Array(bytes[position..<end])
            position = end
            // SMB2 header at 4: the SessionId is at header offset 40.
            if session != 0, frame.count >= 4 + 48, frame[4] == 0xFE, frame[5] == 0x53 {
                let captured = frame[44..<52].reduce(0) { $0 | $1 }
                if captured != 0 { withUnsafeBytes(of: session.littleEndian) { frame.replaceSubrange(44..<52, with: $0) } }
            }
            guard sendAll(fd, frame) else { return }
            // The answer: one whole frame, or silence.
            while true {
                if pending.count >= 4 {
                    let answer = Int(pending[1]) << 16 | Int(pending[2]) << 8 | Int(pending[3])
                    if pending.count >= 4 + answer {
                        if answer >= 48, pending[4] == 0xFE, pending[5] == 0x53 {
                            let id = pending[44..<52].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
                            if id != 0 { session = id }
                        }
                        pending.removeFirst(4 + answer)
                        break
                    }
                }
                guard let more = receive(fd, quiet: quiet) else { break }
                if more.isEmpty { return }
                pending += more
            }
        }
        shutdown(fd, Int32(SHUT_WR))
        while let more = receive(fd, quiet: quiet), !more.isEmpty {}
    }

    private func openConnection(port: UInt16) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    private func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }

    /// What arrives within `quiet` ms: nil for silence, empty at the end of the stream.
    private func receive(_ fd: Int32, quiet: Int32) -> [UInt8]? {
        var events = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&events, 1, quiet) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        guard n > 0 else { return [] }
        return Array(buffer[0..<n])
    }

    /// Sends `bytes` on a new connection to `port`, half-closes it, and reads (discarding) what
    /// the server answers until it closes or stays silent for `quiet` milliseconds.
    public func exchange(_ bytes: UnsafeRawBufferPointer, port: UInt16, quiet: Int32 = 200) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let started = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard started == 0 || errno == EINPROGRESS else { return }
        var sent = 0
        var halfClosed = false
        var sink = [UInt8](repeating: 0, count: 65536)
        while true {
            if sent == bytes.count && !halfClosed {
                shutdown(fd, Int32(SHUT_WR))
                halfClosed = true
            }
            var events = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if !halfClosed { events.events |= Int16(POLLOUT) }
            guard poll(&events, 1, quiet) > 0 else { return }
            if events.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                let n = sink.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
                if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) { return }
            }
            if !halfClosed && events.revents & Int16(POLLOUT) != 0 {
                let n = send(fd, bytes.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL))
                if n > 0 { sent += n } else if errno != EAGAIN && errno != EINTR { return }
            }
        }
    }
}
