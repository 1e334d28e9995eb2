import CRuntimeShims
import Glibc
import Runtime
import Synchronization

/// A blocking TCP client for driving the runtime from test threads.
final class TestClient: @unchecked Sendable {
    let fd: Int32

    init(port: Int) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        precondition(fd >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        precondition(rc == 0, "connect failed: \(errno)")
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            precondition(n > 0, "send failed: \(errno)")
            offset += n
        }
    }

    /// Reads exactly `count` bytes (or fewer if the peer closes); nil on timeout or error.
    func receive(_ count: Int) -> [UInt8]? {
        var result = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let n = result.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress! + offset, count - offset, 0) }
            if n < 0 { return nil }
            if n == 0 { break }
            offset += n
        }
        return Array(result[0..<offset])
    }

    /// True when the server closed the connection (read returns 0).
    func isClosedByPeer() -> Bool {
        var byte: UInt8 = 0
        return Glibc.recv(fd, &byte, 1, 0) == 0
    }
}

/// Echoes by reference and counts what it saw; `closedCount` tells tests how many closed.
final class EchoHandler: ConnectionHandler {
    static let closedCount = Atomic<Int>(0)
    override func received(_ bytes: ByteSlice, on connection: Connection) -> Int {
        connection.send(bytes)
        return bytes.count
    }

    override func closed(_ connection: Connection, error: Int32) {
        EchoHandler.closedCount.add(1, ordering: .relaxed)
    }
}

func makeGroup(io: IOBackendKind, threads: Int = 1, pollMode: PollMode = .auto, spin: Int = 50_000,
               topology: Topology? = nil, pin: Bool = false) throws -> LoopGroup {
    try LoopGroup(LoopGroupSettings(threads: threads, delegationThreads: 2, io: io, pollMode: pollMode,
                                    spinNanoseconds: spin, topology: topology, pinThreads: pin))
}

/// Polls `condition` every millisecond until it holds or `seconds` pass.
func eventually(seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
    while monotonicNanoseconds() < deadline {
        if condition() { return true }
        usleep(1000)
    }
    return condition()
}

func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed | 1
    return (0..<count).map { _ in
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return UInt8(truncatingIfNeeded: state)
    }
}

/// A mutex-protected value that escaping closures can capture (Mutex itself is ~Copyable).
final class Locked<Value>: @unchecked Sendable {
    private let mutex: Mutex<Value>
    init(_ value: sending Value) { mutex = Mutex(value) }
    func withLock<R>(_ body: (inout sending Value) -> sending R) -> sending R { mutex.withLock(body) }
}
