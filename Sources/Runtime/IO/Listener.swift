import Glibc

/// A listening TCP socket. It accepts on its home loop and hands each new connection to the
/// group's loops in turn; a connection then stays on the loop it was given.
public final class Listener: @unchecked Sendable {
    public let fd: Int32
    /// The address actually bound (port 0 resolved), e.g. "127.0.0.1:2049".
    public let boundAddress: String
    public let port: Int
    let factory: ConnectionFactory
    unowned let home: EventLoop
    let targets: [EventLoop]
    var slot = 0
    var acceptArmed = false
    var epollAcceptWaiting = false
    private var nextTarget = 0
    private var closed = false

    let limiter: ConnectionLimiter?
    /// When a refusal was last logged (refusals are logged at most once a second).
    private var lastRefusalLog: UInt64 = 0

    init(fd: Int32, boundAddress: String, port: Int, home: EventLoop, targets: [EventLoop], factory: @escaping ConnectionFactory,
         limiter: ConnectionLimiter? = nil) {
        self.limiter = limiter
        self.fd = fd
        self.boundAddress = boundAddress
        self.port = port
        self.home = home
        self.targets = targets
        self.factory = factory
    }

    /// Creates, binds and listens on a socket (any thread); `Runtime.listen` registers it.
    static func bindSocket(host: String, port: Int, backlog: Int32 = 1024) throws(RuntimeError) -> (fd: Int32, address: String, port: Int) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let info = list else {
            throw RuntimeError.invalidSetting("cannot use address '\(host)': \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw RuntimeError.system("socket", errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw RuntimeError.system("bind \(host):\(port)", code)
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw RuntimeError.system("listen", code)
        }
        let local = SocketAddress.local(of: fd)
        return (fd, local.description, local.port)
    }

    func acceptCompleted(_ result: Int32) {
        acceptArmed = false
        guard !closed else {
            if result >= 0 { Glibc.close(result) }
            return
        }
        if result >= 0 {
            let fd = result
            SocketAddress.configureAccepted(fd)
            let peer = SocketAddress.remote(of: fd).description
            if let limiter, !limiter.admit(ConnectionLimiter.host(of: peer)) {
                // Over the limit: closed at once, before any byte is read.
                Glibc.close(fd)
                let now = monotonicNanoseconds()
                if now &- lastRefusalLog > 1_000_000_000 {
                    lastRefusalLog = now
                    home.logger.warning("refusing connections on \(boundAddress) (from \(peer)): more than \(limiter.maxTotal) open, or \(limiter.maxPerClient) from one client")
                }
                home.armAccept(self)
                return
            }
            let target = targets[nextTarget % targets.count]
            nextTarget &+= 1
            let limiter = self.limiter
            if target === home {
                home.adopt(fd: fd, peer: peer, factory: factory, limiter: limiter)
            } else {
                let factory = self.factory
                target.execute { [unowned target] in target.adopt(fd: fd, peer: peer, factory: factory, limiter: limiter) }
            }
        } else if result != -EAGAIN && result != -EINTR && result != -ECONNABORTED {
            home.logger.warning("accept on \(boundAddress) failed: \(String(cString: strerror(-result)))")
            if result == -EMFILE || result == -ENFILE {
                // Out of descriptors: back off instead of spinning on the error.
                home.schedule(afterNanoseconds: 100_000_000) { [self] in if !closed { home.armAccept(self) } }
                return
            }
        }
        home.armAccept(self)
    }

    /// Stops listening (on the home loop): the shutdown ends an armed accept, which then
    /// re-arms nothing, and connections waiting in the backlog are reset.
    func closeSocket() {
        guard !closed else { return }
        closed = true
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
    }
}

/// Socket address helpers (numeric text forms only: the runtime never resolves names).
public struct SocketAddress: CustomStringConvertible, Sendable {
    public var host: String
    public var port: Int

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    static func local(of fd: Int32) -> SocketAddress { read(fd, getsockname) }
    static func remote(of fd: Int32) -> SocketAddress { read(fd, getpeername) }

    private static func read(_ fd: Int32, _ call: (Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?) -> Int32) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, &length) }
        } == 0
        guard ok else { return SocketAddress(host: "?", port: 0) }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, socklen_t(host.count), &service, socklen_t(service.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard rc == 0 else { return SocketAddress(host: "?", port: 0) }
        func text(_ chars: [CChar]) -> String {
            String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return SocketAddress(host: text(host), port: Int(text(service)) ?? 0)
    }

    /// Low latency for request/response traffic and dead-peer detection on idle connections.
    static func configureAccepted(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, socklen_t(MemoryLayout<Int32>.size))
    }
}
