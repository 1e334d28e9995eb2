import Glibc

/// Parses a request head (request line and header fields, RFC 9112 §2–§6) from received bytes.
///
/// Strict where laxness is dangerous: a request with both Content-Length and
/// Transfer-Encoding, conflicting Content-Lengths, obsolete line folding, or a field name with
/// spaces is refused (these are how request smuggling starts). Lines may end in CRLF or a bare LF.
struct HTTPHeadParser {
    enum Outcome {
        /// More bytes are needed; nothing was consumed.
        case incomplete
        /// A head of this many bytes (including the empty line) was parsed into the request.
        case complete(Int)
        /// The head is malformed or too large: answer with this status and close.
        case failure(HTTPStatus, String)
    }

    /// Where the search for the end of the head resumes (bytes before it were already scanned).
    private(set) var scanned = 0

    mutating func reset() { scanned = 0 }

    mutating func parse(_ bytes: UnsafeRawBufferPointer, into request: HTTPRequest, limits: HTTPLimits) -> Outcome {
        // Leading empty lines before a request line are allowed (RFC 9112 §2.2).
        var start = 0
        while start < bytes.count && (bytes[start] == 0x0D || bytes[start] == 0x0A) { start += 1 }
        guard let end = findEnd(bytes, from: max(start, scanned)) else {
            scanned = max(start, bytes.count - 3)
            if bytes.count - start > limits.maxHeadSize {
                return .failure(.headerFieldsTooLarge, "the request head is larger than \(limits.maxHeadSize) bytes")
            }
            return .incomplete
        }
        scanned = 0
        let headEnd = end.contentEnd
        if headEnd - start > limits.maxHeadSize {
            return .failure(.headerFieldsTooLarge, "the request head is larger than \(limits.maxHeadSize) bytes")
        }
        request.load(UnsafeRawBufferPointer(rebasing: bytes[start..<headEnd]))
        if let failure = parseLines(request, limits: limits) { return failure }
        return .complete(end.total)
    }

    /// Finds the empty line ending the head: returns where the fields end and where the body starts.
    private func findEnd(_ bytes: UnsafeRawBufferPointer, from: Int) -> (contentEnd: Int, total: Int)? {
        var i = from
        let n = bytes.count
        while i < n {
            guard let lf = memchrIndex(bytes, 0x0A, from: i) else { return nil }
            // lf ends a line; the head ends if the next line is empty.
            if lf + 1 < n && bytes[lf + 1] == 0x0A { return (contentEnd: lf, total: lf + 2) }
            if lf + 2 < n && bytes[lf + 1] == 0x0D && bytes[lf + 2] == 0x0A { return (contentEnd: lf, total: lf + 3) }
            if lf + 2 >= n { return nil }
            i = lf + 1
        }
        return nil
    }

    @inline(__always)
    private func memchrIndex(_ bytes: UnsafeRawBufferPointer, _ byte: UInt8, from: Int) -> Int? {
        guard from < bytes.count, let base = bytes.baseAddress else { return nil }
        guard let hit = memchr(base + from, Int32(byte), bytes.count - from) else { return nil }
        return UnsafeRawPointer(hit) - base
    }

