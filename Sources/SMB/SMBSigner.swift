import Crypto

/// Signs and verifies SMB2 messages for one session (MS-SMB2 §3.1.4.1): HMAC-SHA-256 over
/// the session key for 2.0.2 and 2.1, AES-128-CMAC over the derived signing key for 3.x.
/// A message may be fed in pieces (a READ reply's header, then its data by reference); the
/// signature field must be zero in what is fed.
final class SMBSigner {
    private let hmac: HMACSHA256?
    private let cmac: AESCMAC?

    init(dialect: SMB2Dialect, key: [UInt8]) {
        if dialect.isSMB3 {
            cmac = AESCMAC(key: key)
            hmac = nil
        } else {
            var padded = key
            if padded.count < 16 { padded += [UInt8](repeating: 0, count: 16 - padded.count) }
            hmac = HMACSHA256(key: padded)
            cmac = nil
        }
    }

    func start() {
        if let cmac { cmac.start() } else { hmac!.start() }
    }

    func update(_ bytes: UnsafeRawBufferPointer) {
        if let cmac { cmac.update(bytes) } else { hmac!.update(bytes) }
    }

    /// Writes the 16-byte signature to `out`.
    func finish(into out: UnsafeMutableRawPointer) {
        if let cmac {
            cmac.finish(into: out)
        } else {
            var full = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
            withUnsafeMutableBytes(of: &full) { raw in
                hmac!.finish(into: raw.baseAddress!)
                out.copyMemory(from: raw.baseAddress!, byteCount: 16)
            }
        }
    }

    /// Signs a message held in one piece, writing the signature into its header.
    func sign(_ message: UnsafeMutableRawBufferPointer) {
        (message.baseAddress! + 48).initializeMemory(as: UInt8.self, repeating: 0, count: 16)
        start()
        update(UnsafeRawBufferPointer(message))
        finish(into: message.baseAddress! + 48)
    }

    /// Checks a received message's signature. The signature field is zeroed in place (the
    /// receive buffer is this request's own).
    func verify(_ message: UnsafeMutableRawBufferPointer) -> Bool {
        guard message.count >= SMB2Header.size else { return false }
        let field = message.baseAddress! + 48
        var received = (UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &received) { $0.baseAddress!.copyMemory(from: field, byteCount: 16) }
        field.initializeMemory(as: UInt8.self, repeating: 0, count: 16)
        var computed = (UInt64(0), UInt64(0))
        start()
        update(UnsafeRawBufferPointer(message))
        withUnsafeMutableBytes(of: &computed) { finish(into: $0.baseAddress!) }
        return (received.0 ^ computed.0) | (received.1 ^ computed.1) == 0
    }
}
