import ONCRPC

/// A growable XDR writer for COMPOUND results, whose size is known only once every operation
/// has run. The finished bytes are copied once into the connection's output arena.
public struct XDRWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 512) { bytes.reserveCapacity(capacity) }

    public var count: Int { bytes.count }

    public mutating func uint32(_ value: UInt32) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func int32(_ value: Int32) { uint32(UInt32(bitPattern: value)) }

    public mutating func uint64(_ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func int64(_ value: Int64) { uint64(UInt64(bitPattern: value)) }

    public mutating func bool(_ value: Bool) { uint32(value ? 1 : 0) }

    public mutating func fixedOpaque(_ data: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: data)
        let pad = (4 - data.count % 4) % 4
        for _ in 0..<pad { bytes.append(0) }
    }

    public mutating func fixedOpaque(_ data: [UInt8]) { data.withUnsafeBytes { fixedOpaque($0) } }

    public mutating func opaque(_ data: UnsafeRawBufferPointer) {
        uint32(UInt32(data.count))
        fixedOpaque(data)
    }

    public mutating func opaque(_ data: [UInt8]) { data.withUnsafeBytes { opaque($0) } }

    public mutating func string(_ text: String) { opaque(Array(text.utf8)) }

    /// Reserves a word to fill in later (a length known only after encoding what follows).
    public mutating func reserve() -> Int {
        uint32(0)
        return bytes.count - 4
    }

    public mutating func patch(_ value: UInt32, at position: Int) {
        withUnsafeBytes(of: value.bigEndian) { raw in
            for i in 0..<4 { bytes[position + i] = raw[i] }
        }
    }

    public mutating func append(_ other: [UInt8]) { bytes.append(contentsOf: other) }

    public mutating func truncate(to count: Int) { bytes.removeSubrange(count...) }
}

/// A bitmap4: words of attribute (or operation) bits, bit n in word n / 32.
public struct Bitmap4: Equatable, Sendable, CustomStringConvertible {
    public var words: [UInt32]

    public init(words: [UInt32] = []) { self.words = words }

    public init(_ bits: [Int]) {
        words = []
        for bit in bits { insert(bit) }
    }

    public func contains(_ bit: Int) -> Bool {
        let word = bit / 32
        return word < words.count && words[word] & (1 << UInt32(bit % 32)) != 0
    }

    public mutating func insert(_ bit: Int) {
        let word = bit / 32
        while words.count <= word { words.append(0) }
        words[word] |= 1 << UInt32(bit % 32)
    }

    public var isEmpty: Bool { words.allSatisfy { $0 == 0 } }

    /// The set bits, ascending.
    public var bits: [Int] {
        var out: [Int] = []
        for (index, word) in words.enumerated() where word != 0 {
            for bit in 0..<32 where word & (1 << UInt32(bit)) != 0 { out.append(index * 32 + bit) }
        }
        return out
    }

    public func intersection(_ other: Bitmap4) -> Bitmap4 {
        var out = Bitmap4(words: (0..<min(words.count, other.words.count)).map { words[$0] & other.words[$0] })
        while let last = out.words.last, last == 0 { out.words.removeLast() }
        return out
    }

    public func subtracting(_ other: Bitmap4) -> Bitmap4 {
        Bitmap4(words: words.enumerated().map { $0.element & ~(($0.offset < other.words.count) ? other.words[$0.offset] : 0) })
    }

    public func encode(_ writer: inout XDRWriter) {
        writer.uint32(UInt32(words.count))
        for word in words { writer.uint32(word) }
    }

    /// At most 8 words (256 attributes) are accepted.
    public static func decode(_ decoder: inout XDRDecoder) throws(XDRError) -> Bitmap4 {
        let count = Int(try decoder.uint32())
        guard count <= 8 else { throw XDRError() }
        var words: [UInt32] = []
        words.reserveCapacity(count)
        for _ in 0..<count { words.append(try decoder.uint32()) }
        return Bitmap4(words: words)
    }

    public var description: String { "\(bits)" }
}
