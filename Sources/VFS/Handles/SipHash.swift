/// SipHash-2-4 with 128-bit output (Aumasson & Bernstein): a keyed pseudo-random function for
/// short inputs. Used as the MAC of file handles — a few dozen nanoseconds and no allocation,
/// where OpenSSL's one-shot HMAC allocates contexts on every call.
struct SipHash128 {
    private let k0: UInt64
    private let k1: UInt64

    init(key: UnsafeRawBufferPointer) {
        precondition(key.count >= 16)
        k0 = UInt64(littleEndian: key.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        k1 = UInt64(littleEndian: key.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    }

    @inline(__always)
    private static func round(_ v0: inout UInt64, _ v1: inout UInt64, _ v2: inout UInt64, _ v3: inout UInt64) {
        v0 &+= v1; v1 = v1.rotatedLeft(13); v1 ^= v0; v0 = v0.rotatedLeft(32)
        v2 &+= v3; v3 = v3.rotatedLeft(16); v3 ^= v2
        v0 &+= v3; v3 = v3.rotatedLeft(21); v3 ^= v0
        v2 &+= v1; v1 = v1.rotatedLeft(17); v1 ^= v2; v2 = v2.rotatedLeft(32)
    }

    /// The 16-byte tag of `message`, as two little-endian words.
    func hash(_ message: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        var v0 = k0 ^ 0x736f_6d65_7073_6575
        var v1 = k1 ^ 0x646f_7261_6e64_6f6d ^ 0xee
        var v2 = k0 ^ 0x6c79_6765_6e65_7261
        var v3 = k1 ^ 0x7465_6462_7974_6573
        let blocks = message.count / 8
        for i in 0..<blocks {
            let m = UInt64(littleEndian: message.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
            v3 ^= m
            Self.round(&v0, &v1, &v2, &v3)
            Self.round(&v0, &v1, &v2, &v3)
            v0 ^= m
        }
        var last = UInt64(message.count & 0xff) << 56
        for i in 0..<(message.count & 7) {
            last |= UInt64(message[blocks * 8 + i]) << UInt64(8 * i)
        }
        v3 ^= last
        Self.round(&v0, &v1, &v2, &v3)
        Self.round(&v0, &v1, &v2, &v3)
        v0 ^= last
        v2 ^= 0xee
        for _ in 0..<4 { Self.round(&v0, &v1, &v2, &v3) }
        let first = v0 ^ v1 ^ v2 ^ v3
        v1 ^= 0xdd
        for _ in 0..<4 { Self.round(&v0, &v1, &v2, &v3) }
        return (first, v0 ^ v1 ^ v2 ^ v3)
    }
}

extension UInt64 {
    @inline(__always)
    fileprivate func rotatedLeft(_ count: UInt64) -> UInt64 { (self << count) | (self >> (64 - count)) }
}
