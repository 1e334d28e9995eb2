import CNuma
import Glibc

/// Per-loop buffer memory: 16 KiB chunks carved from 1 MiB slabs for ordinary traffic, and
/// power-of-two blocks up to `maxBlockSize` for large records (a 1 MiB NFS WRITE lands in one
/// contiguous block, so its payload reaches the VFS as one slice). Freed buffers go to per-class
/// free lists and are reused; memory comes from the loop's NUMA node where libnuma allows.
///
/// Not thread safe by design: only the owning loop's thread touches it.
public final class BufferPool {
    public static let chunkSize = 16 * 1024
    static let slabSize = 1024 * 1024
    /// Largest single buffer: the biggest record any protocol accepts plus headroom.
    public static let maxBlockSize = 16 * 1024 * 1024
    /// Free blocks kept per large size class before memory goes back to the system.
    static let keepPerLargeClass = 8

    /// The NUMA node memory is requested from, or nil for the default policy.
    public let node: Int?
    private var freeLists: [[IOBuffer]]
    private var slabs: [(UnsafeMutableRawPointer, Int)] = []
    private var largeBlocks: Int = 0

    /// Buffers handed out and not yet returned.
    public private(set) var outstanding = 0
    /// Bytes held from the system (slabs and large blocks, in use or free).
    public private(set) var reservedBytes = 0

    /// Size classes: 0 = chunk (16 KiB), k = chunkSize << k.
    static let classCount: Int = {
        var n = 1
        while chunkSize << (n - 1) < maxBlockSize { n += 1 }
        return n
    }()

    public init(node: Int?) {
        if let node, numa_available() >= 0, node <= Int(numa_max_node()) {
            self.node = node
        } else {
            self.node = nil
        }
        freeLists = Array(repeating: [], count: Self.classCount)
    }

    deinit {
        for list in freeLists {
            for buffer in list where buffer.sizeClass > 0 { release(memory: buffer.base, size: buffer.capacity) }
        }
        for (base, size) in slabs { release(memory: base, size: size) }
    }

    /// Where this pool's memory comes from, for the console and the logs.
    public var memoryPolicy: String { node.map { "numa node \($0)" } ?? "default" }

    /// A buffer of at least `minimumCapacity` bytes with one reference.
    public func take(minimumCapacity: Int = chunkSize) -> IOBuffer {
        precondition(minimumCapacity <= Self.maxBlockSize, "buffer of \(minimumCapacity) bytes exceeds the pool's largest block")
        var sizeClass = 0
        while Self.chunkSize << sizeClass < minimumCapacity { sizeClass += 1 }
        let buffer: IOBuffer
        if let reused = freeLists[sizeClass].popLast() {
            buffer = reused
        } else if sizeClass == 0 {
            carveSlab()
            buffer = freeLists[0].removeLast()
        } else {
            let size = Self.chunkSize << sizeClass
            buffer = IOBuffer(base: allocate(size: size), capacity: size, sizeClass: sizeClass, pool: self)
            largeBlocks += 1
        }
        buffer.references = 1
        outstanding += 1
        return buffer
    }

    func recycle(_ buffer: IOBuffer) {
        outstanding -= 1
        if buffer.sizeClass > 0 && freeLists[buffer.sizeClass].count >= Self.keepPerLargeClass {
            release(memory: buffer.base, size: buffer.capacity)
            largeBlocks -= 1
            return
        }
        freeLists[buffer.sizeClass].append(buffer)
    }

    private func carveSlab() {
        let base = allocate(size: Self.slabSize)
        slabs.append((base, Self.slabSize))
        let chunks = Self.slabSize / Self.chunkSize
        freeLists[0].reserveCapacity(freeLists[0].count + chunks)
        for i in (0..<chunks).reversed() {
            freeLists[0].append(IOBuffer(base: base + i * Self.chunkSize, capacity: Self.chunkSize, sizeClass: 0, pool: self))
        }
    }

    private func allocate(size: Int) -> UnsafeMutableRawPointer {
        reservedBytes += size
        if let node, let memory = numa_alloc_onnode(size, Int32(node)) { return memory }
        var memory: UnsafeMutableRawPointer?
        guard posix_memalign(&memory, 4096, size) == 0, let memory else {
            fatalError("out of memory allocating a \(size)-byte I/O buffer")
        }
        return memory
    }

    private func release(memory: UnsafeMutableRawPointer, size: Int) {
        reservedBytes -= size
        if node != nil { numa_free(memory, size) } else { free(memory) }
    }
}
