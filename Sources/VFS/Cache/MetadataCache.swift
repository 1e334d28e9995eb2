import Runtime
import Synchronization

/// How a backend wants the VFS to cache its names and attributes (`FileSystemBackend.metadataCachePolicy`).
public struct MetadataCachePolicy: Sendable, Equatable {
    /// How long a cached name or attribute set is believed without asking the backend again,
    /// in nanoseconds. Changes made through the VFS are seen at once whatever this is; the TTL
    /// bounds how long a change made behind the server's back (a process on the host writing
    /// the served directory) can go unseen. 0 turns caching off.
    public var ttlNanoseconds: UInt64
    /// What a miss asks the backend for when the caller wants any attributes at all: every
    /// attribute the backend gets for the price of one (one statx for linux), so the next
    /// request with another mask hits. A request for no attributes still asks for none.
    public var fillMask: AttributeMask

    public init(ttlNanoseconds: UInt64 = MetadataCachePolicy.defaultTTLNanoseconds, fillMask: AttributeMask = .all) {
        self.ttlNanoseconds = ttlNanoseconds
        self.fillMask = fillMask
    }

    /// One second: the default for backends that can change underneath (linux, io_uring).
    public static let defaultTTLNanoseconds: UInt64 = 1_000_000_000
}

/// Up to 64 bytes of a name, inline.
typealias NameWords = (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

/// A name-cache key: a directory handle and an entry name (not "." or "..", at most
/// `NameKey.maxLength` bytes: longer names are not cached). Built on the stack, no allocation.
struct NameKey {
    static let maxLength = 64

    var directory: FileHandle
    var words: NameWords = (0, 0, 0, 0, 0, 0, 0, 0)
    var length: UInt8 = 0
    /// Never 0.
    var hash: UInt64 = 0

    @inline(__always)
    init?(_ directory: FileHandle, _ name: String, seed: UInt64) {
        self.directory = directory
        let utf8 = name.utf8
        let count = utf8.count
        guard count > 0, count <= Self.maxLength else { return nil }
        if count <= 2, name == "." || name == ".." { return nil }
        var words: NameWords = (0, 0, 0, 0, 0, 0, 0, 0)
        let copied = utf8.withContiguousStorageIfAvailable { source -> Bool in
            withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: UnsafeRawBufferPointer(source)) }
            return true
        }
        guard copied == true else { return nil }
        self.words = words
        length = UInt8(count)
        var h = directory.cacheHash(seed: seed)
        h = CacheHash.mix(h, UInt64(count))
        h = CacheHash.mix(h, words.0)
        if count > 8 {
            h = CacheHash.mix(h, words.1)
            h = CacheHash.mix(h, words.2)
            h = CacheHash.mix(h, words.3)
            if count > 32 {
                h = CacheHash.mix(h, words.4)
                h = CacheHash.mix(h, words.5)
                h = CacheHash.mix(h, words.6)
                h = CacheHash.mix(h, words.7)
            }
        }
        hash = CacheHash.finish(h)
    }
}

/// One name-cache entry: (directory, name) → child handle, or "no such name".
struct NameSlot: CacheSlot {
    var hash: UInt64
    var expires: UInt64
    var directory: FileHandle
    var child: FileHandle
    var words: NameWords
    var length: UInt8
    var negative: Bool
    var referenced: Bool

    @inline(__always)
    func matches(_ key: NameKey) -> Bool {
        hash == key.hash && length == key.length && directory == key.directory
            && words.0 == key.words.0 && words.1 == key.words.1 && words.2 == key.words.2 && words.3 == key.words.3
            && words.4 == key.words.4 && words.5 == key.words.5 && words.6 == key.words.6 && words.7 == key.words.7
    }
}

/// One attribute-cache entry: a handle's attributes. `answered` is the mask the backend was
/// asked for (a superset of `attributes.valid` when the backend lacks some, such as birth
/// time): a request for any subset of it is a hit, and gets what the backend would have said.
struct AttributeSlot: CacheSlot {
    var hash: UInt64
    var expires: UInt64
    var handle: FileHandle
    var attributes: Attributes
    var answered: AttributeMask
    var referenced: Bool
}

/// What the name cache says about a name.
enum NameProbe: Sendable {
    case miss
    case negative
    case child(FileHandle)
}

/// The VFS's shared name and attribute caches (one per `VirtualFileSystem`, every loop thread
/// and protocol uses it). Both are `ShardedTable`s: fixed size, set-associative, one mutex
/// per shard, no allocation after start.
///
/// **Coherence.** Every operation notes the monotonic time `t0` before it calls the backend.
/// A value read from a backend (a "fill": getattr, lookup, readdir, commit) is stored only if
/// no mutation touching its bucket has *ended* since `t0` (`BucketHeader.stamp < t0`). A
/// mutation, when it ends, stores what it knows the keys became under the same condition,
/// removes them otherwise, and stamps their buckets with its end time. So a fill that read
/// the backend before a mutation took effect can never overwrite what that mutation left,
/// two concurrent mutations of one key leave it uncached rather than in the wrong order, and
/// a mutation that has ended is seen by every later call on every thread. Entries expire
/// after the mount's TTL (changes behind the server's back).
final class MetadataCache: @unchecked Sendable {
    /// Mounts with an id at or above this are never cached.
    static let maxMounts = 1024
    static let defaultCapacity = 32768
    static let shards = 64

