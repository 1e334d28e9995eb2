/// An opaque file handle: at most `capacity` bytes, stored inline (no allocation), the first two
/// bytes the mount id so routing a call is one table lookup. What follows is the backend's own
/// (an inode number and generation for memfs, a kernel handle for linux).
///
/// Handles given to NFS clients are signed by `HandleSigner`, which appends a MAC; the signed
/// form fits the 64 bytes NFSv3 allows.
public struct FileHandle: Sendable, Hashable, CustomStringConvertible, BitwiseCopyable {
    /// Largest unsigned handle; `HandleSigner.macLength` more bytes make the signed one.
    public static let capacity = 51

    private var storage: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0)
    public private(set) var count: Int = 0

    /// A handle of `mount` followed by `body` (nil if it would not fit).
    public init?(mount: UInt16, body: UnsafeRawBufferPointer) {
        guard body.count + 2 <= Self.capacity else { return nil }
        count = body.count + 2
        withUnsafeMutableBytes(of: &storage) { raw in
            raw.storeBytes(of: mount.littleEndian, toByteOffset: 0, as: UInt16.self)
            if !body.isEmpty { raw.baseAddress!.advanced(by: 2).copyMemory(from: body.baseAddress!, byteCount: body.count) }
        }
    }

    /// A handle from its raw bytes as a client sent them (mount id first).
    public init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= 2, bytes.count <= Self.capacity else { return nil }
        count = bytes.count
        withUnsafeMutableBytes(of: &storage) { $0.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
    }

    public init?(bytes: [UInt8]) {
        guard let handle = bytes.withUnsafeBytes({ FileHandle(bytes: $0) }) else { return nil }
        self = handle
    }

    /// A handle whose body is one or two 64-bit integers (little endian), for backends with
    /// numeric identities (an inode number and a generation). Writes straight into the inline
    /// storage: no allocation, it is on every lookup's path.
    public init(mount: UInt16, words first: UInt64, _ second: UInt64? = nil) {
        count = 2 + (second == nil ? 8 : 16)
        withUnsafeMutableBytes(of: &storage) { raw in
            raw.storeBytes(of: mount.littleEndian, toByteOffset: 0, as: UInt16.self)
            raw.storeBytes(of: first.littleEndian, toByteOffset: 2, as: UInt64.self)
            if let second { raw.storeBytes(of: second.littleEndian, toByteOffset: 10, as: UInt64.self) }
        }
    }

    public var mountID: UInt16 {
        withUnsafeBytes(of: storage) { $0.load(as: UInt16.self) }.littleEndian
    }

    /// The bytes after the mount id.
    public func withBody<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: storage) { try body(UnsafeRawBufferPointer(rebasing: $0[2..<count])) }
    }

    /// All bytes, mount id first.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: storage) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    public var bytes: [UInt8] { withBytes { Array($0) } }

    /// The `index`-th 64-bit word of the body (0 when the body is shorter).
    public func word(_ index: Int) -> UInt64 {
        withBody { body in
            let offset = index * 8
            guard offset + 8 <= body.count else { return 0 }
            return body.loadUnaligned(fromByteOffset: offset, as: UInt64.self).littleEndian
        }
    }

    public var bodyCount: Int { count - 2 }

    /// Word-wise: every initializer starts from zeroed storage, so bytes past `count` are zero
    /// and equal handles have equal words.
    public static func == (a: FileHandle, b: FileHandle) -> Bool {
        a.count == b.count && a.storage.0 == b.storage.0 && a.storage.1 == b.storage.1
            && a.storage.2 == b.storage.2 && a.storage.3 == b.storage.3 && a.storage.4 == b.storage.4
            && a.storage.5 == b.storage.5 && a.storage.6 == b.storage.6
    }

    /// A 64-bit hash of the handle for the VFS caches: seven multiply-mix steps, no allocation.
    @inline(__always)
    func cacheHash(seed: UInt64) -> UInt64 {
        var h = CacheHash.mix(seed, UInt64(truncatingIfNeeded: count))
        h = CacheHash.mix(h, storage.0)
        h = CacheHash.mix(h, storage.1)
        h = CacheHash.mix(h, storage.2)
        h = CacheHash.mix(h, storage.3)
        h = CacheHash.mix(h, storage.4)
        h = CacheHash.mix(h, storage.5)
        return CacheHash.mix(h, storage.6)
    }

    public func hash(into hasher: inout Hasher) {
        withBytes { hasher.combine(bytes: $0) }
    }

    public var description: String {
        withBytes { $0.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
    }
}
