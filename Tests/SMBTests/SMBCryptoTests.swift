import Crypto
@testable import SMB
import Testing

private func hex(_ text: String) -> [UInt8] { Hex.decode(Substring(text))! }

@Suite("SMB cryptography: NTLMv2, key derivation, CMAC, AEAD")
struct SMBCryptoTests {
    /// MS-NLMP §4.2.4: user "User", domain "Domain", password "Password", server challenge
    /// 0123456789abcdef, client challenge aa…, time 0, random session key 55….
    @Test("NTLMv2 accepts MS-NLMP's documented AUTHENTICATE and recovers the exported session key")
    func ntlmv2Vectors() throws {
        let ntHash = try #require(SMBUser.ntHash(password: "Password"))
        #expect(ntHash == hex("a4f49c406510bdcab6824ee7c30fd852"))
        let responseKey = HMACMD5.mac(key: ntHash, Bytes.utf16("USER" + "Domain"))
        #expect(responseKey == hex("0c868a403bfd7a93a3001ef22ef02e3f"))

        let avPairs = [2, 0, 12, 0] + Bytes.utf16("Domain") + [1, 0, 12, 0] + Bytes.utf16("Server") + [0, 0, 0, 0]
        let temp: [UInt8] = [1, 1, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 8) + [UInt8](repeating: 0xAA, count: 8) + [0, 0, 0, 0] + avPairs + [0, 0, 0, 0]
        let proof = HMACMD5.mac(key: responseKey, hex("0123456789abcdef"), temp)
        #expect(proof == hex("68cd0ab851e51c96aabc927bebef6a1c"))
        #expect(HMACMD5.mac(key: responseKey, proof) == hex("8de40ccadbc14a82f15cb0ad0de95ca3"))

        var server = NTLMServer(netbiosName: "SERVER", domain: "Domain", challenge: hex("0123456789abcdef"))
        let flags = NTLMFlags.supported.rawValue
        let negotiate = NTLMServer.signature + Bytes.le32(1) + Bytes.le32(flags) + [UInt8](repeating: 0, count: 16)
        let challenge = try server.challenge(for: negotiate)
        #expect(NTLMServer.messageType(challenge) == 2)
        #expect(Array(challenge[24..<32]) == hex("0123456789abcdef"))

        let user = SMBUser(name: "User", ntHash: ntHash, uid: 1000, gid: 1000)
        func authenticate(ntResponse: [UInt8]) -> [UInt8] {
            let lm = [UInt8](repeating: 0, count: 24)
            let domain = Bytes.utf16("Domain")
            let name = Bytes.utf16("User")
            let workstation = Bytes.utf16("COMPUTER")
            let encrypted = hex("c5dad2544fc9799094ce1ce90bc9d03e")
            var offset = 88
            var header = NTLMServer.signature + Bytes.le32(3)
            var payload: [UInt8] = []
            for field in [lm, ntResponse, domain, name, workstation, encrypted] {
                header += Bytes.le16(UInt16(field.count)) + Bytes.le16(UInt16(field.count)) + Bytes.le32(UInt32(offset))
                payload += field
                offset += field.count
            }
            header += Bytes.le32(flags) + [UInt8](repeating: 0, count: 8) + [UInt8](repeating: 0, count: 16)
            return header + payload
        }
        let identity = try server.authenticate(authenticate(ntResponse: proof + temp)) { $0.lowercased() == "user" ? user : nil }
        guard case let .user(found, sessionKey) = identity else {
            Issue.record("not authenticated as a user")
            return
        }
        #expect(found.name == "User")
        #expect(sessionKey == [UInt8](repeating: 0x55, count: 16))

        // A changed proof (a wrong password) and an unknown user are both LOGON_FAILURE.
        var wrong = proof
        wrong[0] ^= 1
        #expect(throws: NTStatus.logonFailure) { try server.authenticate(authenticate(ntResponse: wrong + temp)) { _ in user } }
        #expect(throws: NTStatus.logonFailure) { try server.authenticate(authenticate(ntResponse: proof + temp)) { _ in nil } }
    }

