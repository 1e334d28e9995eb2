import Runtime
import Synchronization

/// Hit and miss counts of the VFS metadata caches (one loop thread's, or merged).
public struct MetadataCacheCounters: Sendable, Equatable {
    /// Lookups answered from the cache with a handle.
    public var lookupHits: UInt64 = 0
    /// Lookups answered from the cache with "no such name" (a negative entry).
    public var negativeHits: UInt64 = 0
    /// Lookups that went to the backend (cachable mounts only).
    public var lookupMisses: UInt64 = 0
    /// Attribute requests answered from the cache (protocol GETATTRs and the VFS's own
    /// permission checks alike).
    public var getattrHits: UInt64 = 0
    public var getattrMisses: UInt64 = 0
    /// Entries dropped because a mutation could not say what they became.
    public var invalidations: UInt64 = 0
    /// Live entries given up to make room (the tables have a fixed size).
    public var evictions: UInt64 = 0
    /// Values read from a backend and not stored because a mutation of the same keys ended
    /// while they were being read.
    public var droppedFills: UInt64 = 0

    public init() {}

    public var hits: UInt64 { lookupHits &+ negativeHits &+ getattrHits }
    public var misses: UInt64 { lookupMisses &+ getattrMisses }

    public mutating func add(_ other: MetadataCacheCounters) {
        lookupHits &+= other.lookupHits
        negativeHits &+= other.negativeHits
        lookupMisses &+= other.lookupMisses
        getattrHits &+= other.getattrHits
        getattrMisses &+= other.getattrMisses
        invalidations &+= other.invalidations
        evictions &+= other.evictions
        droppedFills &+= other.droppedFills
    }

    var isZero: Bool { self == MetadataCacheCounters() }
}

/// A snapshot of the metadata caches: counters per loop thread and merged, and the sizes.
public struct MetadataCacheStatistics: Sendable, Equatable {
    /// Counters recorded on loop thread `i` (`EventLoop.index`) at index `i`, up to the last
    /// loop that recorded anything.
    public var loops: [MetadataCacheCounters]
    /// Calls made off the loop threads (start-up path resolution, tools, tests).
    public var otherThreads: MetadataCacheCounters
    /// Slots of the name cache and of the attribute cache.
    public var nameCapacity: Int
    public var attributeCapacity: Int

    /// Everything merged.
    public var total: MetadataCacheCounters {
        var sum = otherThreads
        for loop in loops { sum.add(loop) }
        return sum
    }
}

/// Which counter an event goes to.
enum CacheCounter: Int {
    case lookupHits, negativeHits, lookupMisses, getattrHits, getattrMisses, invalidations, evictions, droppedFills
    static let count = 8
}

/// Per-thread counters: one 64-byte block per loop index, written only by that loop's thread
/// (a relaxed load and store, no read-modify-write, so no cache line is shared on the hot
/// path), plus one block for all other threads (atomic adds; those calls are rare). Readers
/// merge the blocks when they ask.
final class CacheCounters: @unchecked Sendable {
    /// Loop indexes at or above this share the "other threads" block.
    static let loopSlots = 1024
    private let cells: UnsafeMutablePointer<Atomic<UInt64>>

    init() {
        let count = (Self.loopSlots + 1) * CacheCounter.count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Atomic<UInt64>>.stride, alignment: 64)
        cells = raw.bindMemory(to: Atomic<UInt64>.self, capacity: count)
        for index in 0..<count { (cells + index).initialize(to: Atomic(0)) }
    }

    deinit {
        cells.deinitialize(count: (Self.loopSlots + 1) * CacheCounter.count)
        UnsafeMutableRawPointer(cells).deallocate()
    }

    @inline(__always)
    func add(_ counter: CacheCounter, _ amount: UInt64 = 1) {
        if let index = EventLoop.currentIndex, index < Self.loopSlots {
            let cell = cells + (index &* CacheCounter.count &+ counter.rawValue)
            cell.pointee.store(cell.pointee.load(ordering: .relaxed) &+ amount, ordering: .relaxed)
        } else {
            (cells + (Self.loopSlots &* CacheCounter.count &+ counter.rawValue)).pointee.wrappingAdd(amount, ordering: .relaxed)
        }
    }

    private func block(_ slot: Int) -> MetadataCacheCounters {
        let base = cells + slot * CacheCounter.count
        func value(_ counter: CacheCounter) -> UInt64 { (base + counter.rawValue).pointee.load(ordering: .relaxed) }
        var counters = MetadataCacheCounters()
        counters.lookupHits = value(.lookupHits)
        counters.negativeHits = value(.negativeHits)
        counters.lookupMisses = value(.lookupMisses)
        counters.getattrHits = value(.getattrHits)
        counters.getattrMisses = value(.getattrMisses)
        counters.invalidations = value(.invalidations)
        counters.evictions = value(.evictions)
        counters.droppedFills = value(.droppedFills)
        return counters
    }

    func snapshot() -> (loops: [MetadataCacheCounters], other: MetadataCacheCounters) {
        var loops = (0..<Self.loopSlots).map(block)
        while let last = loops.last, last.isZero { loops.removeLast() }
        return (loops, block(Self.loopSlots))
    }
}
