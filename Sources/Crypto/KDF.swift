/// The SP800-108 key derivation function in counter mode with HMAC-SHA-256, as SMB 3.x uses it
/// (MS-SMB2 §3.1.4.2): one PRF block per 256 bits of output, r = 32, and the label and
/// context separated by a zero byte.
public enum KDF {
    /// `bits` of key material (128 or 256) derived from `key` with `label` and `context`.
    public static func counterHMACSHA256(key: [UInt8], label: [UInt8], context: [UInt8], bits: Int) -> [UInt8] {
        let prf = HMACSHA256(key: key)
        var output: [UInt8] = []
        var counter: UInt32 = 1
        let lengthBits = UInt32(bits)
        while output.count * 8 < bits {
            var input: [UInt8] = []
            input.reserveCapacity(4 + label.count + 1 + context.count + 4)
            input += withUnsafeBytes(of: counter.bigEndian, Array.init)
            input += label
            input.append(0)
            input += context
            input += withUnsafeBytes(of: lengthBits.bigEndian, Array.init)
            output += input.withUnsafeBytes { prf.mac($0) }
            counter += 1
        }
        return Array(output[0..<(bits / 8)])
    }
}