    /// Microsoft's "anatomy of signing and cryptographic keys" appendix, SMB 3.0 example.
    @Test("SP800-108 KDF gives Microsoft's SMB 3.0 signing, encryption and application keys")
    func kdfVectors() {
        let sessionKey = hex("7CD451825D0450D235424E44BA6E78CC")
        func derive(_ label: String, _ context: String) -> [UInt8] {
            KDF.counterHMACSHA256(key: sessionKey, label: Array(label.utf8) + [0], context: Array(context.utf8) + [0], bits: 128)
        }
        #expect(derive("SMB2AESCMAC", "SmbSign") == hex("0B7E9C5CAC36C0F6EA9AB275298CEDCE"))
        // The blog names keys from the client's side: its EncryptionKey is the server's ServerIn.
        #expect(derive("SMB2AESCCM", "ServerIn ") == hex("FAD27796665B313EBB578F388632B4F7"))
        #expect(derive("SMB2AESCCM", "ServerOut") == hex("B0F0427F7CEB416D1D9DCC0CD4F99447"))
        #expect(derive("SMB2APP", "SmbRpc") == hex("BB23A4575AA26C721AF525AF15A87B4F"))
    }

    @Test("AES-CMAC matches RFC 4493, also fed in pieces")
    func cmacVectors() {
        let cmac = AESCMAC(key: hex("2b7e151628aed2a6abf7158809cf4f3c"))
        #expect(cmac.mac(UnsafeRawBufferPointer(start: nil, count: 0)) == hex("bb1d6929e95937287fa37d129b756746"))
        let message = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411")
        #expect(message.withUnsafeBytes { cmac.mac($0) } == hex("dfa66747de9ae63030ca32611497c827"))
        cmac.start()
        message.withUnsafeBytes {
            cmac.update(UnsafeRawBufferPointer(rebasing: $0[0..<7]))
            cmac.update(UnsafeRawBufferPointer(rebasing: $0[7...]))
        }
        var out = [UInt8](repeating: 0, count: 16)
        out.withUnsafeMutableBytes { cmac.finish(into: $0.baseAddress!) }
        #expect(out == hex("dfa66747de9ae63030ca32611497c827"))
    }

    @Test("AES-GCM and AES-CCM round-trip in place and refuse a changed message", arguments: [AEAD.Mode.gcm, .ccm], [16, 32])
    func aeadRoundTrip(mode: AEAD.Mode, keyLength: Int) {
        let key = (0..<keyLength).map { UInt8($0) }
        let sealer = AEAD(mode: mode, key: key)
        let opener = AEAD(mode: mode, key: key)
        let nonce = [UInt8](repeating: 7, count: mode.nonceLength)
        let aad = [UInt8](repeating: 9, count: 32)
        let plain = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 31) }
        var buffer = plain
        var tag = [UInt8](repeating: 0, count: 16)
        let sealed = nonce.withUnsafeBytes { n in aad.withUnsafeBytes { a in buffer.withUnsafeMutableBytes { b in tag.withUnsafeMutableBytes { t in
            sealer.seal(nonce: n, aad: a, input: b.baseAddress, output: b.baseAddress, length: b.count, tag: t.baseAddress!)
        } } } }
        #expect(sealed)
        #expect(buffer != plain)
        var copy = buffer
        let opened = nonce.withUnsafeBytes { n in aad.withUnsafeBytes { a in copy.withUnsafeMutableBytes { b in tag.withUnsafeBytes { t in
            opener.open(nonce: n, aad: a, input: b.baseAddress!, output: b.baseAddress!, length: b.count, tag: t.baseAddress!)
        } } } }
        #expect(opened)
        #expect(copy == plain)
        buffer[10] ^= 1
        let refused = nonce.withUnsafeBytes { n in aad.withUnsafeBytes { a in buffer.withUnsafeMutableBytes { b in tag.withUnsafeBytes { t in
            opener.open(nonce: n, aad: a, input: b.baseAddress!, output: b.baseAddress!, length: b.count, tag: t.baseAddress!)
        } } } }
        #expect(!refused)
    }
}
