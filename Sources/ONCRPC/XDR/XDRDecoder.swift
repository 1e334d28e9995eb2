/// A malformed or truncated XDR item (answered with GARBAGE_ARGS).
public struct XDRError: Error, Equatable {
    public init() {}
}

/// Reads XDR (RFC 4506) from received bytes without copying: opaque data comes back as a view
/// into the same buffer. Every length is checked against the bytes left and a caller-given
/// maximum before it is used.
/// A decoder views memory its call keeps alive and is used on that call's loop only, hence the
/// unchecked conformance.
public struct XDRDecoder: @unchecked Sendable {
    public let bytes: UnsafeRawBufferPointer
    public private(set) var offset: Int = 0

    public init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    public var remaining: Int { bytes.count - offset }
    public var isAtEnd: Bool { offset == bytes.count }

    @inline(__always)
    public mutating func uint32() throws(XDRError) -> UInt32 {
        guard remaining >= 4 else { throw XDRError() }
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
        offset += 4
        return UInt32(bigEndian: value)
    }

    @inline(__always)
    public mutating func int32() throws(XDRError) -> Int32 { Int32(bitPattern: try uint32()) }

    @inline(__always)
    public mutating func uint64() throws(XDRError) -> UInt64 {
        guard remaining >= 8 else { throw XDRError() }
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        offset += 8
        return UInt64(bigEndian: value)
    }

    public mutating func int64() throws(XDRError) -> Int64 { Int64(bitPattern: try uint64()) }

    public mutating func bool() throws(XDRError) -> Bool {
        switch try uint32() {
        case 0: return false
        case 1: return true
        default: throw XDRError()
        }
    }

    /// Variable-length opaque of at most `maximum` bytes, as a view (no copy).
    public mutating func opaque(maximum: Int) throws(XDRError) -> UnsafeRawBufferPointer {
        let length = Int(try uint32())
        return try fixedOpaque(length, maximum: maximum)
    }

    /// `length` bytes plus padding to a multiple of 4, as a view.
    public mutating func fixedOpaque(_ length: Int, maximum: Int = Int.max) throws(XDRError) -> UnsafeRawBufferPointer {
        let padded = (length + 3) & ~3
        guard length >= 0, length <= maximum, padded <= remaining else { throw XDRError() }
        let view = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
        offset += padded
        return view
    }

    /// A string of at most `maximum` bytes; invalid UTF-8 is refused.
    public mutating func string(maximum: Int) throws(XDRError) -> String {
        let raw = try opaque(maximum: maximum)
        guard let text = String(validating: raw, as: UTF8.self) else { throw XDRError() }
        return text
    }

    public mutating func skip(_ count: Int) throws(XDRError) {
        guard count >= 0, count <= remaining else { throw XDRError() }
        offset += count
    }
}
