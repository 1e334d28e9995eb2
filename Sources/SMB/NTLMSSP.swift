import Crypto

/// A user SMB may authenticate: the NT hash of their password (MD4 of UTF-16LE) and the IDs
/// their files are accessed with.
public struct SMBUser: Sendable {
    public let name: String
    public let ntHash: [UInt8]
    public let uid: UInt32
    public let gid: UInt32
    public let groups: [UInt32]

    public init(name: String, ntHash: [UInt8], uid: UInt32, gid: UInt32, groups: [UInt32] = []) {
        self.name = name
        self.ntHash = ntHash
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }

    /// The NT hash of `password` (nil if OpenSSL's legacy provider, which has MD4, is missing).
    public static func ntHash(password: String) -> [UInt8]? {
        LegacyCiphers.md4(Bytes.utf16(password))
    }
}

/// NTLM negotiate flags (MS-NLMP §2.2.2.5).
struct NTLMFlags: OptionSet {
    let rawValue: UInt32
    static let unicode = NTLMFlags(rawValue: 0x0000_0001)
    static let requestTarget = NTLMFlags(rawValue: 0x0000_0004)
    static let sign = NTLMFlags(rawValue: 0x0000_0010)
    static let seal = NTLMFlags(rawValue: 0x0000_0020)
    static let ntlm = NTLMFlags(rawValue: 0x0000_0200)
    static let anonymous = NTLMFlags(rawValue: 0x0000_0800)
    static let alwaysSign = NTLMFlags(rawValue: 0x0000_8000)
    static let targetTypeServer = NTLMFlags(rawValue: 0x0002_0000)
    static let extendedSessionSecurity = NTLMFlags(rawValue: 0x0008_0000)
    static let targetInfo = NTLMFlags(rawValue: 0x0080_0000)
    static let version = NTLMFlags(rawValue: 0x0200_0000)
    static let key128 = NTLMFlags(rawValue: 0x2000_0000)
    static let keyExchange = NTLMFlags(rawValue: 0x4000_0000)
    static let key56 = NTLMFlags(rawValue: 0x8000_0000)

    /// What this server offers; the challenge carries the intersection with the client's.
    static let supported: NTLMFlags = [.unicode, .requestTarget, .sign, .seal, .ntlm, .alwaysSign, .extendedSessionSecurity,
                                       .targetInfo, .version, .key128, .keyExchange, .key56]
}

/// Who an AUTHENTICATE message proved to be.
enum NTLMIdentity {
    case user(SMBUser, sessionKey: [UInt8])
    /// The anonymous (null) user: no password, no session key.
    case anonymous
}

/// The server side of one NTLMSSP exchange (MS-NLMP §3.2.5): NEGOTIATE in, CHALLENGE out,
/// AUTHENTICATE in, checked as NTLMv2 against the configured users. NTLMv1 and LM responses
/// are refused.
struct NTLMServer {
    static let signature: [UInt8] = Array("NTLMSSP".utf8) + [0]
    let serverChallenge: [UInt8]
    let netbiosName: String
    let domain: String
    private(set) var negotiateMessage: [UInt8] = []
    private(set) var challengeMessage: [UInt8] = []
    private(set) var flags: NTLMFlags = []

    init(netbiosName: String, domain: String, challenge: [UInt8] = Bytes.random(8)) {
        self.netbiosName = netbiosName
        self.domain = domain
        serverChallenge = challenge
    }

    static func isNTLMSSP(_ token: [UInt8]) -> Bool {
        token.count >= 12 && Array(token[0..<8]) == signature
    }

    static func messageType(_ token: [UInt8]) -> UInt32? {
        guard isNTLMSSP(token) else { return nil }
        return UInt32(token[8]) | UInt32(token[9]) << 8 | UInt32(token[10]) << 16 | UInt32(token[11]) << 24
    }

