import Crypto
import Glibc

/// The client side of NTLMv2 (MS-NLMP §3.1.5) wrapped in SPNEGO (RFC 4178): the NEGOTIATE
/// token, then the AUTHENTICATE token answering the server's CHALLENGE, and the session key.
/// No key exchange (the session key is the NTLMv2 session base key), no NTLM MIC.
struct NTLMClient {
    static let signature: [UInt8] = Array("NTLMSSP".utf8) + [0]
    /// UNICODE, REQUEST_TARGET, SIGN, SEAL, NTLM, ALWAYS_SIGN, EXTENDED_SESSION_SECURITY,
    /// TARGET_INFO, VERSION, 128, 56.
    static let flags: UInt32 = 0x0000_0001 | 0x0000_0004 | 0x0000_0010 | 0x0000_0020 | 0x0000_0200 | 0x0000_8000
        | 0x0008_0000 | 0x0080_0000 | 0x0200_0000 | 0x2000_0000 | 0x8000_0000
    static let version: [UInt8] = [10, 0, 0x61, 0x4A, 0, 0, 0, 15]   // 10.0 build 19041, NTLMSSP revision 15

    let user: String
    let password: String
    let domain: String

    /// The NEGOTIATE message (§2.2.1.1): no domain or workstation.
    static func negotiateMessage() -> [UInt8] {
        signature + le32(1) + le32(flags) + [UInt8](repeating: 0, count: 16) + version
    }

    /// The AUTHENTICATE message (§2.2.1.3) for `challenge`, and the session key; nil when the
    /// challenge is malformed or MD4 is unavailable.
    func authenticate(challenge: [UInt8], clientChallenge: [UInt8], time: UInt64) -> (message: [UInt8], sessionKey: [UInt8])? {
        guard challenge.count >= 48, Array(challenge[0..<8]) == Self.signature, Self.u32(challenge, 8) == 2 else { return nil }
        let serverChallenge = Array(challenge[24..<32])
        let serverFlags = Self.u32(challenge, 20)
        let infoLength = Int(Self.u16(challenge, 40)), infoOffset = Int(Self.u32(challenge, 44))
        guard infoOffset <= challenge.count, infoLength <= challenge.count - infoOffset else { return nil }
        let targetInfo = Array(challenge[infoOffset..<(infoOffset + infoLength)])
        guard let ntHash = LegacyCiphers.md4(Self.utf16(password)) else { return nil }
        // NTOWFv2, the NTLMv2 blob (§2.2.2.7), NTProofStr and the session base key (§3.3.2).
        let responseKey = HMACMD5.mac(key: ntHash, Self.utf16(user.uppercased() + domain))
        var blob: [UInt8] = [1, 1, 0, 0, 0, 0, 0, 0]
        blob += Self.le64(time) + clientChallenge + [0, 0, 0, 0] + targetInfo + [0, 0, 0, 0]
        let proof = HMACMD5.mac(key: responseKey, serverChallenge, blob)
        let sessionKey = HMACMD5.mac(key: responseKey, proof)
        let ntResponse = proof + blob
        let lmResponse = [UInt8](repeating: 0, count: 24)
        let domainBytes = Self.utf16(domain), userBytes = Self.utf16(user), workstation = Self.utf16("DMANOEL-LOAD")

        let headerSize = 72
        var payload: [UInt8] = []
        var fields: [UInt8] = []
        for part in [lmResponse, ntResponse, domainBytes, userBytes, workstation, []] {
            fields += Self.le16(UInt16(part.count)) + Self.le16(UInt16(part.count)) + Self.le32(UInt32(headerSize + payload.count))
            payload += part
        }
        let flags = Self.flags & serverFlags | 0x0000_0001
        return (Self.signature + Self.le32(3) + fields + Self.le32(flags) + Self.version + payload, sessionKey)
    }

    /// The challenge message inside a SPNEGO reply: it starts at the NTLMSSP signature and
    /// ends with the last of its payload fields.
    static func challenge(inToken token: UnsafeRawBufferPointer) -> [UInt8]? {
        let bytes = Array(token)
        guard bytes.count >= 48 else { return nil }
        for start in 0...(bytes.count - 48) where Array(bytes[start..<(start + 8)]) == signature {
            let message = Array(bytes[start...])
            guard u32(message, 8) == 2 else { return nil }
            let end = max(Int(u32(message, 16)) + Int(u16(message, 12)), Int(u32(message, 44)) + Int(u16(message, 40)), 48)
            return end <= message.count ? Array(message[0..<end]) : nil
        }
        return nil
    }

    // MARK: SPNEGO (DER)

    /// NegTokenInit offering NTLMSSP, carrying `mechToken`, inside the GSS-API framing.
    static func spnegoInit(_ mechToken: [UInt8]) -> [UInt8] {
        let ntlmOID: [UInt8] = [0x06, 0x0A, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0A]
        let mechTypes = der(0xA0, der(0x30, ntlmOID))
        let token = der(0xA2, der(0x04, mechToken))
        let negTokenInit = der(0xA0, der(0x30, mechTypes + token))
        let spnegoOID: [UInt8] = [0x06, 0x06, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x02]
        return der(0x60, spnegoOID + negTokenInit)
    }

    /// NegTokenResp carrying `responseToken`.
    static func spnegoResponse(_ responseToken: [UInt8]) -> [UInt8] {
        der(0xA1, der(0x30, der(0xA2, der(0x04, responseToken))))
    }

    static func der(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
        let n = content.count
        let length: [UInt8] = n < 0x80 ? [UInt8(n)] : n < 0x100 ? [0x81, UInt8(n)] : [0x82, UInt8(n >> 8), UInt8(n & 0xFF)]
        return [tag] + length + content
    }

    // MARK: Little-endian helpers

    static func utf16(_ text: String) -> [UInt8] { text.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] } }
    static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    static func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    static func u16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * $1) } }

    /// Now as a Windows FILETIME (100 ns since 1601).
    static func fileTimeNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (UInt64(ts.tv_sec) + 11_644_473_600) * 10_000_000 + UInt64(ts.tv_nsec) / 100
    }
}
