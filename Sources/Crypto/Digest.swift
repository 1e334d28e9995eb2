import COpenSSL

/// A message digest computed incrementally (MD5 for S3 ETags, SHA-256 for SigV4 payload
/// hashes, SHA-512 for the SMB 3.1.1 preauthentication integrity hash) through OpenSSL's EVP interface. One instance per computation; not shared between
/// threads.
public final class Digest {
    public enum Algorithm: Sendable {
        case md5, sha256, sha512

        var length: Int {
            switch self {
            case .md5: 16
            case .sha256: 32
            case .sha512: 64
            }
        }

        /// The implementations, fetched once (EVP_MD_fetch is a provider lookup: too slow per call).
        fileprivate var implementation: OpaquePointer {
            switch self {
            case .md5: return DigestImplementations.md5
            case .sha256: return DigestImplementations.sha256
            case .sha512: return DigestImplementations.sha512
            }
        }
    }

    public let algorithm: Algorithm
    private let context: OpaquePointer

    public init(_ algorithm: Algorithm) {
        self.algorithm = algorithm
        context = EVP_MD_CTX_new()!
        EVP_DigestInit_ex2(context, algorithm.implementation, nil)
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public func update(_ string: String) {
        var string = string
        string.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    /// The digest; the object starts over afterwards.
    public func finish() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: algorithm.length)
        var length: UInt32 = 0
        out.withUnsafeMutableBufferPointer { _ = EVP_DigestFinal_ex(context, $0.baseAddress, &length) }
        EVP_DigestInit_ex2(context, algorithm.implementation, nil)
        return out
    }

    /// The digest of `bytes` in one call.
    public static func hash(_ algorithm: Algorithm, _ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: algorithm.length)
        var length: UInt32 = 0
        out.withUnsafeMutableBufferPointer {
            _ = EVP_Digest(bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1), bytes.count, $0.baseAddress, &length, algorithm.implementation, nil)
        }
        return out
    }

    public static func hash(_ algorithm: Algorithm, _ string: String) -> [UInt8] {
        var string = string
        return string.withUTF8 { hash(algorithm, UnsafeRawBufferPointer($0)) }
    }

    public static func hash(_ algorithm: Algorithm, _ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { hash(algorithm, $0) }
    }
}

private enum DigestImplementations {
    nonisolated(unsafe) static let md5: OpaquePointer = EVP_MD_fetch(nil, "MD5", nil)!
    nonisolated(unsafe) static let sha256: OpaquePointer = EVP_MD_fetch(nil, "SHA256", nil)!
    nonisolated(unsafe) static let sha512: OpaquePointer = EVP_MD_fetch(nil, "SHA512", nil)!
}

/// HMAC-SHA-256 (RFC 2104) with the key's inner and outer states computed once, so each MAC
/// costs two digest finalisations and no allocation beyond the result.
public final class HMACSHA256 {
    private let inner: OpaquePointer
    private let outer: OpaquePointer
    private let work: OpaquePointer

    public init(key: UnsafeRawBufferPointer) {
        var block = [UInt8](repeating: 0, count: 64)
        if key.count > 64 {
            let hashed = Digest.hash(.sha256, key)
            for i in 0..<32 { block[i] = hashed[i] }
        } else {
            for i in 0..<key.count { block[i] = key[i] }
        }
        inner = EVP_MD_CTX_new()!
        outer = EVP_MD_CTX_new()!
        work = EVP_MD_CTX_new()!
        let md = Digest.Algorithm.sha256.implementation
        EVP_DigestInit_ex2(inner, md, nil)
        EVP_DigestInit_ex2(outer, md, nil)
        var pad = block.map { $0 ^ 0x36 }
        EVP_DigestUpdate(inner, &pad, 64)
        pad = block.map { $0 ^ 0x5C }
        EVP_DigestUpdate(outer, &pad, 64)
    }

    public convenience init(key: [UInt8]) {
        self.init(key: key.withUnsafeBytes { UnsafeRawBufferPointer(start: $0.baseAddress, count: $0.count) })
    }

    deinit {
        EVP_MD_CTX_free(inner)
        EVP_MD_CTX_free(outer)
        EVP_MD_CTX_free(work)
    }

