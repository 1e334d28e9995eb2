import Glibc
import Synchronization

/// Multiply-mix hashing for cache keys (the wyhash "mum" step): a few nanoseconds, no state.
enum CacheHash {
    @inline(__always)
    static func mix(_ h: UInt64, _ v: UInt64) -> UInt64 {
        let product = (h ^ v).multipliedFullWidth(by: 0x9E37_79B9_7F4A_7C15)
        return product.high ^ product.low
    }

    /// A non-zero hash (zero marks an empty slot).
    @inline(__always)
    static func finish(_ h: UInt64) -> UInt64 {
        let product = h.multipliedFullWidth(by: 0xBF58_476D_1CE4_E5B9)
        return (product.high ^ product.low) | 1
    }
}

/// What every cache slot has: its key's hash (0: empty), when it stops being believed, and
/// the CLOCK reference bit.
protocol CacheSlot: BitwiseCopyable {
    var hash: UInt64 { get set }
    var expires: UInt64 { get }
    var referenced: Bool { get set }
}

/// Per-bucket bookkeeping.
struct BucketHeader {
    /// Monotonic time (ns) at which the last mutation that touched a key of this bucket ended.
    /// A value read from a backend that started before this time may be older than what that
    /// mutation made, so it is not stored (see `MetadataCache`).
    var stamp: UInt64
    /// The CLOCK hand: where the next eviction scan starts.
    var hand: UInt32
    var reserved: UInt32
}

/// A fixed-size, set-associative hash table of trivial slots, shared by every thread: a key
/// hashes to one bucket of `ways` slots; a bucket belongs to one of `shards` mutexes (buckets
/// are interleaved over shards, so neighbours do not share a lock). There is no global lock,
/// nothing is allocated after `init`, and a full bucket recycles a slot in place (CLOCK
/// replacement), so memory never grows: the table is `capacity` slots for its whole life.
///
/// The slot memory comes from calloc, whose pages stay untouched (and cost no resident memory)
/// until a slot in them is first written; a slot whose hash is 0 is empty and nothing else of
/// it is read.
final class ShardedTable<Slot: CacheSlot>: @unchecked Sendable {
    static var ways: Int { 4 }
    static var lockStride: Int { 64 }

    let bucketCount: Int
    private let bucketMask: UInt64
    private let shardMask: Int
    private let shardCount: Int
    /// One Mutex per 64-byte line (no false sharing between shards).
    private let locks: UnsafeMutableRawPointer
    private let headers: UnsafeMutablePointer<BucketHeader>
    private let slots: UnsafeMutablePointer<Slot>

    /// At least `capacity` slots (rounded up to a power-of-two number of buckets).
    init(capacity: Int, shards: Int) {
        precondition(shards > 0 && shards & (shards - 1) == 0, "shards must be a power of two")
        precondition(MemoryLayout<Mutex<Void>>.stride <= Self.lockStride)
        var buckets = shards
        while buckets * Self.ways < capacity { buckets <<= 1 }
        bucketCount = buckets
        bucketMask = UInt64(buckets - 1)
        shardMask = shards - 1
        shardCount = shards
        headers = calloc(buckets, MemoryLayout<BucketHeader>.stride)!.bindMemory(to: BucketHeader.self, capacity: buckets)
        slots = calloc(buckets * Self.ways, MemoryLayout<Slot>.stride)!.bindMemory(to: Slot.self, capacity: buckets * Self.ways)
        locks = UnsafeMutableRawPointer.allocate(byteCount: shards * Self.lockStride, alignment: Self.lockStride)
        for shard in 0..<shards {
            (locks + shard * Self.lockStride).bindMemory(to: Mutex<Void>.self, capacity: 1).initialize(to: Mutex(()))
        }
    }

    deinit {
        for shard in 0..<shardCount {
            (locks + shard * Self.lockStride).assumingMemoryBound(to: Mutex<Void>.self).deinitialize(count: 1)
        }
        locks.deallocate()
        free(headers)
        free(slots)
    }

    var capacity: Int { bucketCount * Self.ways }

    /// Runs `body` with the bucket of `hash` locked: its header and its `ways` slots.
    @inline(__always)
    func withBucket<R: Sendable>(_ hash: UInt64, _ body: (UnsafeMutablePointer<BucketHeader>, UnsafeMutablePointer<Slot>) -> R) -> R {
        let bucket = Int(truncatingIfNeeded: (hash >> 8) & bucketMask)
        let lock = (locks + (bucket & shardMask) &* Self.lockStride).assumingMemoryBound(to: Mutex<Void>.self)
        let header = headers + bucket
        let ways = slots + bucket &* Self.ways
        return lock.pointee.withLock { _ in body(header, ways) }
    }

    /// The slot to (re)use in a locked bucket for a key not in it: an empty one, else an
    /// expired one, else the first the CLOCK hand finds not referenced since its last pass.
    /// `evicted` is true when a live entry is given up.
    @inline(__always)
    static func victim(_ header: UnsafeMutablePointer<BucketHeader>, _ ways: UnsafeMutablePointer<Slot>, now: UInt64) -> (slot: UnsafeMutablePointer<Slot>, evicted: Bool) {
        for way in 0..<Self.ways where ways[way].hash == 0 { return (ways + way, false) }
        for way in 0..<Self.ways where ways[way].expires <= now { return (ways + way, false) }
        var hand = Int(header.pointee.hand)
        while true {
            let way = hand & (Self.ways - 1)
            hand &+= 1
            if ways[way].referenced {
                ways[way].referenced = false
            } else {
                header.pointee.hand = UInt32(truncatingIfNeeded: hand)
                return (ways + way, true)
            }
        }
    }

    /// Marks a locked bucket as touched by a mutation that ended at `end` (strictly increasing).
    @inline(__always)
    static func stamp(_ header: UnsafeMutablePointer<BucketHeader>, _ end: UInt64) {
        header.pointee.stamp = max(end, header.pointee.stamp &+ 1)
    }
}