    let names: ShardedTable<NameSlot>
    let attributes: ShardedTable<AttributeSlot>
    let counters = CacheCounters()
    let seed: UInt64
    /// Per mount id: TTL in ns (0: not cached) and the fill mask. Written when mounting.
    private let ttls: UnsafeMutablePointer<Atomic<UInt64>>
    private let fills: UnsafeMutablePointer<Atomic<UInt32>>

    init(nameCapacity: Int = MetadataCache.defaultCapacity, attributeCapacity: Int = MetadataCache.defaultCapacity) {
        names = ShardedTable(capacity: max(nameCapacity, 1), shards: Self.shards)
        attributes = ShardedTable(capacity: max(attributeCapacity, 1), shards: Self.shards)
        seed = UInt64.random(in: 1...UInt64.max)
        ttls = .allocate(capacity: Self.maxMounts)
        fills = .allocate(capacity: Self.maxMounts)
        for index in 0..<Self.maxMounts {
            (ttls + index).initialize(to: Atomic(0))
            (fills + index).initialize(to: Atomic(0))
        }
    }

    deinit {
        ttls.deinitialize(count: Self.maxMounts)
        fills.deinitialize(count: Self.maxMounts)
        ttls.deallocate()
        fills.deallocate()
    }

    // MARK: Policy

    func setPolicy(mount: UInt16, _ policy: MetadataCachePolicy?) {
        guard Int(mount) < Self.maxMounts else { return }
        fills[Int(mount)].store(policy?.fillMask.rawValue ?? 0, ordering: .relaxed)
        ttls[Int(mount)].store(policy?.ttlNanoseconds ?? 0, ordering: .releasing)
    }

    /// The TTL of the mount a handle belongs to; 0 when it is not cached.
    @inline(__always)
    func ttl(_ handle: FileHandle) -> UInt64 {
        let mount = Int(handle.mountID)
        guard mount < Self.maxMounts else { return 0 }
        return ttls[mount].load(ordering: .acquiring)
    }

    @inline(__always)
    func fillMask(_ handle: FileHandle) -> AttributeMask {
        let mount = Int(handle.mountID)
        guard mount < Self.maxMounts else { return [] }
        return AttributeMask(rawValue: fills[mount].load(ordering: .relaxed))
    }

    @inline(__always)
    func key(_ directory: FileHandle, _ name: String) -> NameKey? {
        NameKey(directory, name, seed: seed)
    }

    @inline(__always)
    func hash(_ handle: FileHandle) -> UInt64 {
        CacheHash.finish(handle.cacheHash(seed: seed))
    }

    // MARK: Names

    /// The cached answer for `key`, if one is live at `now`.
    @inline(__always)
    func name(_ key: NameKey, now: UInt64) -> NameProbe {
        names.withBucket(key.hash) { _, ways in
            for way in 0..<ShardedTable<NameSlot>.ways where ways[way].matches(key) {
                if ways[way].expires <= now {
                    ways[way].hash = 0
                    return .miss
                }
                ways[way].referenced = true
                return ways[way].negative ? .negative : .child(ways[way].child)
            }
            return .miss
        }
    }

    /// The handle cached for `key`, live or expired (what a remove or rename is about to
    /// change), or nil.
    func cachedChild(_ key: NameKey) -> FileHandle? {
        names.withBucket(key.hash) { _, ways in
            for way in 0..<ShardedTable<NameSlot>.ways where ways[way].matches(key) {
                return ways[way].negative ? nil : ways[way].child
            }
            return nil
        }
    }

    /// Stores `child` (nil: a negative entry) for `key` if no mutation of its bucket ended
    /// since `startedAt`. With `mutationEnd` (the caller is a mutation that has ended), a
    /// value it may not store is removed instead, and the bucket is stamped.
    @discardableResult
    func storeName(_ key: NameKey, child: FileHandle?, startedAt: UInt64, expires: UInt64, mutationEnd: UInt64? = nil) -> Bool {
        let (stored, evicted, invalidated) = names.withBucket(key.hash) { header, ways -> (Bool, Bool, Bool) in
            var existing: UnsafeMutablePointer<NameSlot>?
            for way in 0..<ShardedTable<NameSlot>.ways where ways[way].matches(key) { existing = ways + way }
            var result = (false, false, false)
            if header.pointee.stamp < startedAt {
                let slot: UnsafeMutablePointer<NameSlot>
                if let existing {
                    slot = existing
                } else {
                    let victim = ShardedTable<NameSlot>.victim(header, ways, now: startedAt)
                    slot = victim.slot
                    result.1 = victim.evicted
                }
                slot.pointee = NameSlot(hash: key.hash, expires: expires, directory: key.directory,
                                        child: child ?? key.directory, words: key.words, length: key.length,
                                        negative: child == nil, referenced: false)
                result.0 = true
            } else if let existing, mutationEnd != nil {
                existing.pointee.hash = 0
                result.2 = true
            }
            if let mutationEnd { ShardedTable<NameSlot>.stamp(header, mutationEnd) }
            return result
        }
        if evicted { counters.add(.evictions) }
        if invalidated { counters.add(.invalidations) }
        if !stored && mutationEnd == nil { counters.add(.droppedFills) }
        return stored
    }

