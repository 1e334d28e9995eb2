import COpenSSL

/// AES in CCM or GCM mode with a 16-byte tag, 128- or 256-bit keys: SMB 3.x encryption
/// (MS-SMB2 §3.1.4.3) and AES-GMAC signing. One instance per key; not shared between threads.
/// Encryption and decryption may work in place (output == input).
public final class AEAD {
    public enum Mode: Sendable {
        case ccm, gcm

        /// The nonce length SMB uses: 11 bytes for CCM, 12 for GCM.
        public var nonceLength: Int { self == .ccm ? 11 : 12 }
    }

    public let mode: Mode
    private let key: [UInt8]
    private let cipher: OpaquePointer
    private let context: OpaquePointer

    nonisolated(unsafe) private static let ciphers: [String: OpaquePointer] = {
        var table: [String: OpaquePointer] = [:]
        for name in ["AES-128-CCM", "AES-256-CCM", "AES-128-GCM", "AES-256-GCM"] {
            table[name] = EVP_CIPHER_fetch(nil, name, nil)!
        }
        return table
    }()

    /// `key` is 16 or 32 bytes.
    public init(mode: Mode, key: [UInt8]) {
        precondition(key.count == 16 || key.count == 32, "AES takes a 16- or 32-byte key")
        self.mode = mode
        self.key = key
        cipher = Self.ciphers["AES-\(key.count * 8)-\(mode == .ccm ? "CCM" : "GCM")"]!
        context = EVP_CIPHER_CTX_new()!
    }

    deinit { EVP_CIPHER_CTX_free(context) }

    private func setUp(encrypt: Bool, nonce: UnsafeRawBufferPointer, tag: UnsafeRawPointer?) -> Bool {
        guard EVP_CipherInit_ex2(context, cipher, nil, nil, encrypt ? 1 : 0, nil) == 1,
              EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_IVLEN, Int32(nonce.count), nil) == 1
        else { return false }
        if mode == .ccm {
            // CCM fixes the tag length up front (and takes the expected tag now when decrypting).
            guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, 16, tag.map { UnsafeMutableRawPointer(mutating: $0) }) == 1 else { return false }
        }
        return key.withUnsafeBufferPointer { k in
            EVP_CipherInit_ex2(context, nil, k.baseAddress, nonce.baseAddress!.assumingMemoryBound(to: UInt8.self), encrypt ? 1 : 0, nil) == 1
        }
    }

    /// Feeds the data (CCM needs the total length before the AAD) and the AAD.
    private func feed(length: Int, aad: UnsafeRawBufferPointer) -> Bool {
        var ignored: Int32 = 0
        if mode == .ccm {
            guard EVP_CipherUpdate(context, nil, &ignored, nil, Int32(length)) == 1 else { return false }
        }
        guard !aad.isEmpty else { return true }
        return EVP_CipherUpdate(context, nil, &ignored, aad.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(aad.count)) == 1
    }

    /// Encrypts `length` bytes from `input` to `output` (they may be the same) and writes the
    /// 16-byte tag to `tag`.
    @discardableResult
    public func seal(nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer, input: UnsafeRawPointer?, output: UnsafeMutableRawPointer?,
                     length: Int, tag: UnsafeMutableRawPointer) -> Bool {
        guard setUp(encrypt: true, nonce: nonce, tag: nil), feed(length: length, aad: aad) else { return false }
        var written: Int32 = 0
        if length > 0 || mode == .ccm {
            let source = (input ?? UnsafeRawPointer(tag)).assumingMemoryBound(to: UInt8.self)
            let target = (output ?? tag).assumingMemoryBound(to: UInt8.self)
            guard EVP_CipherUpdate(context, target, &written, source, Int32(length)) == 1 else { return false }
        }
        var final: Int32 = 0
        var scratch = (UInt64(0), UInt64(0))
        let ok = withUnsafeMutableBytes(of: &scratch) { EVP_CipherFinal_ex(context, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), &final) }
        guard ok == 1 else { return false }
        return EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1
    }

    // MARK: GMAC (GCM with no plaintext: the message is all additional data)

    /// Starts a GMAC under `nonce` (GCM mode only); feed the message with `gmacUpdate`.
    @discardableResult
    public func gmacStart(nonce: UnsafeRawBufferPointer) -> Bool {
        precondition(mode == .gcm, "GMAC needs GCM")
        return setUp(encrypt: true, nonce: nonce, tag: nil)
    }

    public func gmacUpdate(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        var ignored: Int32 = 0
        EVP_CipherUpdate(context, nil, &ignored, base.assumingMemoryBound(to: UInt8.self), Int32(bytes.count))
    }

    /// Writes the 16-byte tag of everything fed since `gmacStart`.
    public func gmacFinish(tag: UnsafeMutableRawPointer) {
        var final: Int32 = 0
        var scratch = (UInt64(0), UInt64(0))
        _ = withUnsafeMutableBytes(of: &scratch) { EVP_CipherFinal_ex(context, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), &final) }
        EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, 16, tag)
    }

    /// Decrypts `length` bytes from `input` to `output` (they may be the same) and checks the
    /// tag; false when the message was altered or the key is wrong.
    public func open(nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer, input: UnsafeRawPointer, output: UnsafeMutableRawPointer,
                     length: Int, tag: UnsafeRawPointer) -> Bool {
        guard setUp(encrypt: false, nonce: nonce, tag: mode == .ccm ? tag : nil), feed(length: length, aad: aad) else { return false }
        var written: Int32 = 0
        let update = EVP_CipherUpdate(context, output.assumingMemoryBound(to: UInt8.self), &written,
                                      input.assumingMemoryBound(to: UInt8.self), Int32(length))
        if mode == .ccm { return update == 1 }
        guard update == 1, EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, 16, UnsafeMutableRawPointer(mutating: tag)) == 1 else { return false }
        var final: Int32 = 0
        var scratch = (UInt64(0), UInt64(0))
        return withUnsafeMutableBytes(of: &scratch) { EVP_CipherFinal_ex(context, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), &final) } == 1
    }
}