    private func parseLines(_ request: HTTPRequest, limits: HTTPLimits) -> Outcome? {
        let head = UnsafeRawBufferPointer(request.storage)
        let n = request.length
        // Request line: method SP target SP version.
        let lineEnd = indexOf(head, 0x0A, 0, n) ?? n
        var contentEnd = lineEnd
        if contentEnd > 0 && head[contentEnd - 1] == 0x0D { contentEnd -= 1 }
        guard let firstSpace = indexOf(head, 0x20, 0, contentEnd), firstSpace > 0 else {
            return .failure(.badRequest, "the request line has no method")
        }
        for i in 0..<firstSpace where !Self.isTokenByte(head[i]) {
            return .failure(.badRequest, "the method contains an invalid character")
        }
        guard let secondSpace = indexOf(head, 0x20, firstSpace + 1, contentEnd), secondSpace > firstSpace + 1 else {
            return .failure(.badRequest, "the request line has no target or no version")
        }
        // One branch per byte: (b - 0x21) wraps below 0x21, so anything outside 0x21...0x7E is ≥ 0x5E.
        var bad = false
        for i in (firstSpace + 1)..<secondSpace { bad = bad || (head[i] &- 0x21) >= 0x5E }
        if bad {
            return .failure(.badRequest, "the request target contains a space, control or non-ASCII byte")
        }
        if secondSpace - firstSpace - 1 > limits.maxTargetSize {
            return .failure(.uriTooLong, "the request target is longer than \(limits.maxTargetSize) bytes")
        }
        let version = UnsafeRawBufferPointer(rebasing: head[(secondSpace + 1)..<contentEnd])
        guard version.count == 8, version.starts(with: "HTTP/1.".utf8) else {
            // A well-formed HTTP/x.y of another version is 505; anything else is a bad request line.
            if version.count == 8, version.starts(with: "HTTP/".utf8), version[6] == UInt8(ascii: "."),
               (0x30...0x39).contains(version[5]), (0x30...0x39).contains(version[7]) {
                return .failure(.versionNotSupported, "only HTTP/1.0 and HTTP/1.1 are served")
            }
            return .failure(.badRequest, "the request line does not end with an HTTP version")
        }
        switch version[7] {
        case UInt8(ascii: "1"): request.isHTTP11 = true
        case UInt8(ascii: "0"): request.isHTTP11 = false; request.keepAlive = false
        default: return .failure(.versionNotSupported, "only HTTP/1.0 and HTTP/1.1 are served")
        }
        request.methodRange = 0..<firstSpace
        request.targetRange = (firstSpace + 1)..<secondSpace
        request.method = Self.method(UnsafeRawBufferPointer(rebasing: head[0..<firstSpace]))

        // Header fields.
        var sawContentLength = false
        var sawTransferEncoding = false
        var position = lineEnd + 1
        while position < n {
            let end = indexOf(head, 0x0A, position, n) ?? n
            var valueEnd = end
            if valueEnd > position && head[valueEnd - 1] == 0x0D { valueEnd -= 1 }
            defer { position = end + 1 }
            if valueEnd == position { continue }
            if head[position] == 0x20 || head[position] == 0x09 {
                return .failure(.badRequest, "obsolete line folding in a header field")
            }
            guard let colon = indexOf(head, UInt8(ascii: ":"), position, valueEnd), colon > position else {
                return .failure(.badRequest, "a header line has no field name and colon")
            }
            for i in position..<colon where !Self.isTokenByte(head[i]) {
                return .failure(.badRequest, "a header field name contains an invalid character")
            }
            var valueStart = colon + 1
            while valueStart < valueEnd && (head[valueStart] == 0x20 || head[valueStart] == 0x09) { valueStart += 1 }
            while valueEnd > valueStart && (head[valueEnd - 1] == 0x20 || head[valueEnd - 1] == 0x09) { valueEnd -= 1 }
            for i in valueStart..<valueEnd where (head[i] < 0x20 && head[i] != 0x09) || head[i] == 0x7F {
                return .failure(.badRequest, "a header field value contains a control character")
            }
            if request.fields.count >= limits.maxFields {
                return .failure(.headerFieldsTooLarge, "more than \(limits.maxFields) header fields")
            }
            let name = position..<colon
            let value = valueStart..<valueEnd
            request.fields.append((name: name, value: value))
            let nameBytes = UnsafeRawBufferPointer(rebasing: head[name])
            let valueBytes = UnsafeRawBufferPointer(rebasing: head[value])
            switch name.count {
            case 14 where HTTPRequest.equalsLowercase(nameBytes, raw("content-length")):
                guard let length = Self.decimal(valueBytes) else {
                    return .failure(.badRequest, "Content-Length is not a decimal number")
                }
                if sawContentLength && request.contentLength != length {
                    return .failure(.badRequest, "conflicting Content-Length fields")
                }
                sawContentLength = true
                request.contentLength = length
            case 17 where HTTPRequest.equalsLowercase(nameBytes, raw("transfer-encoding")):
                sawTransferEncoding = true
                guard HTTPRequest.equalsLowercase(valueBytes, raw("chunked")) else {
                    return .failure(.notImplemented, "only Transfer-Encoding: chunked is supported")
                }
                request.isChunked = true
            case 10 where HTTPRequest.equalsLowercase(nameBytes, raw("connection")):
                if Self.containsToken(valueBytes, "close") { request.keepAlive = false }
                if Self.containsToken(valueBytes, "keep-alive") && !request.isHTTP11 { request.keepAlive = true }
            case 6 where HTTPRequest.equalsLowercase(nameBytes, raw("expect")):
                guard HTTPRequest.equalsLowercase(valueBytes, raw("100-continue")) else {
                    return .failure(.expectationFailed, "only Expect: 100-continue is understood")
                }
                request.expectsContinue = request.isHTTP11
            default:
                break
            }
        }
        if sawContentLength && sawTransferEncoding {
            return .failure(.badRequest, "a request may not carry both Content-Length and Transfer-Encoding")
        }
        return nil
    }

