import COpenSSL

/// HMAC-SHA-1, for the one place S3 still uses it: the signature of a browser POST upload's
/// policy (the AWSAccessKeyId form). Not on any hot path, so OpenSSL's one-shot call.
public enum HMACSHA1 {
    public static func mac(key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 20)
        var length: UInt32 = 0
        key.withUnsafeBytes { keyBytes in
            message.withUnsafeBytes { messageBytes in
                out.withUnsafeMutableBufferPointer { output in
                    _ = HMAC(EVP_sha1(), keyBytes.baseAddress, Int32(keyBytes.count), messageBytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
                             messageBytes.count, output.baseAddress, &length)
                }
            }
        }
        return out
    }
}
