// nio-echo: the idiomatic SwiftNIO echo server, the baseline for scripts/bench-runtime.
//
//   nio-echo --host 127.0.0.1 --port 0 --threads 1
//
// Prints `listening HOST:PORT` on stdout once bound, then echoes every byte on every
// connection until SIGTERM or SIGINT.
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes back whatever it reads; flushes once per read burst (channelReadComplete).
final class EchoHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// Writes a whole string to a file descriptor, unbuffered (so nothing waits on a flush).
func writeAll(_ fd: Int32, _ text: String) {
    var bytes = Array(text.utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        done += n
    }
}

let usage = "usage: nio-echo [--host 127.0.0.1] [--port 0] [--threads 1]\n"

func fail(_ message: String) -> Never {
    writeAll(2, "nio-echo: \(message)\n" + usage)
    exit(2)
}

var host = "127.0.0.1"
var port = 0
var threads = 1

var args = CommandLine.arguments.dropFirst()
while let arg = args.popFirst() {
    switch arg {
    case "--host":
        guard let v = args.popFirst() else { fail("--host needs a value") }
        host = v
    case "--port":
        guard let v = args.popFirst(), let n = Int(v), (0...65535).contains(n) else { fail("--port needs 0...65535") }
        port = n
    case "--threads":
        guard let v = args.popFirst(), let n = Int(v), n >= 1 else { fail("--threads needs a positive integer") }
        threads = n
    case "-h", "--help":
        writeAll(1, usage)
        exit(0)
    default:
        fail("unknown argument \(arg)")
    }
}

// Block SIGTERM/SIGINT before any thread starts (threads inherit the mask); the main
// thread takes them with sigwait below and shuts down in order.
var stopSignals = sigset_t()
sigemptyset(&stopSignals)
sigaddset(&stopSignals, SIGTERM)
sigaddset(&stopSignals, SIGINT)
pthread_sigmask(SIG_BLOCK, &stopSignals, nil)

let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 256)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.maxMessagesPerRead, value: 16)
    .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator())
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(EchoHandler())
        }
    }

let server: Channel
do {
    server = try bootstrap.bind(host: host, port: port).wait()
} catch {
    writeAll(2, "nio-echo: cannot bind \(host):\(port): \(error)\n")
    exit(1)
}
guard let boundPort = server.localAddress?.port else {
    writeAll(2, "nio-echo: bound but no local port\n")
    exit(1)
}
writeAll(1, "listening \(host):\(boundPort)\n")

// Run until SIGTERM or SIGINT, then close the listener and stop the loops.
var received: Int32 = 0
while sigwait(&stopSignals, &received) != 0 {}
try? server.close().wait()
try? group.syncShutdownGracefully()
