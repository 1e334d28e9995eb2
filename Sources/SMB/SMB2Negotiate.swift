import Crypto
import Glibc

/// NEGOTIATE (MS-SMB2 §3.3.5.3 and §3.3.5.4): dialect 2.0.2 to 3.1.1, 3.1.1 negotiate
/// contexts (preauthentication integrity with SHA-512, ciphers, signing algorithms), and the
/// SMB1 multi-protocol negotiate that older clients open with.
extension SMBConnection {
    enum Capability {
        static let dfs: UInt32 = 0x1
        static let leasing: UInt32 = 0x2
        static let largeMTU: UInt32 = 0x4
        static let multiChannel: UInt32 = 0x8
        static let encryption: UInt32 = 0x40
    }

    enum SecurityMode {
        static let signingEnabled: UInt16 = 0x1
        static let signingRequired: UInt16 = 0x2
    }

    enum NegotiateContext {
        static let preauthIntegrity: UInt16 = 1
        static let encryption: UInt16 = 2
        static let signing: UInt16 = 8
    }

    func negotiate(_ request: inout SMB2Request, reply: SMBReply) throws(NTStatus) {
        guard dialect == nil else {
            // A second NEGOTIATE on a connection is a protocol violation (§3.3.5.3.1).
            connection.close(error: EPROTO)
            throw .invalidParameter
        }
        let reader = request.reader
        guard try reader.u16(at: 64) == 36 else { throw .invalidParameter }
        let count = Int(try reader.u16(at: 66))
        guard count >= 1, count <= 64 else { throw .invalidParameter }
        clientSecurityMode = try reader.u16(at: 68)
        clientCapabilities = try reader.u32(at: 72)
        clientGUID = Array(try reader.slice(at: 76, count: 16))
        var offered: [UInt16] = []
        for index in 0..<count { offered.append(try reader.u16(at: 100 + 2 * index)) }
        guard let chosen = SMB2Dialect.allCases.reversed().first(where: { offered.contains($0.rawValue) }) else { throw .notSupported }

        var ciphers: [UInt16] = []
        var signingAlgorithms: [UInt16] = []
        var preauthOffered = false
        if chosen == .smb311 {
            let contextOffset = Int(try reader.u32(at: 92))
            let contextCount = Int(try reader.u16(at: 96))
            guard contextCount <= 32 else { throw .invalidParameter }
            var position = contextOffset
            for _ in 0..<contextCount {
                position = (position + 7) & ~7
                let type = try reader.u16(at: position)
                let length = Int(try reader.u16(at: position + 2))
                let data = position + 8
                _ = try reader.slice(at: data, count: length)
                switch type {
                case NegotiateContext.preauthIntegrity:
                    let hashCount = Int(try reader.u16(at: data))
                    for index in 0..<min(hashCount, 16) where try reader.u16(at: data + 4 + 2 * index) == 1 { preauthOffered = true }
                case NegotiateContext.encryption:
                    let cipherCount = Int(try reader.u16(at: data))
                    for index in 0..<min(cipherCount, 16) { ciphers.append(try reader.u16(at: data + 2 + 2 * index)) }
                case NegotiateContext.signing:
                    let algorithmCount = Int(try reader.u16(at: data))
                    for index in 0..<min(algorithmCount, 16) { signingAlgorithms.append(try reader.u16(at: data + 2 + 2 * index)) }
                default:
                    break
                }
                position = data + length
            }
            guard preauthOffered else { throw .invalidParameter }
        }

        dialect = chosen
        maxIOSize = chosen == .smb202 ? 65536 : server.settings.maxIOSize
        serverSecurityMode = SecurityMode.signingEnabled | (server.settings.signingRequired ? SecurityMode.signingRequired : 0)
        serverCapabilities = chosen >= .smb210 ? Capability.largeMTU | Capability.leasing : 0
        if chosen == .smb300 || chosen == .smb302, clientCapabilities & Capability.encryption != 0 {
            serverCapabilities |= Capability.encryption
            cipher = .aes128CCM
        }
        // The client lists ciphers in its order of preference.
        var chosenCipher: UInt16?
        var chosenSigning: UInt16?
        if chosen == .smb311 {
            if !ciphers.isEmpty {
                chosenCipher = ciphers.first { SMB2Cipher(rawValue: $0) != nil } ?? 0
                cipher = SMB2Cipher(rawValue: chosenCipher!)
            }
            if !signingAlgorithms.isEmpty {
                // AES-GMAC when offered (one GHASH pass, cheaper than CMAC), then AES-CMAC, then
                // HMAC-SHA-256; AES-CMAC is also the answer when nothing offered is supported
                // (§3.3.5.4).
                let choice: SMBSigner.Algorithm = signingAlgorithms.contains(2) ? .aesGMAC
                    : signingAlgorithms.contains(1) ? .aesCMAC : signingAlgorithms.contains(0) ? .hmacSHA256 : .aesCMAC
                chosenSigning = choice.rawValue
                signingAlgorithm = choice
            }
        }

        if chosen == .smb311 {
            preauthHash = [UInt8](repeating: 0, count: 64)
            preauthUpdate(&preauthHash, UnsafeRawBufferPointer(request.message))
        }
        let blob = SPNEGO.negotiateHint()
        let contextCount = 1 + (chosenCipher == nil ? 0 : 1) + (chosenSigning == nil ? 0 : 1)
        let elementIndex = reply.elements.count
        respond(request, reply: reply, bodyCapacity: 64 + blob.count + 8 + 48 + 16 + 16 + 16) { writer in
            self.encodeNegotiateBody(&writer, dialect: chosen.rawValue, blob: blob) { writer in
                guard chosen == .smb311 else { return 0 }
                writer.align(8)
                let contextStart = writer.offset
                writer.u16(NegotiateContext.preauthIntegrity)
                writer.u16(38)
                writer.u32(0)
                writer.u16(1)   // one hash algorithm
                writer.u16(32)  // salt length
                writer.u16(1)   // SHA-512
                writer.bytes(Bytes.random(32))
                if let chosenCipher {
                    writer.align(8)
                    writer.u16(NegotiateContext.encryption)
                    writer.u16(4)
                    writer.u32(0)
                    writer.u16(1)
                    writer.u16(chosenCipher)
                }
                if let chosenSigning {
                    writer.align(8)
                    writer.u16(NegotiateContext.signing)
                    writer.u16(4)
                    writer.u32(0)
                    writer.u16(1)
                    writer.u16(chosenSigning)
                }
                writer.patch16(UInt16(contextCount), at: 70)
                return contextStart
            }
        }
        if chosen == .smb311 {
            let element = reply.elements[elementIndex]
            preauthUpdate(&preauthHash, UnsafeRawBufferPointer(start: reply.base + element.start, count: element.end - element.start))
        }
    }