    @inline(__always)
    private func raw(_ s: StaticString) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount)
    }

    /// The first `byte` in `bytes[from..<to]` (memchr: heads are a few hundred bytes, mostly
    /// in the target and a few long fields).
    private func indexOf(_ bytes: UnsafeRawBufferPointer, _ byte: UInt8, _ from: Int, _ to: Int) -> Int? {
        guard from < to, let base = bytes.baseAddress, let found = memchr(base + from, Int32(byte), to - from) else { return nil }
        return base.distance(to: UnsafeRawPointer(found))
    }

    static func method(_ bytes: UnsafeRawBufferPointer) -> HTTPMethod {
        switch bytes.count {
        case 3 where bytes.elementsEqual("GET".utf8): return .get
        case 3 where bytes.elementsEqual("PUT".utf8): return .put
        case 4 where bytes.elementsEqual("HEAD".utf8): return .head
        case 4 where bytes.elementsEqual("POST".utf8): return .post
        case 6 where bytes.elementsEqual("DELETE".utf8): return .delete
        case 7 where bytes.elementsEqual("OPTIONS".utf8): return .options
        default: return .other
        }
    }

    /// RFC 9110 §5.6.2 tchar.
    @inline(__always)
    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// A non-negative decimal of at most 19 digits (no sign, no spaces inside).
    static func decimal(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        guard !bytes.isEmpty, bytes.count <= 19 else { return nil }
        var value: UInt64 = 0
        for b in bytes {
            guard b >= 0x30 && b <= 0x39 else { return nil }
            value = value * 10 + UInt64(b - 0x30)
        }
        return value
    }

    /// Whether a comma-separated list contains `token` (case-insensitive).
    static func containsToken(_ bytes: UnsafeRawBufferPointer, _ token: StaticString) -> Bool {
        let wanted = UnsafeRawBufferPointer(start: token.utf8Start, count: token.utf8CodeUnitCount)
        var start = 0
        while start <= bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: ",") { end += 1 }
            var a = start, b = end
            while a < b && (bytes[a] == 0x20 || bytes[a] == 0x09) { a += 1 }
            while b > a && (bytes[b - 1] == 0x20 || bytes[b - 1] == 0x09) { b -= 1 }
            if HTTPRequest.equalsLowercase(UnsafeRawBufferPointer(rebasing: bytes[a..<b]), wanted) { return true }
            start = end + 1
        }
        return false
    }
}