    public func mac(_ message: UnsafeRawBufferPointer) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        EVP_MD_CTX_copy_ex(work, inner)
        if let base = message.baseAddress, !message.isEmpty { EVP_DigestUpdate(work, base, message.count) }
        digest.withUnsafeMutableBufferPointer { _ = EVP_DigestFinal_ex(work, $0.baseAddress, &length) }
        EVP_MD_CTX_copy_ex(work, outer)
        EVP_DigestUpdate(work, digest, 32)
        digest.withUnsafeMutableBufferPointer { _ = EVP_DigestFinal_ex(work, $0.baseAddress, &length) }
        return digest
    }

    /// Starts an incremental MAC (SMB2 signing feeds a header and data by reference).
    public func start() {
        EVP_MD_CTX_copy_ex(work, inner)
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        if let base = bytes.baseAddress, !bytes.isEmpty { EVP_DigestUpdate(work, base, bytes.count) }
    }

    /// Writes the 32-byte MAC of everything fed since `start()` to `out`.
    public func finish(into out: UnsafeMutableRawPointer) {
        var length: UInt32 = 0
        let bytes = out.assumingMemoryBound(to: UInt8.self)
        EVP_DigestFinal_ex(work, bytes, &length)
        EVP_MD_CTX_copy_ex(work, outer)
        EVP_DigestUpdate(work, bytes, 32)
        EVP_DigestFinal_ex(work, bytes, &length)
    }

    public func mac(_ message: String) -> [UInt8] {
        var message = message
        return message.withUTF8 { mac(UnsafeRawBufferPointer($0)) }
    }

    /// HMAC-SHA-256 of `message` under `key`, in one call.
    public static func mac(key: [UInt8], _ message: String) -> [UInt8] {
        HMACSHA256(key: key).mac(message)
    }
}

/// Lowercase hexadecimal.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            for (i, b) in bytes.enumerated() {
                out[2 * i] = digits[Int(b >> 4)]
                out[2 * i + 1] = digits[Int(b & 0xF)]
            }
            return bytes.count * 2
        }
    }

    /// Appends `bytes` in lowercase hex to `out`.
    public static func append(_ bytes: [UInt8], to out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: bytes.count * 2))
        out.withUnsafeMutableBufferPointer { buffer in
            for (i, b) in bytes.enumerated() {
                buffer[start + 2 * i] = digits[Int(b >> 4)]
                buffer[start + 2 * i + 1] = digits[Int(b & 0xF)]
            }
        }
    }

    /// nil unless `text` is an even number of hexadecimal digits.
    public static func decode(_ text: Substring) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let high = value(utf8[i]), let low = value(utf8[i + 1]) else { return nil }
            out.append(high << 4 | low)
            i += 2
        }
        return out
    }

    private static func value(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x61...0x66: return b - 0x61 + 10
        case 0x41...0x46: return b - 0x41 + 10
        default: return nil
        }
    }
}

/// Standard base64 (RFC 4648 §4), for Content-MD5 and checksum headers.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 2 < bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(alphabet[Int(n >> 18 & 63)]); out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)]); out.append(alphabet[Int(n & 63)])
            i += 3
        }
        if bytes.count - i == 1 {
            let n = UInt32(bytes[i]) << 16
            out.append(alphabet[Int(n >> 18 & 63)]); out.append(alphabet[Int(n >> 12 & 63)])
            out.append(UInt8(ascii: "=")); out.append(UInt8(ascii: "="))
        } else if bytes.count - i == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out.append(alphabet[Int(n >> 18 & 63)]); out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)]); out.append(UInt8(ascii: "="))
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? {
        var values: [UInt8] = []
        var padding = 0
        for b in text.utf8 {
            if b == UInt8(ascii: "=") { padding += 1; continue }
            guard padding == 0, let index = alphabet.firstIndex(of: b) else { return nil }
            values.append(UInt8(index))
        }
        guard (values.count + padding) % 4 == 0, padding <= 2 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < values.count {
            let chunk = values[i..<min(i + 4, values.count)]
            var n: UInt32 = 0
            for (k, v) in chunk.enumerated() { n |= UInt32(v) << (18 - 6 * UInt32(k)) }
            out.append(UInt8(n >> 16 & 0xFF))
            if chunk.count > 2 { out.append(UInt8(n >> 8 & 0xFF)) }
            if chunk.count > 3 { out.append(UInt8(n & 0xFF)) }
            i += 4
        }
        return out
    }
}
