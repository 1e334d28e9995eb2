import Crypto

/// SMB 3.x encryption (MS-SMB2 §2.2.41, §3.1.4.3): the transform header, and messages
/// encrypted with the session's AES-CCM or AES-GCM keys. Decryption happens in place in the
/// receive buffer, so a WRITE's data is still used where it was received.
enum SMB2Transform {
    static let protocolID: UInt32 = 0x424D_53FD
    static let headerSize = 52

    /// Decrypts a transform message in place; returns the SMB2 message(s) inside and the
    /// session whose key opened it, or nil when it is malformed or does not authenticate.
    static func open(_ frame: UnsafeMutableRawBufferPointer, sessions: [UInt64: SMBSession]) -> (UnsafeMutableRawBufferPointer, SMBSession)? {
        guard frame.count > headerSize else { return nil }
        let size = Int(UInt32(littleEndian: frame.loadUnaligned(fromByteOffset: 36, as: UInt32.self)))
        let flags = UInt16(littleEndian: frame.loadUnaligned(fromByteOffset: 42, as: UInt16.self))
        let sessionID = UInt64(littleEndian: frame.loadUnaligned(fromByteOffset: 44, as: UInt64.self))
        guard flags == 1, size == frame.count - headerSize, let session = sessions[sessionID], session.state == .valid,
              let decryptor = session.decryptor
        else { return nil }
        let base = frame.baseAddress!
        let nonce = UnsafeRawBufferPointer(start: base + 20, count: decryptor.mode.nonceLength)
        let aad = UnsafeRawBufferPointer(start: base + 20, count: 32)
        guard decryptor.open(nonce: nonce, aad: aad, input: base + headerSize, output: base + headerSize, length: size, tag: base + 4) else {
            return nil
        }
        return (UnsafeMutableRawBufferPointer(rebasing: frame[headerSize...]), session)
    }

    /// Writes the transform header and the encrypted `plain` to `out`; returns the length.
    static func seal(_ plain: UnsafeRawBufferPointer, session: SMBSession, encryptor: AEAD, into out: UnsafeMutableRawPointer) -> Int {
        out.storeBytes(of: protocolID.littleEndian, toByteOffset: 0, as: UInt32.self)
        (out + 4).initializeMemory(as: UInt8.self, repeating: 0, count: 32)
        // Nonce: a per-session counter and a random word; unused nonce bytes stay zero.
        session.nonceCounter &+= 1
        out.storeBytes(of: session.nonceCounter.littleEndian, toByteOffset: 20, as: UInt64.self)
        if encryptor.mode == .gcm {
            out.storeBytes(of: session.noncePrefix.littleEndian, toByteOffset: 28, as: UInt32.self)
        } else {
            out.storeBytes(of: UInt16(truncatingIfNeeded: session.noncePrefix).littleEndian, toByteOffset: 28, as: UInt16.self)
            out.storeBytes(of: UInt8(truncatingIfNeeded: session.noncePrefix >> 16), toByteOffset: 30, as: UInt8.self)
        }
        out.storeBytes(of: UInt32(plain.count).littleEndian, toByteOffset: 36, as: UInt32.self)
        out.storeBytes(of: UInt16(0).littleEndian, toByteOffset: 40, as: UInt16.self)
        out.storeBytes(of: UInt16(1).littleEndian, toByteOffset: 42, as: UInt16.self)
        out.storeBytes(of: session.id.littleEndian, toByteOffset: 44, as: UInt64.self)
        let nonce = UnsafeRawBufferPointer(start: out + 20, count: encryptor.mode.nonceLength)
        let aad = UnsafeRawBufferPointer(start: out + 20, count: 32)
        encryptor.seal(nonce: nonce, aad: aad, input: plain.baseAddress, output: out + headerSize, length: plain.count, tag: out + 4)
        return headerSize + plain.count
    }
}
