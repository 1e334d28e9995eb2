import COpenSSL

/// AES-128-CMAC (RFC 4493), the SMB 3.x signing algorithm. The key is set once; each MAC
/// re-initialises the pre-keyed context (no allocation, no key schedule per message) and may
/// be fed in several pieces (a READ reply's header and its data by reference).
public final class AESCMAC {
    nonisolated(unsafe) private static let mac: OpaquePointer = EVP_MAC_fetch(nil, "CMAC", nil)!
    /// OSSL_PARAM keeps the pointer it is given: this name must outlive every context.
    nonisolated(unsafe) private static let cipherName: UnsafeMutablePointer<CChar> = strdup("AES-128-CBC")!
    private let context: OpaquePointer

    /// `key` is 16 bytes.
    public init(key: [UInt8]) {
        precondition(key.count == 16, "AES-128-CMAC takes a 16-byte key")
        context = EVP_MAC_CTX_new(Self.mac)!
        var params = [OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, Self.cipherName, 0), OSSL_PARAM_construct_end()]
        let ok = key.withUnsafeBufferPointer { EVP_MAC_init(context, $0.baseAddress, 16, &params) }
        precondition(ok == 1, "AES-CMAC key setup failed")
    }

    deinit { EVP_MAC_CTX_free(context) }

    /// Starts a new MAC under the same key.
    public func start() {
        EVP_MAC_init(context, nil, 0, nil)
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        EVP_MAC_update(context, base.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    /// Writes the 16-byte MAC to `out`.
    public func finish(into out: UnsafeMutableRawPointer) {
        var length = 0
        EVP_MAC_final(context, out.assumingMemoryBound(to: UInt8.self), &length, 16)
    }

    /// The MAC of `bytes` in one call.
    public func mac(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        start()
        update(bytes)
        var out = [UInt8](repeating: 0, count: 16)
        out.withUnsafeMutableBytes { finish(into: $0.baseAddress!) }
        return out
    }
}
