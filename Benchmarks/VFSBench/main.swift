import ArgumentParser
import Glibc
import LinuxFS
import MemFS
import Runtime
import URingFS
import VFS

/// Per-operation latency, rate and allocations of the VFS, one operation at a time on one loop
/// thread (what a protocol request costs in the VFS, without the network). Run by
/// scripts/bench-vfs, which preloads the allocation counter.
struct VFSBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vfs-bench", abstract: "Benchmark VFS operations on one loop.")

    @Option(help: "Backend to measure (see --list-backends).") var backend = "memfs"
    @Option(help: "Directory for backends that serve a host directory.") var dir = "/var/tmp/dmanoel-vfs-bench"
    @Flag(name: .customLong("list-backends"), help: "Print the backends this build can measure.") var listBackends = false
    @Option(help: "Comma-separated: getattr,lookup,create,read4k,write4k,read1m,write1m") var ops = "getattr,lookup,create,read4k,write4k,read1m,write1m"
    @Option(help: "Seconds per operation.") var seconds = 2.0
    @Option(help: "CPU to pin the loop to (-1: none).") var cpu = 1

    static let backends = ["memfs", "io_uring", "linux"]

    func run() throws {
        if listBackends {
            print(Self.backends.joined(separator: ","))
            return
        }
        let topology = cpu >= 0 ? Topology(nodes: [(0, [cpu])], simulated: false) : nil
        let group = try LoopGroup(LoopGroupSettings(threads: 1, delegationThreads: 2, io: .ioUring, pollMode: .always,
                                                    topology: topology, pinThreads: cpu >= 0))
        defer { group.shutdown() }
        let vfs = VirtualFileSystem()
        let fs: FileSystemBackend
        switch backend {
        case "memfs": fs = MemFS()
        case "io_uring": fs = try URingFS(root: dir, delegation: group.delegation)
        case "linux": fs = try LinuxFS(root: dir, delegation: group.delegation)
        default: throw ValidationError("unknown backend \(backend); one of \(Self.backends.joined(separator: ", "))")
        }
        try vfs.mount("bench", backend: fs)
        let names = ops.split(separator: ",").map(String.init)
        let seconds = self.seconds
        let lines = try runBlocking(on: group.loops[0]) {
            var lines: [String] = []
            for op in names { lines.append(try await measure(op, vfs: vfs, root: fs.rootHandle, seconds: seconds)) }
            return lines
        }
        for line in lines { print(line) }
    }
}

/// Prints the stacks of the next n allocations (malloccount's trace mode), if preloaded.
let mallocTrace: (@convention(c) (Int32) -> Void)? = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "dmanoel_malloc_trace") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) (Int32) -> Void).self)
}()

/// Allocation counter from the preloaded malloccount library, if present.
let mallocCount: (@convention(c) () -> UInt)? = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "dmanoel_malloc_count") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) () -> UInt).self)
}()

func measure(_ op: String, vfs: VirtualFileSystem, root: FileHandle, seconds: Double) async throws -> String {
    let dir = try await vfs.create(in: root, name: "bench-\(op)", kind: .directory, mode: .guarded, credentials: .root).handle
    let file = try await vfs.create(in: dir, name: "file", kind: .regular, mode: .guarded, credentials: .root).handle
    let size = op.hasSuffix("1m") ? 1 << 20 : 4096
    let payload = HeapBlock(capacity: size)
    payload.base.initializeMemory(as: UInt8.self, repeating: 0x5A, count: size)
    let data = UnsafeRawBufferPointer(start: payload.base, count: size)
    let fileSpan: UInt64 = 64 << 20
    if op.hasPrefix("read") {
        var offset: UInt64 = 0
        while offset < fileSpan {
            _ = try await vfs.write(file, offset: offset, data: data, stability: .unstable, credentials: .root)
            offset += UInt64(size)
        }
    }
    var samples = [UInt64](repeating: 0, count: 4_000_000)
    var count = 0
    var created = 0
    let slots = Int(fileSpan) / size
    let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
    let allocationsBefore = mallocCount?() ?? 0
    var bytes = 0
    let traceAt = getenv("DMANOEL_TRACE_ALLOCATIONS").map { Int(atoi($0)) } ?? 0
    while count < samples.count {
        if traceAt > 0 && count == 1000 { mallocTrace?(Int32(traceAt)) }
        let start = monotonicNanoseconds()
        if start >= deadline { break }
        switch op {
        case "getattr":
            _ = try await vfs.getattr(file, mask: .all)
        case "lookup":
            _ = try await vfs.lookup(dir, name: "file", mask: .all, credentials: .root)
        case "create":
            _ = try await vfs.create(in: dir, name: "c\(created)", kind: .regular, mode: .guarded, credentials: .root)
            created += 1
        case "read4k", "read1m":
            let result = try await vfs.read(file, offset: UInt64((count * 7919) % slots * size), count: size, credentials: .root)
            bytes += result.count
        case "write4k", "write1m":
            let result = try await vfs.write(file, offset: UInt64((count * 7919) % slots * size), data: data, stability: .unstable, credentials: .root)
            bytes += result.count
        default:
            throw ValidationError("unknown op \(op)")
        }
        samples[count] = monotonicNanoseconds() - start
        count += 1
    }
    let allocations = (mallocCount?() ?? 0) &- allocationsBefore
    let measured = samples[0..<count].sorted()
    let total = Double(measured.reduce(0, +)) / 1e9
    func percentile(_ p: Double) -> Double { Double(measured[min(count - 1, Int(Double(count) * p))]) / 1000 }
    let allocationsPerOp = mallocCount == nil ? "null" : String(Double(allocations) / Double(max(count, 1)))
    return "{\"op\":\"\(op)\",\"ops\":\(count),\"ops_per_s\":\(Int(Double(count) / total)),\"p50_us\":\(percentile(0.5)),\"p99_us\":\(percentile(0.99)),\"mb_per_s\":\(Int(Double(bytes) / total / 1e6)),\"allocations_per_op\":\(allocationsPerOp)}"
}

VFSBench.main()
