import CRuntimeShims
import Glibc

/// Outbound connections (load clients): a socket is connected, then adopted by a loop exactly
/// like an accepted one, so a client connection uses the same io_uring/epoll receive and send
/// paths, buffers and statistics as a server connection.
extension EventLoop {
    /// Connects to `host:port` (numeric address; the runtime never resolves names) and serves
    /// the connection on this loop with the handler `factory` builds. Loop thread only.
    ///
    /// The connect itself is a blocking `connect(2)` on a fresh socket before it is made
    /// non-blocking: a load client opens its connections once, before it measures, and a
    /// loopback or LAN connect takes microseconds. Returns the connection, already receiving.
    @discardableResult
    public func connect(host: String, port: Int, factory: ConnectionFactory) throws(RuntimeError) -> Connection {
        precondition(inLoop, "EventLoop.connect must be called on the loop's thread")
        let fd = try SocketAddress.connectedSocket(host: host, port: port)
        let peer = SocketAddress.remote(of: fd).description
        guard let connection = adopt(fd: fd, peer: peer, factory: factory) else {
            throw RuntimeError.invalidSetting("loop \(index) could not register the connection to \(host):\(port)")
        }
        return connection
    }
}

extension LoopGroup {
    /// Connects to `host:port` from any thread and serves the connection on `loop` (an index
    /// into `loops`). The handler is built on that loop; this call waits until it is.
    @discardableResult
    public func connect(host: String, port: Int, loop index: Int = 0, factory: @escaping ConnectionFactory) throws(RuntimeError) -> Connection {
        let loop = loops[index % loops.count]
        let done = OneShot<Result<UncheckedBox<Connection>, RuntimeError>>()
        loop.execute { [unowned loop] in
            do throws(RuntimeError) {
                done.set(.success(UncheckedBox(try loop.connect(host: host, port: port, factory: factory))))
            } catch {
                done.set(.failure(error))
            }
        }
        switch done.wait() {
        case let .success(box)?: return box.value
        case let .failure(error)?: throw error
        case nil: throw RuntimeError.invalidSetting("loop \(index) stopped before connecting")
        }
    }
}

/// Carries a loop-owned object across threads when the receiver only holds it (the object is
/// still used on its own loop only).
public struct UncheckedBox<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}

extension SocketAddress {
    /// A connected, non-blocking TCP socket to a numeric `host:port`, with TCP_NODELAY.
    static func connectedSocket(host: String, port: Int) throws(RuntimeError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let info = list else {
            throw RuntimeError.invalidSetting("cannot use address '\(host)': \(String(cString: gai_strerror(rc))) (numeric addresses only)")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw RuntimeError.system("socket", errno) }
        guard Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw RuntimeError.system("connect \(host):\(port)", code)
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        configureAccepted(fd)
        return fd
    }
}
