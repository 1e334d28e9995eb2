/// Little-endian reading of client bytes, every access bounds-checked: a short or lying
/// message throws `NTStatus.invalidParameter` and never reads outside what was received.
struct SMBReader {
    let bytes: UnsafeRawBufferPointer
    var offset: Int

    init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    @inline(__always)
    private func check(_ at: Int, _ count: Int) throws(NTStatus) {
        guard at >= 0, count >= 0, at <= bytes.count, count <= bytes.count - at else { throw .invalidParameter }
    }

    @inline(__always)
    func u8(at position: Int) throws(NTStatus) -> UInt8 {
        try check(position, 1)
        return bytes[position]
    }

    @inline(__always)
    func u16(at position: Int) throws(NTStatus) -> UInt16 {
        try check(position, 2)
        return UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt16.self))
    }

    @inline(__always)
    func u32(at position: Int) throws(NTStatus) -> UInt32 {
        try check(position, 4)
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt32.self))
    }

    @inline(__always)
    func u64(at position: Int) throws(NTStatus) -> UInt64 {
        try check(position, 8)
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt64.self))
    }

    /// `count` bytes at `position`, without a copy.
    func slice(at position: Int, count: Int) throws(NTStatus) -> UnsafeRawBufferPointer {
        try check(position, count)
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + count)])
    }

    mutating func u8() throws(NTStatus) -> UInt8 { defer { offset += 1 }; return try u8(at: offset) }
    mutating func u16() throws(NTStatus) -> UInt16 { defer { offset += 2 }; return try u16(at: offset) }
    mutating func u32() throws(NTStatus) -> UInt32 { defer { offset += 4 }; return try u32(at: offset) }
    mutating func u64() throws(NTStatus) -> UInt64 { defer { offset += 8 }; return try u64(at: offset) }

    mutating func bytes(_ count: Int) throws(NTStatus) -> UnsafeRawBufferPointer {
        let result = try slice(at: offset, count: count)
        offset += count
        return result
    }

    mutating func skip(_ count: Int) throws(NTStatus) {
        try check(offset, count)
        offset += count
    }

    /// A UTF-16LE string of `count` bytes at `position` (odd lengths and unpaired surrogates
    /// are refused: names must round-trip).
    func utf16(at position: Int, count: Int) throws(NTStatus) -> String {
        guard count % 2 == 0 else { throw .invalidParameter }
        let raw = try slice(at: position, count: count)
        var units: [UInt16] = []
        units.reserveCapacity(count / 2)
        for i in stride(from: 0, to: count, by: 2) {
            units.append(UInt16(raw[i]) | UInt16(raw[i + 1]) << 8)
        }
        var out = String.UnicodeScalarView()
        var iterator = units.makeIterator()
        var decoder = UTF16()
        loop: while true {
            switch decoder.decode(&iterator) {
            case let .scalarValue(scalar): out.append(scalar)
            case .emptyInput: break loop
            case .error: throw .objectNameInvalid
            }
        }
        return String(out)
    }
}

/// Little-endian encoding into memory reserved beforehand (the loop's output arena or a
/// reply buffer). Capacity is an invariant computed by the caller, not client input.
struct SMBWriter {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    var offset: Int

    init(_ base: UnsafeMutableRawPointer, capacity: Int, offset: Int = 0) {
        self.base = base
        self.capacity = capacity
        self.offset = offset
    }

    var remaining: Int { capacity - offset }

    @inline(__always)
    private func reserve(_ count: Int) {
        precondition(offset + count <= capacity, "SMB reply larger than its reserved space")
    }

    @inline(__always) mutating func u8(_ value: UInt8) { reserve(1); base.storeBytes(of: value, toByteOffset: offset, as: UInt8.self); offset += 1 }
    @inline(__always) mutating func u16(_ value: UInt16) { reserve(2); base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt16.self); offset += 2 }
    @inline(__always) mutating func u32(_ value: UInt32) { reserve(4); base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self); offset += 4 }
    @inline(__always) mutating func u64(_ value: UInt64) { reserve(8); base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt64.self); offset += 8 }

    mutating func bytes(_ value: UnsafeRawBufferPointer) {
        guard !value.isEmpty else { return }
        reserve(value.count)
        (base + offset).copyMemory(from: value.baseAddress!, byteCount: value.count)
        offset += value.count
    }

    mutating func bytes(_ value: [UInt8]) {
        value.withUnsafeBytes { bytes($0) }
    }

    mutating func zeros(_ count: Int) {
        guard count > 0 else { return }
        reserve(count)
        (base + offset).initializeMemory(as: UInt8.self, repeating: 0, count: count)
        offset += count
    }

    /// Zero padding up to a multiple of `alignment` (relative to `base`).
    mutating func align(_ alignment: Int) {
        zeros((alignment - offset % alignment) % alignment)
    }

    /// `value` as UTF-16LE without a terminator; returns the byte count.
    @discardableResult
    mutating func utf16(_ value: String) -> Int {
        let start = offset
        for unit in value.utf16 { u16(unit) }
        return offset - start
    }

    func patch16(_ value: UInt16, at position: Int) { base.storeBytes(of: value.littleEndian, toByteOffset: position, as: UInt16.self) }
    func patch32(_ value: UInt32, at position: Int) { base.storeBytes(of: value.littleEndian, toByteOffset: position, as: UInt32.self) }
    func patch64(_ value: UInt64, at position: Int) { base.storeBytes(of: value.littleEndian, toByteOffset: position, as: UInt64.self) }

    var written: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: offset) }
}

/// Byte-array helpers for the authentication path (small messages, built once per login).
enum Bytes {
    static func utf16(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf16.count * 2)
        for unit in text.utf16 {
            out.append(UInt8(unit & 0xFF))
            out.append(UInt8(unit >> 8))
        }
        return out
    }

    static func le16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8)] }
    static func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
    static func le64(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

    static func random(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    /// Constant-time comparison (MACs and NTLM proofs).
    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<a.count { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}
