/// Writes XDR into memory the caller provides (the connection's output arena), without
/// allocation. Writing past the end is a programming error caught by a precondition; callers
/// reserve enough capacity for the largest reply they build.
public struct XDREncoder {
    public let base: UnsafeMutableRawPointer
    public let capacity: Int
    public private(set) var offset: Int = 0

    public init(_ buffer: UnsafeMutableRawBufferPointer) {
        base = buffer.baseAddress!
        capacity = buffer.count
    }

    public var remaining: Int { capacity - offset }

    @inline(__always)
    public mutating func uint32(_ value: UInt32) {
        precondition(remaining >= 4, "XDR reply overflows its buffer")
        (base + offset).storeBytes(of: value.bigEndian, as: UInt32.self)
        offset += 4
    }

    @inline(__always)
    public mutating func int32(_ value: Int32) { uint32(UInt32(bitPattern: value)) }

    @inline(__always)
    public mutating func uint64(_ value: UInt64) {
        precondition(remaining >= 8, "XDR reply overflows its buffer")
        (base + offset).storeBytes(of: value.bigEndian, as: UInt64.self)
        offset += 8
    }

    public mutating func int64(_ value: Int64) { uint64(UInt64(bitPattern: value)) }

    public mutating func bool(_ value: Bool) { uint32(value ? 1 : 0) }

    /// Bytes plus zero padding to a multiple of 4 (no length word).
    public mutating func fixedOpaque(_ bytes: UnsafeRawBufferPointer) {
        let padded = (bytes.count + 3) & ~3
        precondition(remaining >= padded, "XDR reply overflows its buffer")
        if !bytes.isEmpty { (base + offset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        for i in bytes.count..<padded { (base + offset + i).storeBytes(of: 0, as: UInt8.self) }
        offset += padded
    }

    public mutating func opaque(_ bytes: UnsafeRawBufferPointer) {
        uint32(UInt32(bytes.count))
        fixedOpaque(bytes)
    }

    public mutating func opaque(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { opaque($0) }
    }

    public mutating func string(_ text: String) {
        var text = text
        text.withUTF8 { opaque(UnsafeRawBufferPointer($0)) }
    }

    /// Reserves a 4-byte slot to fill in later (lengths known only at the end).
    public mutating func reserveUInt32() -> Int {
        let at = offset
        uint32(0)
        return at
    }

    public func patch(_ value: UInt32, at position: Int) {
        (base + position).storeBytes(of: value.bigEndian, as: UInt32.self)
    }

    /// Size in bytes of an XDR string or opaque of `count` bytes.
    public static func opaqueSize(_ count: Int) -> Int { 4 + ((count + 3) & ~3) }
}
