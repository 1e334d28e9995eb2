import Crypto
import Glibc
import HTTP

/// How the request's payload is protected, as its signature declares it
/// (the `x-amz-content-sha256` value, or UNSIGNED-PAYLOAD for presigned URLs).
enum PayloadProtection {
    /// Not covered by the signature.
    case unsigned
    /// The SHA-256 of the whole body, to check once it has arrived.
    case sha256([UInt8])
    /// `aws-chunked` with a signature per chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD).
    case signedChunks(ChunkSigner)
    /// `aws-chunked` without signatures, checksum in a trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER).
    case unsignedChunks
}

/// Verifies chunk signatures of a streaming upload: each chunk's signature covers the previous
/// one, so the chain starts at the request's own signature (the seed).
final class ChunkSigner {
    let key: HMACSHA256
    let amzDate: String
    let scope: String
    var previous: String
    static let emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    init(key: HMACSHA256, amzDate: String, scope: String, seed: String) {
        self.key = key
        self.amzDate = amzDate
        self.scope = scope
        previous = seed
    }

    /// Checks one chunk's signature given the SHA-256 of its data, and advances the chain.
    func verify(signature: String, dataHash: [UInt8]) -> Bool {
        let stringToSign = "AWS4-HMAC-SHA256-PAYLOAD\n\(amzDate)\n\(scope)\n\(previous)\n\(Self.emptyHash)\n\(Hex.encode(dataHash))"
        let expected = Hex.encode(key.mac(stringToSign))
        guard SigV4.constantTimeEqual(expected, signature) else { return false }
        previous = signature
        return true
    }
}

/// AWS Signature Version 4 for S3: the Authorization header form and presigned URLs.
/// One verifier per loop thread (its signing-key cache is not shared, so it needs no lock).
final class SigV4 {
    private let users: [String: S3User]
    /// Derived signing keys by "accessKey/date/region/service"; a key is valid for a day.
    private var keys: [String: HMACSHA256] = [:]
    /// The canonical request being built, then the string to sign (reused: no allocation per
    /// request once warm), and the working space for sorting the query.
    private var canonical: [UInt8] = []
    private var querySpace: [UInt8] = []
    private var queryOrder: [(name: Range<Int>, value: Range<Int>)] = []
    /// The last credential seen and what it parsed to: clients sign request after request with
    /// the same credential, so most requests skip parsing it and finding its user.
    private var lastCredential: (text: [UInt8], scope: Scope)?
    /// Largest clock difference accepted for header-signed requests (AWS uses 15 minutes).
    static let maxSkew: Int64 = 15 * 60

    init(users: [String: S3User]) {
        self.users = users
    }

    struct Verified {
        var user: S3User
        var payload: PayloadProtection
    }

    /// Checks the request's signature. `rawPath` is the path exactly as sent (S3 signs it
    /// without a second round of encoding); `now` is the current time in seconds.
    func verify(_ request: HTTPRequest, rawPath: UnsafeRawBufferPointer, query: QueryParameters, now: Int64) throws(S3Error) -> Verified {
        if let authorization = request.value("authorization") {
            return try verifyHeader(authorization, request, rawPath: rawPath, query: query, now: now)
        }
        if query.has("X-Amz-Signature") || query.has("X-Amz-Credential") {
            return try verifyPresigned(request, rawPath: rawPath, query: query, now: now)
        }
        throw .accessDenied("Anonymous access is not allowed: sign the request with an access key.")
    }