    /// Removes `key`; with `mutationEnd`, stamps its bucket.
    func removeName(_ key: NameKey, mutationEnd: UInt64?) {
        let removed = names.withBucket(key.hash) { header, ways -> Bool in
            var removed = false
            for way in 0..<ShardedTable<NameSlot>.ways where ways[way].matches(key) {
                ways[way].hash = 0
                removed = true
            }
            if let mutationEnd { ShardedTable<NameSlot>.stamp(header, mutationEnd) }
            return removed
        }
        if removed { counters.add(.invalidations) }
    }

    // MARK: Attributes

    /// The cached attributes of `handle` if they are live at `now` and answer every attribute
    /// in `mask` (all of them, not masked: the caller masks).
    @inline(__always)
    func attributes(_ handle: FileHandle, covering mask: AttributeMask, now: UInt64) -> Attributes? {
        let hash = hash(handle)
        return attributes.withBucket(hash) { _, ways -> Attributes? in
            for way in 0..<ShardedTable<AttributeSlot>.ways where ways[way].hash == hash && ways[way].handle == handle {
                if ways[way].expires <= now {
                    ways[way].hash = 0
                    return nil
                }
                guard ways[way].answered.isSuperset(of: mask) else { return nil }
                ways[way].referenced = true
                return ways[way].attributes
            }
            return nil
        }
    }

    /// Like `storeName`, for attributes that answer `answered`. Nothing answered is not
    /// stored (with `mutationEnd`, the entry is removed).
    @discardableResult
    func storeAttributes(_ handle: FileHandle, _ value: Attributes, answered: AttributeMask, startedAt: UInt64, expires: UInt64, mutationEnd: UInt64? = nil) -> Bool {
        let hash = hash(handle)
        let (stored, evicted, invalidated) = attributes.withBucket(hash) { header, ways -> (Bool, Bool, Bool) in
            var existing: UnsafeMutablePointer<AttributeSlot>?
            for way in 0..<ShardedTable<AttributeSlot>.ways where ways[way].hash == hash && ways[way].handle == handle {
                existing = ways + way
            }
            var result = (false, false, false)
            if header.pointee.stamp < startedAt && !answered.isEmpty {
                let slot: UnsafeMutablePointer<AttributeSlot>
                if let existing {
                    slot = existing
                } else {
                    let victim = ShardedTable<AttributeSlot>.victim(header, ways, now: startedAt)
                    slot = victim.slot
                    result.1 = victim.evicted
                }
                slot.pointee = AttributeSlot(hash: hash, expires: expires, handle: handle, attributes: value,
                                             answered: answered.union(value.valid), referenced: false)
                result.0 = true
            } else if let existing, mutationEnd != nil {
                existing.pointee.hash = 0
                result.2 = true
            }
            if let mutationEnd { ShardedTable<AttributeSlot>.stamp(header, mutationEnd) }
            return result
        }
        if evicted { counters.add(.evictions) }
        if invalidated { counters.add(.invalidations) }
        if !stored && mutationEnd == nil && !answered.isEmpty { counters.add(.droppedFills) }
        return stored
    }

    /// Removes the attributes of `handle`; with `mutationEnd`, stamps the bucket.
    func removeAttributes(_ handle: FileHandle, mutationEnd: UInt64?) {
        let hash = hash(handle)
        let removed = attributes.withBucket(hash) { header, ways -> Bool in
            var removed = false
            for way in 0..<ShardedTable<AttributeSlot>.ways where ways[way].hash == hash && ways[way].handle == handle {
                ways[way].hash = 0
                removed = true
            }
            if let mutationEnd { ShardedTable<AttributeSlot>.stamp(header, mutationEnd) }
            return removed
        }
        if removed { counters.add(.invalidations) }
    }

    // MARK: Statistics

    func statistics() -> MetadataCacheStatistics {
        let (loops, other) = counters.snapshot()
        return MetadataCacheStatistics(loops: loops, otherThreads: other, nameCapacity: names.capacity,
                                       attributeCapacity: attributes.capacity)
    }
}
