import Glibc
import ONCRPC
import Runtime
import Testing
@testable import LoadClients
@testable import Workload

@Suite("NTLMv2 and SPNEGO (load client side)")
struct NTLMClientTests {
    static func hex(_ text: String) -> [UInt8] {
        let digits = Array(text.filter { !$0.isWhitespace })
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    /// A CHALLENGE message (MS-NLMP §2.2.1.2) with `targetInfo`, as the test vector's server sends.
    static func challenge(serverChallenge: [UInt8], targetInfo: [UInt8], flags: UInt32 = 0xE28A_8235) -> [UInt8] {
        let name = NTLMClient.utf16("Domain")
        var m = NTLMClient.signature + NTLMClient.le32(2)
        m += NTLMClient.le16(UInt16(name.count)) + NTLMClient.le16(UInt16(name.count)) + NTLMClient.le32(56)
        m += NTLMClient.le32(flags) + serverChallenge + [UInt8](repeating: 0, count: 8)
        m += NTLMClient.le16(UInt16(targetInfo.count)) + NTLMClient.le16(UInt16(targetInfo.count)) + NTLMClient.le32(UInt32(56 + name.count))
        m += [6, 0, 0x70, 0x17, 0, 0, 0, 15]
        return m + name + targetInfo
    }

    /// MS-NLMP §4.2.4: user "User", domain "Domain", password "Password", server challenge
    /// 0123456789abcdef, client challenge aa×8, time 0, AV pairs NbDomainName "Domain" and
    /// NbComputerName "Server": NTProofStr 68cd0ab8... and session base key 8de40cca....
    @Test func ntlmv2ResponseMatchesTheSpecificationVector() throws {
        let targetInfo = [0x02, 0x00, 0x0C, 0x00] + NTLMClient.utf16("Domain") + [0x01, 0x00, 0x0C, 0x00] + NTLMClient.utf16("Server") + [0, 0, 0, 0]
        let message = Self.challenge(serverChallenge: Self.hex("0123456789abcdef"), targetInfo: targetInfo)
        let client = NTLMClient(user: "User", password: "Password", domain: "Domain")
        let (authenticate, sessionKey) = try #require(client.authenticate(challenge: message, clientChallenge: [UInt8](repeating: 0xAA, count: 8), time: 0))
        #expect(sessionKey == Self.hex("8de40ccadbc14a82f15cb0ad0de95ca3"))
        #expect(Array(authenticate[0..<12]) == NTLMClient.signature + [3, 0, 0, 0])
        // NtChallengeResponse: NTProofStr, then the blob with the target info and a zero trailer.
        let ntLength = Int(NTLMClient.u16(authenticate, 20)), ntOffset = Int(NTLMClient.u32(authenticate, 24))
        let nt = Array(authenticate[ntOffset..<(ntOffset + ntLength)])
        #expect(Array(nt[0..<16]) == Self.hex("68cd0ab851e51c96aabc927bebef6a1c"))
        #expect(Array(nt[16...]) == [1, 1, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 8) + [UInt8](repeating: 0xAA, count: 8) + [0, 0, 0, 0] + targetInfo + [0, 0, 0, 0])
        // The user and domain fields, UTF-16LE, and the payload right after the 72-byte header.
        let userOffset = Int(NTLMClient.u32(authenticate, 40)), userLength = Int(NTLMClient.u16(authenticate, 36))
        #expect(Array(authenticate[userOffset..<(userOffset + userLength)]) == NTLMClient.utf16("User"))
        #expect(NTLMClient.u32(authenticate, 16) == 72)
        // Only flags both sides have (the server's lacks KEY_EXCH; ours never asks for it).
        #expect(NTLMClient.u32(authenticate, 60) & 0x4000_0000 == 0)
    }

    @Test func malformedChallengesAreRefused() {
        let client = NTLMClient(user: "u", password: "p", domain: "")
        let good = Self.challenge(serverChallenge: [1, 2, 3, 4, 5, 6, 7, 8], targetInfo: [0, 0, 0, 0])
        #expect(client.authenticate(challenge: good, clientChallenge: [0, 0, 0, 0, 0, 0, 0, 0], time: 1) != nil)
        var lying = good
        lying[40] = 0xFF                      // target info longer than the message
        #expect(client.authenticate(challenge: lying, clientChallenge: [0, 0, 0, 0, 0, 0, 0, 0], time: 1) == nil)
        #expect(client.authenticate(challenge: Array(good[0..<40]), clientChallenge: [0, 0, 0, 0, 0, 0, 0, 0], time: 1) == nil)
        var wrongType = good
        wrongType[8] = 3
        #expect(client.authenticate(challenge: wrongType, clientChallenge: [0, 0, 0, 0, 0, 0, 0, 0], time: 1) == nil)
    }

    /// One DER element at `at`: (tag, content range).
    static func der(_ b: [UInt8], _ at: Int) -> (UInt8, Range<Int>) {
        var length = Int(b[at + 1]), start = at + 2
        if length & 0x80 != 0 {
            let count = length & 0x7F
            length = b[(at + 2)..<(at + 2 + count)].reduce(0) { $0 << 8 | Int($1) }
            start += count
        }
        return (b[at], start..<(start + length))
    }

    @Test func spnegoTokensAreWellFormedDER() {
        let token = (0..<300).map { UInt8($0 & 0xFF) }   // long enough for a two-byte length
        let initial = NTLMClient.spnegoInit(token)
        let (tag, body) = Self.der(initial, 0)
        #expect(tag == 0x60 && body.upperBound == initial.count)
        #expect(Array(initial[body.lowerBound..<(body.lowerBound + 8)]) == [0x06, 0x06, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x02])
        let (negTag, neg) = Self.der(initial, body.lowerBound + 8)
        #expect(negTag == 0xA0 && neg.upperBound == initial.count)
        let (seqTag, seq) = Self.der(initial, neg.lowerBound)
        #expect(seqTag == 0x30)
        let (mechTag, mech) = Self.der(initial, seq.lowerBound)
        #expect(mechTag == 0xA0)
        let (tokenTag, tokenBody) = Self.der(initial, mech.upperBound)
        #expect(tokenTag == 0xA2)
        let (octetTag, octets) = Self.der(initial, tokenBody.lowerBound)
        #expect(octetTag == 0x04 && Array(initial[octets]) == token)

        let response = NTLMClient.spnegoResponse([1, 2, 3])
        #expect(response == [0xA1, 0x09, 0x30, 0x07, 0xA2, 0x05, 0x04, 0x03, 1, 2, 3])
    }

    @Test func theChallengeIsFoundInsideASpnegoReply() {
        let message = Self.challenge(serverChallenge: [9, 9, 9, 9, 9, 9, 9, 9], targetInfo: [0x02, 0x00, 0x02, 0x00, 0x41, 0x00, 0, 0, 0, 0])
        // NegTokenResp: negState, supportedMech, responseToken, then a mechListMIC after it.
        let reply = NTLMClient.der(0xA1, NTLMClient.der(0x30, [0xA0, 0x03, 0x0A, 0x01, 0x01] + NTLMClient.der(0xA2, NTLMClient.der(0x04, message))
                                                            + NTLMClient.der(0xA3, NTLMClient.der(0x04, [UInt8](repeating: 7, count: 16)))))
        #expect(reply.withUnsafeBytes { NTLMClient.challenge(inToken: $0) } == message)
        #expect([UInt8](repeating: 0, count: 64).withUnsafeBytes { NTLMClient.challenge(inToken: $0) } == nil)
    }

    @Test func smbNamesUseBackslashesInUTF16() {
        #expect(SMBClient.smbName("a/é") == [0x61, 0, 0x5C, 0, 0xE9, 0])
        #expect(SMBClient.smbName("") == [])
    }
}

@Suite("NFSv4.1 load client encoding")
struct NFS4ClientEncodingTests {
    func encode(_ body: (inout XDREncoder) -> Void) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { raw -> Int in
            var e = XDREncoder(raw)
            body(&e)
            return e.offset
        }
        return Array(buffer[0..<count])
    }