    private func verifyHeader(_ authorization: String, _ request: HTTPRequest, rawPath: UnsafeRawBufferPointer, query: QueryParameters, now: Int64) throws(S3Error) -> Verified {
        guard authorization.hasPrefix("AWS4-HMAC-SHA256 ") else {
            if authorization.hasPrefix("AWS ") {
                throw .invalidRequest("Signature Version 2 is not supported; use AWS4-HMAC-SHA256.")
            }
            throw .authorizationMalformed("The authorization header is malformed; it must start with AWS4-HMAC-SHA256.")
        }
        var credential: Substring?
        var signedHeaders: Substring?
        var signature: Substring?
        for part in authorization.dropFirst("AWS4-HMAC-SHA256 ".count).split(separator: ",") {
            let item = part.trimmingSpaces
            guard let eq = item.firstIndex(of: "=") else { continue }
            let value = item[item.index(after: eq)...]
            switch item[..<eq] {
            case "Credential": credential = value
            case "SignedHeaders": signedHeaders = value
            case "Signature": signature = value
            default: break
            }
        }
        guard let credential, let signedHeaders, let signature else {
            throw .authorizationMalformed("The authorization header must name Credential, SignedHeaders and Signature.")
        }
        guard let amzDate = request.value("x-amz-date") else {
            throw .accessDenied("AWS authentication requires a valid Date or x-amz-date header.")
        }
        let scope = try parseCredential(credential, amzDate: amzDate)
        guard let requestTime = Self.parseAmzDate(amzDate) else {
            throw .accessDenied("The x-amz-date header is not in the ISO 8601 basic format (YYYYMMDD'T'HHMMSS'Z').")
        }
        if abs(requestTime - now) > Self.maxSkew { throw .requestTimeTooSkewed }
        guard let payloadHash = request.value("x-amz-content-sha256") else {
            throw .invalidRequest("Missing required header for this request: x-amz-content-sha256.")
        }
        let key = signingKey(scope)
        let expected = try self.signature(of: request, rawPath: rawPath, query: query, excluding: nil,
                                          signedHeaders: signedHeaders, payloadHash: payloadHash, amzDate: amzDate, scope: scope, key: key)
        guard Self.constantTimeEqual(expected, signature) else { throw .signatureDoesNotMatch }

        let payload: PayloadProtection
        switch payloadHash {
        case "UNSIGNED-PAYLOAD":
            payload = .unsigned
        case "STREAMING-AWS4-HMAC-SHA256-PAYLOAD":
            payload = .signedChunks(ChunkSigner(key: key, amzDate: amzDate, scope: scope.text, seed: expected))
        case "STREAMING-UNSIGNED-PAYLOAD-TRAILER":
            payload = .unsignedChunks
        default:
            guard payloadHash.utf8.count == 64, let digest = Hex.decode(Substring(payloadHash)) else {
                throw .invalidArgument("x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER or a SHA-256 hex digest.")
            }
            payload = .sha256(digest)
        }
        return Verified(user: scope.user, payload: payload)
    }

