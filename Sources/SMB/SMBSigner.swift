import Crypto

/// Signs and verifies SMB2 messages for one session (MS-SMB2 §3.1.4.1): HMAC-SHA-256 over
/// the session key for 2.0.2 and 2.1, AES-128-CMAC over the derived signing key for 3.x, or
/// AES-128-GMAC when 3.1.1 negotiated it (its nonce is the message id and direction).
/// A message may be fed in pieces (a READ reply's header, then its data by reference); the
/// signature field must be zero in what is fed.
final class SMBSigner {
    enum Algorithm: UInt16 {
        case hmacSHA256 = 0, aesCMAC = 1, aesGMAC = 2
    }

    private let hmac: HMACSHA256?
    private let cmac: AESCMAC?
    private let gmac: AEAD?

    init(dialect: SMB2Dialect, key: [UInt8], algorithm: Algorithm? = nil) {
        gmac = algorithm == .aesGMAC ? AEAD(mode: .gcm, key: key) : nil
        if gmac != nil {
            cmac = nil
            hmac = nil
        } else if dialect.isSMB3 && algorithm != .hmacSHA256 {
            cmac = AESCMAC(key: key)
            hmac = nil
        } else {
            var padded = key
            if padded.count < 16 { padded += [UInt8](repeating: 0, count: 16 - padded.count) }
            hmac = HMACSHA256(key: padded)
            cmac = nil
        }
    }

    /// Starts signing the message whose 64-byte header is at `header` (GMAC's nonce comes
    /// from its message id, its direction and whether it is a CANCEL).
    func start(header: UnsafeRawPointer) {
        if let gmac {
            var nonce = (UInt64(0), UInt32(0))
            nonce.0 = header.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
            let flags = UInt32(littleEndian: header.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
            let command = UInt16(littleEndian: header.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
            let role: UInt32 = (flags & SMB2Header.Flags.serverToRedirector.rawValue != 0 ? 1 : 0)
                | (command == SMB2Command.cancel.rawValue ? 2 : 0)
            nonce.1 = role.littleEndian
            withUnsafeBytes(of: &nonce) { gmac.gmacStart(nonce: UnsafeRawBufferPointer(rebasing: $0[0..<12])) }
        } else if let cmac {
            cmac.start()
        } else {
            hmac!.start()
        }
    }

    func update(_ bytes: UnsafeRawBufferPointer) {
        if let gmac { gmac.gmacUpdate(bytes) } else if let cmac { cmac.update(bytes) } else { hmac!.update(bytes) }
    }

    /// Writes the 16-byte signature to `out`.
    func finish(into out: UnsafeMutableRawPointer) {
        if let gmac {
            gmac.gmacFinish(tag: out)
        } else if let cmac {
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
        start(header: message.baseAddress!)
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
        start(header: message.baseAddress!)
        update(UnsafeRawBufferPointer(message))
        withUnsafeMutableBytes(of: &computed) { finish(into: $0.baseAddress!) }
        return (received.0 ^ computed.0) | (received.1 ^ computed.1) == 0
    }
}