    @Test func compoundHeaderAndCreateAttributes() {
        #expect(encode { NFS4Wire.compoundHeader(&$0, operations: 3) } == [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3])
        // fattr4: bitmap {size (4), mode (33)}, then the values in attribute order.
        #expect(encode { NFS4Wire.attributes(&$0, size: 0x0102, mode: 0o644) }
                == [0, 0, 0, 2, 0, 0, 0, 0x10, 0, 0, 0, 2, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0x01, 0xA4])
        #expect(encode { NFS4Wire.attributes(&$0, size: nil, mode: 0o755) } == [0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0x01, 0xED])
        #expect(encode { NFS4Stateid(seqid: 1, other: (2, 3, 4)).encode(&$0) } == [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4])
    }

    func decodes(_ bytes: [UInt8], _ body: (inout XDRDecoder) throws(XDRError) -> Void) -> (ok: Bool, rest: Int) {
        bytes.withUnsafeBytes { raw in
            var d = XDRDecoder(raw)
            do throws(XDRError) {
                try body(&d)
                return (true, d.remaining)
            } catch {
                return (false, d.remaining)
            }
        }
    }

    @Test func everyDelegationKindIsSkipped() {
        let ace: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0x45, 0x56, 0x40, 0]   // type, flag, mask, "EV@"
        let read = [0, 0, 0, 1] + [UInt8](repeating: 1, count: 16) + [0, 0, 0, 0] + ace + [9, 9, 9, 9]
        let write = [0, 0, 0, 2] + [UInt8](repeating: 1, count: 16) + [0, 0, 0, 0] + [0, 0, 0, 1] + [UInt8](repeating: 0, count: 8) + ace + [9, 9, 9, 9]
        let noneExt: [UInt8] = [0, 0, 0, 3, 0, 0, 0, 7, 0, 0, 0, 1, 9, 9, 9, 9]
        for bytes in [[0, 0, 0, 0, 9, 9, 9, 9], read, write, noneExt] {
            let (ok, rest) = decodes(bytes) { d throws(XDRError) in try NFS4Wire.skipDelegation(&d) }
            #expect(ok && rest == 4, "\(bytes)")
        }
        #expect(!decodes([0, 0, 0, 9]) { d throws(XDRError) in try NFS4Wire.skipDelegation(&d) }.ok)
        #expect(!decodes([0, 0, 0, 0x40]) { d throws(XDRError) in try NFS4Wire.skipBitmap(&d) }.ok)
        #expect(!decodes([0, 0, 0, 18, 0, 0, 0, 0]) { d throws(XDRError) in _ = try NFS4Wire.opStatus(&d, NFS4Wire.Op.read) }.ok)
    }

    @Test func pathsSplitIntoParentAndName() {
        #expect(splitPath("a/b/c") == ("a/b", "c"))
        #expect(splitPath("c") == ("", "c"))
    }
}