    /// Reads the NEGOTIATE message and returns the CHALLENGE message.
    mutating func challenge(for negotiate: [UInt8]) throws(NTStatus) -> [UInt8] {
        guard Self.messageType(negotiate) == 1, negotiate.count >= 16 else { throw .invalidParameter }
        let clientFlags = negotiate.withUnsafeBytes { raw in NTLMFlags(rawValue: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self))) }
        var chosen = clientFlags.intersection(NTLMFlags.supported)
        chosen.insert([.unicode, .ntlm, .targetInfo, .targetTypeServer, .extendedSessionSecurity, .version])
        flags = chosen
        negotiateMessage = negotiate

        let targetName = Bytes.utf16(domain)
        var targetInfo: [UInt8] = []
        func pair(_ id: UInt16, _ value: [UInt8]) {
            targetInfo += Bytes.le16(id) + Bytes.le16(UInt16(value.count)) + value
        }
        pair(2, Bytes.utf16(domain))          // MsvAvNbDomainName
        pair(1, Bytes.utf16(netbiosName))     // MsvAvNbComputerName
        pair(4, Bytes.utf16(domain.lowercased()))  // MsvAvDnsDomainName
        pair(3, Bytes.utf16(netbiosName.lowercased()))  // MsvAvDnsComputerName
        pair(0, [])                           // MsvAvEOL

        let headerSize = 56
        var message = Self.signature + Bytes.le32(2)
        message += Bytes.le16(UInt16(targetName.count)) + Bytes.le16(UInt16(targetName.count)) + Bytes.le32(UInt32(headerSize))
        message += Bytes.le32(chosen.rawValue)
        message += serverChallenge
        message += [UInt8](repeating: 0, count: 8)
        message += Bytes.le16(UInt16(targetInfo.count)) + Bytes.le16(UInt16(targetInfo.count))
        message += Bytes.le32(UInt32(headerSize + targetName.count))
        message += [6, 1, 0x4F, 0x1D, 0, 0, 0, 15]  // Version: 6.1 build 7503, NTLMSSP revision 15
        message += targetName + targetInfo
        challengeMessage = message
        return message
    }

    /// A (length, offset) field of an NTLM message, bounds-checked against the message.
    private static func field(_ message: [UInt8], at position: Int) throws(NTStatus) -> [UInt8] {
        guard position + 8 <= message.count else { throw .invalidParameter }
        let length = Int(message[position]) | Int(message[position + 1]) << 8
        let offset = Int(message[position + 4]) | Int(message[position + 5]) << 8 | Int(message[position + 6]) << 16 | Int(message[position + 7]) << 24
        guard length == 0 || (offset >= 0 && offset <= message.count && length <= message.count - offset) else { throw .invalidParameter }
        return length == 0 ? [] : Array(message[offset..<(offset + length)])
    }

    private static func utf16(_ bytes: [UInt8]) throws(NTStatus) -> String {
        guard bytes.count % 2 == 0, bytes.count <= 1024 else { throw .invalidParameter }
        var units: [UInt16] = []
        for i in stride(from: 0, to: bytes.count, by: 2) { units.append(UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8) }
        return String(decoding: units, as: UTF16.self)
    }

    /// Checks the AUTHENTICATE message. Unknown users and wrong passwords are both
    /// `logonFailure`, so nothing tells one from the other.
    func authenticate(_ message: [UInt8], users: (String) -> SMBUser?) throws(NTStatus) -> NTLMIdentity {
        guard Self.messageType(message) == 3, message.count >= 64 else { throw .invalidParameter }
        let lmResponse = try Self.field(message, at: 12)
        let ntResponse = try Self.field(message, at: 20)
        let domainBytes = try Self.field(message, at: 28)
        let userBytes = try Self.field(message, at: 36)
        let encryptedKey = try Self.field(message, at: 52)
        let authFlags = NTLMFlags(rawValue: UInt32(message[60]) | UInt32(message[61]) << 8 | UInt32(message[62]) << 16 | UInt32(message[63]) << 24)
        let domainName = try Self.utf16(domainBytes)
        let userName = try Self.utf16(userBytes)

        if userName.isEmpty && ntResponse.isEmpty && (lmResponse.isEmpty || lmResponse == [0]) {
            return .anonymous
        }
        guard let user = users(userName), ntResponse.count > 24, user.ntHash.count == 16 else { throw .logonFailure }
        let proof = Array(ntResponse[0..<16])
        let blob = Array(ntResponse[16...])
        // The client computed its key with the domain it sent; some clients leave it empty.
        for candidate in [domainName, ""] {
            let responseKey = HMACMD5.mac(key: user.ntHash, Bytes.utf16(userName.uppercased() + candidate))
            let expected = HMACMD5.mac(key: responseKey, serverChallenge, blob)
            guard Bytes.equal(expected, proof) else { continue }
            let baseKey = HMACMD5.mac(key: responseKey, proof)
            var sessionKey = baseKey
            if authFlags.contains(.keyExchange) && flags.contains(.keyExchange) {
                guard encryptedKey.count == 16, let exported = LegacyCiphers.rc4(key: baseKey, encryptedKey) else { throw .logonFailure }
                sessionKey = exported
            }
            return .user(user, sessionKey: sessionKey)
        }
        throw .logonFailure
    }
}
