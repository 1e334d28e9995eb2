import Crypto
@testable import HTTP
@testable import S3
import Testing
import VFS

@Suite("S3 pieces: SigV4, ranges, keys, XML, tokens")
struct S3PieceTests {
    private func request(_ text: String) -> HTTPRequest {
        let request = HTTPRequest()
        var parser = HTTPHeadParser()
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { parser.parse($0, into: request, limits: HTTPLimits()) }
        return request
    }

    /// The "GET Object" example of the AWS SigV4 documentation for S3 (header-based auth).
    @Test("SigV4 accepts AWS's documented GET example and refuses a changed request")
    func awsExample() throws {
        let user = S3User(name: "doc", accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                          credentials: Credentials(uid: 1, gid: 1))
        let signer = SigV4(users: [user.accessKey: user])
        let head = """
        GET /test.txt HTTP/1.1\r
        Host: examplebucket.s3.amazonaws.com\r
        Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41\r
        Range: bytes=0-9\r
        x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\r
        x-amz-date: 20130524T000000Z\r
        \r

        """
        let now = SigV4.parseAmzDate("20130524T000100Z")!
        let pathBytes = Array("/test.txt".utf8)
        let path = pathBytes.withUnsafeBytes { $0 }
        let verified = try signer.verify(request(head), rawPath: path, query: QueryParameters(), now: now)
        #expect(verified.user.name == "doc")
        let changed = head.replacing( "bytes=0-9", with: "bytes=0-8")
        #expect(throws: S3Error.signatureDoesNotMatch) {
            try signer.verify(request(changed), rawPath: path, query: QueryParameters(), now: now)
        }
        #expect(throws: S3Error.requestTimeTooSkewed) {
            try signer.verify(request(head), rawPath: path, query: QueryParameters(), now: now + 3600)
        }
        let unknown = head.replacing( "Credential=AKIAIOSFODNN7EXAMPLE", with: "Credential=NOBODY")
        #expect(throws: S3Error.invalidAccessKeyId) {
            try signer.verify(request(unknown), rawPath: path, query: QueryParameters(), now: now)
        }
    }

    @Test("canonical query strings sort and encode like SigV4")
    func canonicalQuery() {
        let query = QueryParameters("uploads&prefix=a%2Fb&delimiter=%2F&b=x+y")!
        #expect(query.canonical() == "b=x%20y&delimiter=%2F&prefix=a%2Fb&uploads=")
        #expect(URIEncoding.encode("a b+c%é/d", keepSlash: true) == "a%20b%2Bc%25%C3%A9/d")
        #expect(URIEncoding.decode("%E2%82%AC".utf8) == "€")
        #expect(URIEncoding.decode("%zz".utf8) == nil)
        // Same name twice: sorted by value; a parameter that sorts first only by length.
        let repeated = QueryParameters("b=2&a=z&b=1&ab=0&a")!
        #expect(repeated.canonical() == "a=&a=z&ab=0&b=1&b=2")
        #expect(repeated.canonical(excluding: "b") == "a=&a=z&ab=0")
    }

    @Test("UTF-8 validation refuses overlong forms, surrogates and code points past U+10FFFF")
    func utf8Validation() {
        func valid(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { URIEncoding.isValidUTF8($0) } }
        #expect(valid(Array("plain ascii key, long enough for the 8-byte path".utf8)))
        #expect(valid(Array("k€y 😀 é".utf8)))
        #expect(!valid([0xC0, 0xAF]))              // overlong "/"
        #expect(!valid([0xE0, 0x80, 0xAF]))        // overlong, three bytes
        #expect(!valid([0xED, 0xA0, 0x80]))        // surrogate U+D800
        #expect(!valid([0xF4, 0x90, 0x80, 0x80]))  // U+110000
        #expect(!valid([0x41, 0x42, 0xE2, 0x82]))  // cut short
        #expect(!valid(Array(repeating: 0x61, count: 9) + [0xFF]))
        #expect(URIEncoding.decode("%C0%AF".utf8) == nil)
        #expect(URIEncoding.decode("%F0%9F%98%80".utf8) == "😀")
    }

    @Test("ranges: a-b, a-, -n, clamping and unsatisfiable")
    func ranges() {
        func range(_ text: String, _ size: UInt64) -> String {
            switch S3Gateway.parseRange(text, size: size) {
            case .whole: return "whole"
            case .unsatisfiable: return "416"
            case let .part(r): return "\(r.lowerBound)-\(r.upperBound)"
            }
        }
        #expect(range("bytes=0-9", 100) == "0-9")
        #expect(range("bytes=90-", 100) == "90-99")
        #expect(range("bytes=-10", 100) == "90-99")
        #expect(range("bytes=-1000", 100) == "0-99")
        #expect(range("bytes=50-1000", 100) == "50-99")
        #expect(range("bytes=100-", 100) == "416")
        #expect(range("bytes=0-1,5-6", 100) == "whole")
        #expect(range("bytes=9-3", 100) == "whole")
        #expect(range("bytes=0-0", 0) == "416")
    }

    @Test("keys that cannot be files, or would leave the bucket, are refused")
    func keys() throws {
        #expect(try ObjectPath("a/b/c").components == ["a", "b", "c"])
        #expect(try ObjectPath("dir/").isDirectory)
        for bad in ["", "/abs", "a//b", "../x", "a/../../b", "a/./b", ".dmanoel-s3-uploads/x", String(repeating: "k", count: 1025), "a\u{0}b"] {
            #expect(throws: S3Error.self) { try ObjectPath(bad) }
        }
    }

    @Test("XML: namespaces, entities and quotes as clients send them; DOCTYPE refused")
    func xml() throws {
        let body = Array("<?xml version=\"1.0\"?><CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Part><ETag>&#34;abc&#34;</ETag><PartNumber>1</PartNumber></Part><Part><PartNumber>2</PartNumber><ETag>&quot;def&quot;</ETag></Part></CompleteMultipartUpload>".utf8)
        let root = try XMLParser.parse(body)
        #expect(root.name == "CompleteMultipartUpload")
        #expect(root.children("Part").map { ETag.normalize($0.child("ETag")!.text) } == ["abc", "def"])
        #expect(throws: S3Error.malformedXML) { try XMLParser.parse(Array("<!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>".utf8)) }
        #expect(throws: S3Error.malformedXML) { try XMLParser.parse(Array("<a><b></a>".utf8)) }
        #expect(XMLWriter.escape("a<b&\"c") == "a&lt;b&amp;&quot;c")
    }

    @Test("continuation tokens are URL-safe and round-trip")
    func tokens() {
        let key = "dir/a b+c?é~~~"
        let token = S3Gateway.encodeToken(key)
        #expect(!token.contains("+") && !token.contains("/") && !token.contains("="))
        #expect(S3Gateway.decodeToken(token) == key)
    }

    @Test("aws-chunked: signed chunks verify, a forged chunk signature fails")
    func chunked() throws {
        // The streaming example of the AWS documentation: seed signature and first chunk.
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        let dateKey = HMACSHA256.mac(key: Array("AWS4\(secret)".utf8), "20130524")
        let key = HMACSHA256(key: HMACSHA256.mac(key: HMACSHA256.mac(key: HMACSHA256.mac(key: dateKey, "us-east-1"), "s3"), "aws4_request"))
        let seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
        let chunk1 = [UInt8](repeating: 0x61, count: 65536)
        func decoder() -> AWSChunkedDecoder {
            AWSChunkedDecoder(signer: ChunkSigner(key: key, amzDate: "20130524T000000Z", scope: "20130524/us-east-1/s3/aws4_request", seed: seed))
        }
        var good = decoder()
        let header = Array("10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n".utf8)
        let input = header + chunk1 + Array("\r\n".utf8)
        let pieces = try input.withUnsafeBytes { try good.feed($0) }
        #expect(pieces.reduce(0) { $0 + $1.count } == 65536)
        var bad = decoder()
        let forged = Array("10000;chunk-signature=bd80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n".utf8) + chunk1 + Array("\r\n".utf8)
        #expect(throws: S3Error.signatureDoesNotMatch) { _ = try forged.withUnsafeBytes { try bad.feed($0) } }
    }
}

