import Glibc
import Runtime
import Synchronization
import Testing

@Suite("Connections over loopback TCP")
struct ConnectionTests {
    @Test("echo round trips, small and multi-megabyte, on every backend and poll mode",
          arguments: IOBackendKind.allCases, [PollMode.always, .never, .auto])
    func echo(io: IOBackendKind, mode: PollMode) async throws {
        let group = try makeGroup(io: io, threads: 2, pollMode: mode)
        defer { group.shutdown() }
        let listener = try group.listen(host: "127.0.0.1", port: 0) { _ in EchoHandler() }
        #expect(listener.port > 0)
        let clients = (0..<4).map { _ in TestClient(port: listener.port) }
        for (i, client) in clients.enumerated() {
            let message = randomBytes(100 + i, seed: UInt64(i + 1))
            client.send(message)
            #expect(client.receive(message.count) == message)
        }
        // A payload far larger than a buffer, sent while reading (the server must not lose or
        // reorder bytes across buffer boundaries, partial sends or backpressure).
        let big = randomBytes(6 * 1024 * 1024, seed: 99)
        let client = clients[0]
        let sender = Thread { client.send(big) }
        let echoed = client.receive(big.count)
        sender.join()
        #expect(echoed == big)
        // Connections were spread over both loops.
        #expect(eventually { group.snapshot().map(\.connections) == [2, 2] })
    }

    @Test("closing clients closes server connections, calls the handler once, and leaks no buffer",
          arguments: IOBackendKind.allCases)
    func closeAndLeaks(io: IOBackendKind) async throws {
        let group = try makeGroup(io: io)
        defer { group.shutdown() }
        let listener = try group.listen(host: "127.0.0.1", port: 0) { _ in EchoHandler() }
        let before = EchoHandler.closedCount.load(ordering: .relaxed)
        do {
            let clients = (0..<20).map { _ in TestClient(port: listener.port) }
            for client in clients {
                client.send([1, 2, 3])
                #expect(client.receive(3) == [1, 2, 3])
            }
            #expect(eventually { group.loops[0].snapshot().connections == 20 })
        }
        #expect(eventually { EchoHandler.closedCount.load(ordering: .relaxed) - before >= 20 })
        #expect(eventually { group.loops[0].snapshot().connections == 0 })
        let outstanding = await group.loops[0].submit { group.loops[0].buffers.outstanding }
        #expect(outstanding == 0)
    }

    @Test("a server-side close sends queued output first", arguments: IOBackendKind.allCases)
    func gracefulClose(io: IOBackendKind) async throws {
        let group = try makeGroup(io: io)
        defer { group.shutdown() }
        let listener = try group.listen(host: "127.0.0.1", port: 0) { _ in ReplyThenClose() }
        let client = TestClient(port: listener.port)
        client.send(Array("hello".utf8))
        #expect(client.receive(6) == Array("bye 5\n".utf8))
        #expect(client.isClosedByPeer())
    }

    @Test("a peer that does not read makes the connection stop reading (bounded send queue)",
          arguments: IOBackendKind.allCases)
    func backpressure(io: IOBackendKind) async throws {
        let group = try makeGroup(io: io)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let listener = try group.listen(host: "127.0.0.1", port: 0) { _ in EchoHandler() }
        let client = TestClient(port: listener.port)
        var small: Int32 = 64 * 1024
        setsockopt(client.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        // Send 64 MiB without reading any echo: the server's queue must stay near its limit.
        let chunk = [UInt8](repeating: 7, count: 1 << 20)
        var flags = fcntl(client.fd, F_GETFL)
        flags |= O_NONBLOCK
        _ = fcntl(client.fd, F_SETFL, flags)
        var sent = 0
        let deadline = monotonicNanoseconds() + 3_000_000_000
        while sent < 64 << 20 && monotonicNanoseconds() < deadline {
            let n = chunk.withUnsafeBytes { Glibc.send(client.fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n } else { usleep(1000) }
        }
        #expect(sent < 64 << 20, "the server kept reading although its peer never read")
        let reserved = await loop.submit { loop.buffers.reservedBytes }
        #expect(reserved < 32 << 20, "buffer memory grew to \(reserved) bytes")
    }

    @Test("listening on a taken port fails with a clear error")
    func portInUse() throws {
        let group = try makeGroup(io: .ioUring)
        defer { group.shutdown() }
        let first = try group.listen(host: "127.0.0.1", port: 0) { _ in EchoHandler() }
        #expect(throws: RuntimeError.self) { try group.listen(host: "127.0.0.1", port: first.port) { _ in EchoHandler() } }
        #expect(throws: RuntimeError.self) { try group.listen(host: "not-an-address", port: 0) { _ in EchoHandler() } }
    }
}

final class ReplyThenClose: ConnectionHandler {
    override func received(_ bytes: ByteSlice, on connection: Connection) -> Int {
        let reply = Array("bye \(bytes.count)\n".utf8)
        reply.withUnsafeBytes { connection.write($0) }
        connection.close()
        return bytes.count
    }
}

/// A plain pthread for blocking work in tests.
final class Thread: @unchecked Sendable {
    private var thread = pthread_t()
    private let body: () -> Void

    init(_ body: @escaping () -> Void) {
        self.body = body
        let box = Unmanaged.passRetained(self)
        pthread_create(&thread, nil, { raw in
            let me = Unmanaged<Thread>.fromOpaque(raw!).takeRetainedValue()
            me.body()
            return nil
        }, box.toOpaque())
    }

    func join() { pthread_join(thread, nil) }
}