    /// The NEGOTIATE response body after the header; `contexts` writes 3.1.1 contexts and
    /// returns where they start (0 for none).
    func encodeNegotiateBody(_ writer: inout SMBWriter, dialect: UInt16, blob: [UInt8], contexts: (inout SMBWriter) -> Int) {
        writer.u16(65)
        writer.u16(serverSecurityMode)
        writer.u16(dialect)
        writer.u16(0)  // context count, patched
        writer.bytes(server.guid)
        writer.u32(serverCapabilities)
        writer.u32(UInt32(maxIOSize))
        writer.u32(UInt32(maxIOSize))
        writer.u32(UInt32(maxIOSize))
        writer.u64(FileTime.now())
        writer.u64(0)
        writer.u16(128)
        writer.u16(UInt16(blob.count))
        writer.u32(0)  // context offset, patched
        writer.bytes(blob)
        let contextStart = contexts(&writer)
        if contextStart > 0 { writer.patch32(UInt32(contextStart), at: 124) }
    }

    /// H(i) = SHA-512(H(i-1) || message) (MS-SMB2 §3.3.5.4).
    func preauthUpdate(_ hash: inout [UInt8], _ message: UnsafeRawBufferPointer) {
        let digest = Digest(.sha512)
        digest.update(hash)
        digest.update(message)
        hash = digest.finish()
    }

    /// An SMB1 NEGOTIATE (MS-SMB2 §3.3.5.3.1): a client that offers "SMB 2.???" gets an SMB2
    /// response with the wildcard dialect 0x02FF and negotiates again in SMB2; one that offers
    /// only "SMB 2.002" gets 2.0.2; anything else is not served.
    func negotiateSMB1(_ frame: UnsafeRawBufferPointer) {
        let reader = SMBReader(frame)
        guard dialect == nil, (try? reader.u8(at: 4)) == 0x72, let byteCount = try? reader.u16(at: 33),
              let strings = try? reader.slice(at: 35, count: Int(byteCount))
        else {
            connection.close(error: EPROTO)
            return
        }
        var names: [String] = []
        var index = 0
        while index < strings.count {
            guard strings[index] == 0x02 else { break }
            var end = index + 1
            while end < strings.count && strings[end] != 0 { end += 1 }
            names.append(String(decoding: UnsafeRawBufferPointer(rebasing: strings[(index + 1)..<end]), as: UTF8.self))
            index = end + 1
        }
        let revision: UInt16
        if names.contains("SMB 2.???") {
            revision = 0x02FF
        } else if names.contains("SMB 2.002") {
            revision = SMB2Dialect.smb202.rawValue
            dialect = .smb202
        } else {
            connection.close(error: EPROTO)
            return
        }
        maxIOSize = revision == 0x02FF ? server.settings.maxIOSize : 65536
        serverSecurityMode = SecurityMode.signingEnabled | (server.settings.signingRequired ? SecurityMode.signingRequired : 0)
        serverCapabilities = revision == 0x02FF ? Capability.largeMTU : 0
        let blob = SPNEGO.negotiateHint()
        connection.write(capacity: 4 + 64 + 64 + blob.count) { out in
            var writer = SMBWriter(out.baseAddress! + 4, capacity: out.count - 4)
            SMB2Header.writeResponse(&writer, command: SMB2Command.negotiate.rawValue, status: .success, creditCharge: 0, credits: 1,
                                     flags: [], nextCommand: 0, messageID: 0, asyncID: nil, treeID: 0, sessionID: 0)
            encodeNegotiateBody(&writer, dialect: revision, blob: blob) { _ in 0 }
            out.storeBytes(of: UInt32(writer.offset).bigEndian, toByteOffset: 0, as: UInt32.self)
            return 4 + writer.offset
        }
    }
}