@Suite("Target URLs")
struct TargetURLTests {
    @Test func nfs4AndSMBTargets() throws {
        let nfs4 = try Target.parse("nfs4://localhost/export/sub")
        #expect(nfs4.kind == .nfs4 && nfs4.host == "127.0.0.1" && nfs4.port == 2049 && nfs4.root == "/export/sub")
        let smb = try Target.parse("smb://user:p%40ss@[::1]:4445/share?sign=1&encrypt=1&dialect=3.1.1")
        #expect(smb.kind == .smb && smb.host == "::1" && smb.port == 4445 && smb.root == "share")
        #expect(smb.accessKey == "user" && smb.secretKey == "p@ss")
        #expect(smb.smbSign && smb.smbEncrypt && smb.smbDialect == 0x0311)
        #expect(smb.description == "smb://user@[::1]:4445/share?sign=1&encrypt=1&dialect=3.1.1")
        #expect(try Target.parse("smb://u:p@h/s").port == 445)
    }

    @Test func badTargetsSayWhatIsWrong() {
        func message(_ url: String) -> String {
            do { _ = try Target.parse(url); return "" } catch { return error.description }
        }
        #expect(message("nfs4://h:2049/").contains("no path below the pseudo root"))
        #expect(message("smb://h/share").contains("SMB needs USER:PASS@"))
        #expect(message("smb://u:p@h/").contains("no share"))
        #expect(message("smb://u:p@h/s?dialect=2.0.2").contains("unknown dialect '2.0.2'"))
        #expect(message("smb://u:p@h/s?encrypt=1&dialect=2.1").contains("encryption needs dialect 3.0 or later"))
        #expect(message("nfs4://h/x?mountport=1").contains("unknown parameter 'mountport=1'"))
        #expect(message("smb://u:p@h/s?sign=2").contains("sign must be 0 or 1, found '2'"))
    }

