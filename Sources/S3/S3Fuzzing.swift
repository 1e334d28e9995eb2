import Crypto
import HTTP
import VFS

/// Entry points for the fuzz targets (Fuzz/, scripts/fuzz): S3's parsers of untrusted input,
/// driven with arbitrary bytes. Not used by the server itself.
public enum S3Fuzzing {
    /// XML request bodies (DeleteObjects, CompleteMultipartUpload).
    public static func xml(_ bytes: UnsafeRawBufferPointer) {
        _ = try? XMLParser.parse(Array(bytes))
    }

    /// An aws-chunked body, with chunk signatures checked against a fixed key, fed in two
    /// pieces split where the first byte says.
    public static func awsChunked(_ bytes: UnsafeRawBufferPointer) {
        guard let first = bytes.first else { return }
        let signer = ChunkSigner(key: HMACSHA256(key: [1, 2, 3]), amzDate: "20260101T000000Z", scope: "20260101/us-east-1/s3/aws4_request",
                                 seed: String(repeating: "0", count: 64))
        var decoder = AWSChunkedDecoder(signer: first & 1 == 0 ? signer : nil)
        let rest = UnsafeRawBufferPointer(rebasing: bytes.dropFirst())
        let split = min(rest.count, Int(first))
        _ = try? decoder.feed(UnsafeRawBufferPointer(rebasing: rest[..<split]))
        _ = try? decoder.feed(UnsafeRawBufferPointer(rebasing: rest[split...]))
    }

    /// Keys, query strings, ranges, ETags and continuation tokens as a request carries them.
    public static func requestParts(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        _ = try? ObjectPath(text)
        _ = QueryParameters(bytes: bytes)
        _ = URIEncoding.decode(bytes)
        _ = S3Gateway.parseRange(text, size: 1000)
        _ = S3Gateway.matchesETag(text, "0123456789abcdef0123456789abcdef")
        _ = S3Gateway.decodeToken(text)
        _ = SigV4.parseAmzDate(text)
        _ = S3Gateway.parseISO8601(text)
    }

    /// A browser POST body: multipart form parsing, then the policy checks on what it found.
    public static func postForm(_ bytes: UnsafeRawBufferPointer) {
        guard let fields = try? S3Gateway.parseForm(Array(bytes), boundary: "XyZ") else { return }
        var form: [String: String] = [:]
        for field in fields { form[field.name.lowercased()] = field.text }
        if let policy = form["policy"] {
            _ = try? S3Gateway.checkPolicy(policy, form: form, bucket: "bucket", fileSize: 10)
        }
    }
}