    private func verifyPresigned(_ request: HTTPRequest, rawPath: UnsafeRawBufferPointer, query: QueryParameters, now: Int64) throws(S3Error) -> Verified {
        guard query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" else {
            throw .authorizationMalformed("X-Amz-Algorithm must be AWS4-HMAC-SHA256.")
        }
        guard let credential = query["X-Amz-Credential"], let amzDate = query["X-Amz-Date"],
              let signedHeaders = query["X-Amz-SignedHeaders"], let signature = query["X-Amz-Signature"],
              let expiresText = query["X-Amz-Expires"]
        else {
            throw .authorizationMalformed("A presigned URL needs X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature.")
        }
        let scope = try parseCredential(Substring(credential), amzDate: amzDate)
        guard let requestTime = Self.parseAmzDate(amzDate) else {
            throw .authorizationMalformed("X-Amz-Date is not in the ISO 8601 basic format.")
        }
        guard let expires = Int64(expiresText), expires >= 0, expires <= 604_800 else {
            throw .authorizationMalformed("X-Amz-Expires must be between 0 and 604800 seconds.")
        }
        if now < requestTime - Self.maxSkew { throw .requestTimeTooSkewed }
        if now >= requestTime + expires && (expires == 0 || now > requestTime + expires) { throw .accessDenied("Request has expired.") }
        let payloadHash = request.value("x-amz-content-sha256") ?? "UNSIGNED-PAYLOAD"
        let key = signingKey(scope)
        let expected = try self.signature(of: request, rawPath: rawPath, query: query, excluding: "X-Amz-Signature",
                                          signedHeaders: Substring(signedHeaders), payloadHash: payloadHash, amzDate: amzDate, scope: scope, key: key)
        guard Self.constantTimeEqual(expected, Substring(signature)) else { throw .signatureDoesNotMatch }
        if payloadHash != "UNSIGNED-PAYLOAD", payloadHash.utf8.count == 64, let digest = Hex.decode(Substring(payloadHash)) {
            return Verified(user: scope.user, payload: .sha256(digest))
        }
        return Verified(user: scope.user, payload: .unsigned)
    }

    /// A browser POST upload's policy signed the SigV4 way: hex HMAC-SHA-256 of the base64
    /// policy under the credential's signing key.
    func verifyPolicy(credential: String, amzDate: String, policy: String, signature: String) throws(S3Error) -> S3User {
        let scope = try parseCredential(Substring(credential), amzDate: amzDate)
        let expected = Hex.encode(signingKey(scope).mac(policy))
        guard Self.constantTimeEqual(expected, signature.lowercased()) else { throw .signatureDoesNotMatch }
        return scope.user
    }

    /// The same with the older form (AWSAccessKeyId and a base64 HMAC-SHA-1 signature), which
    /// browser upload forms and the s3-tests still use.
    func verifyPolicyV2(accessKey: String, policy: String, signature: String) throws(S3Error) -> S3User {
        guard let user = users[accessKey] else { throw .invalidAccessKeyId }
        let expected = Base64.encode(HMACSHA1.mac(key: Array(user.secretKey.utf8), Array(policy.utf8)))
        guard Self.constantTimeEqual(expected, signature) else { throw .signatureDoesNotMatch }
        return user
    }

    struct Scope {
        var user: S3User
        var date: Substring
        var region: Substring
        var service: Substring
        /// "date/region/service/aws4_request"
        var text: String
    }

    /// "AKID/20261124/us-east-1/s3/aws4_request". Any region is accepted (the server has one
    /// namespace); the date must be the request's.
    private func parseCredential(_ credential: Substring, amzDate: String) throws(S3Error) -> Scope {
        let scope: Scope
        var credential = credential
        if let last = lastCredential, credential.withUTF8({ $0.elementsEqual(last.text) }) {
            scope = last.scope
        } else {
            let parts = credential.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 5, parts[4] == "aws4_request", parts[3] == "s3", parts[1].utf8.count == 8 else {
                throw .authorizationMalformed("The Credential must look like ACCESSKEY/YYYYMMDD/REGION/s3/aws4_request.")
            }
            guard let user = users[String(parts[0])] else { throw .invalidAccessKeyId }
            scope = Scope(user: user, date: parts[1], region: parts[2], service: parts[3], text: "\(parts[1])/\(parts[2])/\(parts[3])/aws4_request")
            lastCredential = (Array(credential.utf8), scope)
        }
        guard amzDate.utf8.starts(with: scope.date.utf8) else {
            throw .authorizationMalformed("The Credential's date \(scope.date) is not the request's date.")
        }
        return scope
    }

    private func signingKey(_ scope: Scope) -> HMACSHA256 {
        let cacheKey = "\(scope.user.accessKey)/\(scope.text)"
        if let key = keys[cacheKey] { return key }
        let dateKey = HMACSHA256.mac(key: Array("AWS4\(scope.user.secretKey)".utf8), String(scope.date))
        let regionKey = HMACSHA256.mac(key: dateKey, String(scope.region))
        let serviceKey = HMACSHA256.mac(key: regionKey, String(scope.service))
        let signingKey = HMACSHA256.mac(key: serviceKey, "aws4_request")
        let key = HMACSHA256(key: signingKey)
        if keys.count > 1024 { keys.removeAll() }
        keys[cacheKey] = key
        return key
    }

    /// Builds the canonical request and string to sign (SigV4 §"Create a canonical request")
    /// and returns the hex signature. Both are assembled as bytes in buffers this loop reuses,
    /// straight from the request's own bytes.
    private func signature(of request: HTTPRequest, rawPath: UnsafeRawBufferPointer, query: QueryParameters, excluding excluded: String?,
                           signedHeaders: Substring, payloadHash: String, amzDate: String, scope: Scope, key: HMACSHA256) throws(S3Error) -> String {
        canonical.removeAll(keepingCapacity: true)
        request.withMethodBytes { canonical.append(contentsOf: $0) }
        canonical.append(0x0A)
        if rawPath.isEmpty { canonical.append(UInt8(ascii: "/")) } else { canonical.append(contentsOf: rawPath) }
        canonical.append(0x0A)
        query.appendCanonical(excluding: excluded, to: &canonical, scratch: &querySpace, order: &queryOrder)
        canonical.append(0x0A)
        var sawHost = false
        for name in signedHeaders.utf8.split(separator: UInt8(ascii: ";")) {
            let lower = name.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
            if lower.elementsEqual("host".utf8) { sawHost = true }
            canonical.append(contentsOf: lower)
            canonical.append(UInt8(ascii: ":"))
            let found = lower.withUnsafeBytes { request.appendValues(named: $0, to: &canonical, transform: Self.appendCollapsed) }
            guard found else {
                throw .accessDenied("The header \(String(decoding: lower, as: UTF8.self)) is listed in SignedHeaders but is not in the request.")
            }
            canonical.append(0x0A)
        }
        guard sawHost else { throw .accessDenied("The host header must be signed.") }
        canonical.append(0x0A)
        canonical.append(contentsOf: signedHeaders.utf8)
        canonical.append(0x0A)
        canonical.append(contentsOf: payloadHash.utf8)
        let hash = canonical.withUnsafeBytes { Digest.hash(.sha256, $0) }
        // The string to sign reuses the same buffer.
        canonical.removeAll(keepingCapacity: true)
        canonical.append(contentsOf: "AWS4-HMAC-SHA256\n".utf8)
        canonical.append(contentsOf: amzDate.utf8)
        canonical.append(0x0A)
        canonical.append(contentsOf: scope.text.utf8)
        canonical.append(0x0A)
        Hex.append(hash, to: &canonical)
        let mac = canonical.withUnsafeBytes { key.mac($0) }
        return Hex.encode(mac)
    }

    /// Appends a header value trimmed, with inner runs of spaces turned into one.
    static func appendCollapsed(_ value: UnsafeRawBufferPointer, _ out: inout [UInt8]) {
        var pendingSpace = false
        var wrote = false
        for b in value {
            if b == 0x20 || b == 0x09 {
                pendingSpace = wrote
            } else {
                if pendingSpace { out.append(0x20) }
                pendingSpace = false
                wrote = true
                out.append(b)
            }
        }
    }

    /// Trims and turns inner runs of spaces into one (SigV4's canonical header values).
    static func collapseSpaces(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == 0x20 || $0 == 0x09 }) else { return value }
        var out: [UInt8] = []
        var pendingSpace = false
        for b in value.utf8 {
            if b == 0x20 || b == 0x09 {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(0x20) }
                pendingSpace = false
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// "20261124T231057Z" → seconds since the epoch.
    static func parseAmzDate(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        guard b.count == 16, b[8] == UInt8(ascii: "T"), b[15] == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int32? {
            var value: Int32 = 0
            for i in range {
                guard b[i] >= 0x30 && b[i] <= 0x39 else { return nil }
                value = value * 10 + Int32(b[i] - 0x30)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(4..<6), let day = number(6..<8),
              let hour = number(9..<11), let minute = number(11..<13), let second = number(13..<15),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var parts = tm()
        parts.tm_year = year - 1900
        parts.tm_mon = month - 1
        parts.tm_mday = day
        parts.tm_hour = hour
        parts.tm_min = minute
        parts.tm_sec = second
        return Int64(timegm(&parts))
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        constantTimeEqual(a, Substring(b))
    }

    /// Equal bytes, in a time that depends only on the lengths (signatures are secrets).
    static func constantTimeEqual(_ a: String, _ b: Substring) -> Bool {
        var a = a, b = b
        return a.withUTF8 { x in
            b.withUTF8 { y in
                guard x.count == y.count else { return false }
                var difference: UInt8 = 0
                for i in 0..<x.count { difference |= x[i] ^ y[i] }
                return difference == 0
            }
        }
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return s
    }
}