    @Test func statusesThatMeanNotFoundOrExists() {
        #expect(OpStatus(2).isNotFound && OpStatus(404).isNotFound && OpStatus(Int32(bitPattern: 0xC000_0034)).isNotFound)
        #expect(OpStatus(Int32(bitPattern: 0xC000_003A)).isNotFound && !OpStatus(13).isNotFound)
        #expect(OpStatus(17).isExists && OpStatus(Int32(bitPattern: 0xC000_0035)).isExists && !OpStatus(2).isExists)
    }

    @Test func s3XMLElementsAreRead() {
        let body = Array("<InitiateMultipartUploadResult><Bucket>b</Bucket><UploadId>abc-123</UploadId></InitiateMultipartUploadResult>".utf8)
        #expect(S3Client.element("UploadId", in: body) == "abc-123")
        #expect(S3Client.element("Error", in: body) == nil)
    }
}

@Suite("Histogram accuracy against recorded samples")
struct HistogramAccuracyTests {
    /// Percentiles from the per-operation histogram, after the JSON round trip the result file
    /// makes, against exact percentiles of the recorded samples: never above, and below by at
    /// most the histogram's stated error (1/128 < 0.8%), for several shapes of distribution.
    @Test func percentilesAreWithinTheStatedErrorOfExactOnes() throws {
        var rng = SplitMix64(seed: 2026)
        let shapes: [(String, (inout SplitMix64) -> UInt64)] = [
            ("uniform 10 µs..10 ms", { UInt64(10_000 + Double($0.next() % 9_990_000)) }),
            ("lognormal", { UInt64(SizeDistribution.lognormal(median: 200_000, sigma: 1.5, max: 50_000_000_000).sample(&$0)) }),
            ("bimodal cache hit / miss", { $0.unit() < 0.9 ? 30_000 + $0.next() % 5_000 : 4_000_000 + $0.next() % 2_000_000 }),
        ]
        for (name, draw) in shapes {
            var samples: [UInt64] = []
            var stats = OpStats()
            for _ in 0..<50_000 {
                let v = draw(&rng)
                samples.append(v)
                stats.latency.record(v)
                stats.count += 1
            }
            let phase = PhaseResult(name: "measure", kind: .measure, seconds: 1, clients: 1, inFlight: 1, ops: [OpKey(target: 0, op: "read"): stats])
            let target = try Target.parse("nfs4://127.0.0.1:2049/x")
            let text = ([Results.runLine(workload: try Workload.parse("phases: []"), source: "x", targets: [target], threads: 1, started: 0)]
                        + Results.lines(phase, targets: [target])).joined(separator: "\n")
            let path = "/tmp/dmanoel-histogram-accuracy-\(getpid()).jsonl"
            #expect(Results.writeFile(path, text))
            defer { unlink(path) }
            let histogram = try Results.read(path: path).ops[0].latency
            samples.sort()
            for q in [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999] {
                let exact = samples[Int((Double(samples.count) * q).rounded(.up)) - 1]
                let reported = histogram.percentile(q)
                #expect(reported <= exact, "\(name) p\(q): \(reported) above \(exact)")
                #expect(Double(exact - min(reported, exact)) / Double(exact) < 1.0 / 128, "\(name) p\(q): \(reported) vs \(exact)")
            }
            #expect(histogram.maximum == samples.last!)
        }
    }
}
