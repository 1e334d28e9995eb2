/// A block of memory owned by one loop's `BufferPool`, reference counted by hand.
///
/// The count is a plain integer, not an atomic: a buffer is only ever retained and released
/// on its owning loop's thread (requests are decoded, executed and answered there), so there
/// is no cross-core cache-line traffic. When the count reaches zero the block goes back to the
/// pool's free list and is reused, never freed per operation.
public final class IOBuffer {
    public let base: UnsafeMutableRawPointer
    public let capacity: Int
    /// Index of the pool's size class this buffer belongs to.
    let sizeClass: Int
    unowned let pool: BufferPool
    var references: Int = 0

    init(base: UnsafeMutableRawPointer, capacity: Int, sizeClass: Int, pool: BufferPool) {
        self.base = base
        self.capacity = capacity
        self.sizeClass = sizeClass
        self.pool = pool
    }

    /// Live references; 0 means the buffer sits in its pool's free list.
    public var referenceCount: Int { references }

    public func retain() {
        precondition(references > 0, "IOBuffer retained after it went back to its pool")
        references += 1
    }

    public func release() {
        precondition(references > 0, "IOBuffer released more often than retained (double free)")
        references -= 1
        if references == 0 { pool.recycle(self) }
    }

    /// The bytes in `range` as a buffer pointer (no copy).
    @inline(__always)
    public func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count)
    }
}

/// A range of bytes inside an `IOBuffer`: what parsers see of received data and what the send
/// path gathers into iovecs. Holding a slice does not keep the buffer alive; call `retain()` on
/// the slice to keep it past the callback that handed it over.
public struct ByteSlice {
    public let buffer: IOBuffer
    public let range: Range<Int>

    public init(buffer: IOBuffer, range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= buffer.capacity, "slice outside its buffer")
        self.buffer = buffer
        self.range = range
    }

    public var count: Int { range.count }
    public var isEmpty: Bool { range.isEmpty }

    /// The bytes, without a copy.
    @inline(__always)
    public var unsafeBytes: UnsafeRawBufferPointer { buffer.bytes(range) }

    /// A sub-slice; `subrange` is relative to this slice.
    public func slice(_ subrange: Range<Int>) -> ByteSlice {
        precondition(subrange.lowerBound >= 0 && subrange.upperBound <= count, "sub-slice outside slice")
        return ByteSlice(buffer: buffer, range: (range.lowerBound + subrange.lowerBound)..<(range.lowerBound + subrange.upperBound))
    }

    public func retain() { buffer.retain() }
    public func release() { buffer.release() }
}
