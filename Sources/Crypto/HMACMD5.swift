import COpenSSL

/// HMAC-MD5 (RFC 2104), the MAC of NTLMv2 (MS-NLMP §3.3.2): response keys, NTProofStr, the
/// session base key and the message integrity code. Used only while a session is set up, so
/// one-shot calls are enough.
public enum HMACMD5 {
    /// HMAC-MD5 of the concatenation of `parts` under `key` (16 bytes).
    public static func mac(key: [UInt8], _ parts: [UInt8]...) -> [UInt8] {
        mac(key: key, parts: parts)
    }

    public static func mac(key: [UInt8], parts: [[UInt8]]) -> [UInt8] {
        var message: [UInt8] = []
        message.reserveCapacity(parts.reduce(0) { $0 + $1.count })
        for part in parts { message += part }
        var out = [UInt8](repeating: 0, count: 16)
        var length = 0
        let ok = key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                out.withUnsafeMutableBufferPointer { o in
                    EVP_Q_mac(nil, "HMAC", nil, "MD5", nil, k.baseAddress ?? UnsafePointer(bitPattern: 1), k.count,
                              m.baseAddress ?? UnsafePointer(bitPattern: 1), m.count, o.baseAddress, 16, &length)
                }
            }
        }
        precondition(ok != nil && length == 16, "HMAC-MD5 failed")
        return out
    }
}
