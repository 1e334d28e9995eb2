import COpenSSL

/// MD4 and RC4, which NTLM still needs (the NT hash is MD4 of the UTF-16LE password; the
/// session key is exchanged under RC4). OpenSSL 3 keeps both in its legacy provider, and
/// loading that provider into a library context turns off the implicit default provider there,
/// so they live in a library context of their own with both providers loaded: the default
/// context that every other digest and cipher uses is left as it was.
public enum LegacyCiphers {
    private struct Implementations: @unchecked Sendable {
        let context: OpaquePointer
        let md4: OpaquePointer
        let rc4: OpaquePointer
    }

    private static let implementations: Implementations? = {
        guard let context = OSSL_LIB_CTX_new() else { return nil }
        guard OSSL_PROVIDER_load(context, "legacy") != nil, OSSL_PROVIDER_load(context, "default") != nil,
              let md4 = EVP_MD_fetch(context, "MD4", nil), let rc4 = EVP_CIPHER_fetch(context, "RC4", nil)
        else { return nil }
        return Implementations(context: context, md4: md4, rc4: rc4)
    }()

    /// Whether OpenSSL's legacy provider could be loaded (NTLM authentication needs it).
    public static var available: Bool { implementations != nil }

    /// MD4 of `bytes` (16 bytes); nil when the legacy provider is missing.
    public static func md4(_ bytes: [UInt8]) -> [UInt8]? {
        guard let md4 = implementations?.md4 else { return nil }
        var out = [UInt8](repeating: 0, count: 16)
        var length: UInt32 = 0
        let ok = bytes.withUnsafeBufferPointer { b in
            out.withUnsafeMutableBufferPointer { o in
                EVP_Digest(b.baseAddress ?? UnsafePointer(bitPattern: 1), b.count, o.baseAddress, &length, md4, nil)
            }
        }
        return ok == 1 && length == 16 ? out : nil
    }

    /// RC4 of `bytes` under `key` (encryption and decryption are the same); nil when the legacy
    /// provider is missing.
    public static func rc4(key: [UInt8], _ bytes: [UInt8]) -> [UInt8]? {
        guard let rc4 = implementations?.rc4, let context = EVP_CIPHER_CTX_new() else { return nil }
        defer { EVP_CIPHER_CTX_free(context) }
        var keyLength = key.count
        var out = [UInt8](repeating: 0, count: bytes.count + 16)
        var written: Int32 = 0
        let ok: Bool = withUnsafeMutablePointer(to: &keyLength) { lengthPointer in
            var params = [OSSL_PARAM_construct_size_t(OSSL_CIPHER_PARAM_KEYLEN, lengthPointer), OSSL_PARAM_construct_end()]
            guard EVP_CipherInit_ex2(context, rc4, nil, nil, 1, &params) == 1 else { return false }
            return key.withUnsafeBufferPointer { k in
                bytes.withUnsafeBufferPointer { b in
                    out.withUnsafeMutableBufferPointer { o in
                        EVP_CipherInit_ex2(context, nil, k.baseAddress, nil, 1, nil) == 1
                            && EVP_CipherUpdate(context, o.baseAddress, &written, b.baseAddress ?? UnsafePointer(bitPattern: 1), Int32(b.count)) == 1
                    }
                }
            }
        }
        guard ok else { return nil }
        return Array(out[0..<Int(written)])
    }
}
