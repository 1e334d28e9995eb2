import Crypto
import Glibc
import Runtime

/// Signs S3 requests with AWS Signature Version 4 (header form, path-style, UNSIGNED-PAYLOAD):
/// the mirror image of the server's verifier in Sources/S3/SigV4.swift. The signing key is
/// derived once per day and reused.
public final class S3Signer {
    let accessKey: String
    let secretKey: String
    let region: String
    private var keyDate = ""
    private var key: HMACSHA256?

    public init(accessKey: String, secretKey: String, region: String = "us-east-1") {
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.region = region
    }

    /// "YYYYMMDDTHHMMSSZ" for `seconds` since the epoch.
    public static func amzDate(_ seconds: Int) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))T\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))Z"
    }

    /// The Authorization header value for a request whose signed headers are host,
    /// x-amz-content-sha256 and x-amz-date. `path` is already URI-encoded; `query` is the
    /// canonical query string (sorted, encoded).
    public func authorization(method: String, path: String, query: String, host: String, amzDate: String,
                              payloadHash: String = "UNSIGNED-PAYLOAD") -> String {
        let date = String(amzDate.prefix(8))
        if date != keyDate || key == nil {
            let dateKey = HMACSHA256.mac(key: Array("AWS4\(secretKey)".utf8), date)
            let regionKey = HMACSHA256.mac(key: dateKey, region)
            let serviceKey = HMACSHA256.mac(key: regionKey, "s3")
            key = HMACSHA256(key: HMACSHA256.mac(key: serviceKey, "aws4_request"))
            keyDate = date
        }
        let signedHeaders = "host;x-amz-content-sha256;x-amz-date"
        let canonical = "\(method)\n\(path)\n\(query)\nhost:\(host)\nx-amz-content-sha256:\(payloadHash)\nx-amz-date:\(amzDate)\n\n\(signedHeaders)\n\(payloadHash)"
        let scope = "\(date)/\(region)/s3/aws4_request"
        let stringToSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope)\n\(Hex.encode(Digest.hash(.sha256, canonical)))"
        let signature = Hex.encode(key!.mac(stringToSign))
        return "AWS4-HMAC-SHA256 Credential=\(accessKey)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
    }

    /// SigV4's UriEncode: everything but A-Z a-z 0-9 - . _ ~ as %XX, and "/" too unless kept.
    public static func uriEncode(_ text: String, keepSlash: Bool) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for b in text.utf8 {
            let unreserved = (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39)
                || b == 0x2D || b == 0x2E || b == 0x5F || b == 0x7E
            if unreserved || (keepSlash && b == 0x2F) {
                out.append(b)
            } else {
                out.append(0x25); out.append(hex[Int(b >> 4)]); out.append(hex[Int(b & 0xF)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// An S3 client connection: HTTP/1.1 with keep-alive and pipelining (requests go out as they
/// are issued; responses come back in order), so many operations are in flight on one
/// connection. Loop thread only.
public final class S3Client: LoadClient, @unchecked Sendable {
    private final class Handler: ConnectionHandler, @unchecked Sendable {
        /// A response: HTTP status (-1: connection lost), body bytes, first byte time, and
        /// for requests that asked, the body and the ETag.
        struct Response {
            var code: Int32
            var bytes: Int
            var firstByte: UInt64
            var body: [UInt8] = []
            var etag = ""
        }
        struct Pending {
            var continuation: UnsafeContinuation<Response, Never>
            var isHead: Bool
            var firstByte: UInt64
            /// Keep the body and the ETag (multipart uploads read both).
            var keepsBody = false
        }
        /// The body and ETag of the response being received, when its request asked for them.
        var keptBody: [UInt8] = []
        var keptETag = ""
        var queue: [Pending] = []
        var head = 0
        // The response being received.
        var status: Int32 = 0
        var bodyLeft = 0
        var bodyTotal = 0
        var inBody = false
        var chunked = false
        var lost = false

        override func received(_ bytes: ByteSlice, on connection: Connection) -> Int {
            let raw = bytes.unsafeBytes
            var offset = 0
            while offset < raw.count, head < queue.count {
                if queue[head].firstByte == 0 { queue[head].firstByte = monotonicNanoseconds() }
                if inBody {
                    if chunked {
                        // Chunk-size line, data, CRLF; a zero chunk then CRLF ends the body.
                        guard let lineEnd = findCRLF(raw, from: offset) else { return offset }
                        let sizeText = String(decoding: UnsafeRawBufferPointer(rebasing: raw[offset..<lineEnd]), as: UTF8.self)
                        let size = Int(sizeText.split(separator: ";").first ?? "", radix: 16) ?? 0
                        if size == 0 {
                            guard raw.count - lineEnd >= 4 else { return offset }
                            offset = lineEnd + 4
                            finish()
                            continue
                        }
                        guard raw.count - (lineEnd + 2) >= size + 2 else {
                            connection.expect(bytes: raw.count - offset + size + 4)
                            return offset
                        }
                        bodyTotal += size
                        if queue[head].keepsBody { keptBody += UnsafeRawBufferPointer(rebasing: raw[(lineEnd + 2)..<(lineEnd + 2 + size)]) }
                        offset = lineEnd + 2 + size + 2
                        continue
                    }
                    let take = min(bodyLeft, raw.count - offset)
                    if queue[head].keepsBody { keptBody += UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + take)]) }
                    bodyLeft -= take
                    offset += take
                    if bodyLeft == 0 { finish() }
                    continue
                }
                // Response head.
                guard let end = findHeadEnd(raw, from: offset) else {
                    connection.expect(bytes: raw.count - offset + 4096)
                    return offset
                }
                parseHead(UnsafeRawBufferPointer(rebasing: raw[offset..<end]), keep: queue[head].keepsBody)
                offset = end
                if queue[head].isHead || status == 204 || status == 304 { bodyLeft = 0; bodyTotal = 0; chunked = false }
                inBody = true
                if !chunked && bodyLeft == 0 { finish() }
            }
            return offset
        }

        private func finish() {
            let entry = queue[head]
            head += 1
            if head == queue.count { queue.removeAll(keepingCapacity: true); head = 0 }
            inBody = false
            var result = Response(code: status, bytes: bodyTotal, firstByte: entry.firstByte)
            if entry.keepsBody {
                result.body = keptBody
                result.etag = keptETag
                keptBody = []
                keptETag = ""
            }
            chunked = false
            entry.continuation.resume(returning: result)
        }

        private func parseHead(_ head: UnsafeRawBufferPointer, keep: Bool) {
            if keep { keptBody = []; keptETag = "" }
            // "HTTP/1.1 200 OK"
            status = 0
            var i = 9
            while i < head.count, head[i] >= 0x30, head[i] <= 0x39 { status = status * 10 + Int32(head[i] - 0x30); i += 1 }
            bodyLeft = 0
            bodyTotal = 0
            chunked = false
            let text = String(decoding: head, as: UTF8.self)
            for line in text.split(separator: "\r\n").dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmingPrefix(" ")
                if name == "content-length" {
                    bodyLeft = Int(value) ?? 0
                    bodyTotal = bodyLeft
                } else if name == "transfer-encoding", value.lowercased().contains("chunked") {
                    chunked = true
                } else if keep && name == "etag" {
                    keptETag = String(value)
                }
            }
        }

        private func findCRLF(_ raw: UnsafeRawBufferPointer, from: Int) -> Int? {
            var i = from
            while i + 1 < raw.count {
                if raw[i] == 0x0D && raw[i + 1] == 0x0A { return i }
                i += 1
            }
            return nil
        }

        /// The offset just past "\r\n\r\n", or nil.
        private func findHeadEnd(_ raw: UnsafeRawBufferPointer, from: Int) -> Int? {
            var i = from
            while i + 3 < raw.count {
                if raw[i] == 0x0D && raw[i + 1] == 0x0A && raw[i + 2] == 0x0D && raw[i + 3] == 0x0A { return i + 4 }
                i += 1
            }
            return nil
        }

        var closeError: Int32?

        override func closed(_ connection: Connection, error: Int32) {
            lost = true
            closeError = error
            let waiting = queue[head...]
            queue.removeAll()
            head = 0
            for entry in waiting { entry.continuation.resume(returning: Response(code: -1, bytes: 0, firstByte: monotonicNanoseconds())) }
        }
    }

    private let handler: Handler
    private let connection: Connection
    private let signer: S3Signer
    private let payload: PayloadBuffer
    private let hostHeader: String
    public let target: Target

    /// Connects on `loop` (its thread). Call from a task on `loop`.
    public static func connect(_ target: Target, loop: EventLoop, payload: PayloadBuffer) throws(LoadClientError) -> S3Client {
        let handler = Handler()
        let connection = try LoadClients.connect(target, loop: loop, handler: handler)
        return S3Client(loop: loop, handler: handler, connection: connection, payload: payload, target: target)
    }

    private init(loop: EventLoop, handler: Handler, connection: Connection, payload: PayloadBuffer, target: Target) {
        self.handler = handler
        self.connection = connection
        self.payload = payload
        self.target = target
        signer = S3Signer(accessKey: target.accessKey, secretKey: target.secretKey, region: target.region)
        hostHeader = target.hostPort
        super.init(loop: loop)
    }

    public override func close() { connection.close() }
    public override var closeError: Int32? { handler.closeError }

    private var cachedSecond = 0
    private var cachedDate = ""

    public override func perform(_ operation: Operation) async -> OpResult {
        let start = monotonicNanoseconds()
        guard let kind = operation.kind.s3Equivalent else {
            return OpResult(status: .unsupported, bytes: 0, start: start, firstByte: start, end: start)
        }
        guard !handler.lost, !connection.isClosing else {
            return OpResult(status: .connectionLost, bytes: 0, start: start, firstByte: start, end: start)
        }
        if kind == .multipart { return await multipart(operation, start: start) }
        let method: String
        var path = "/" + target.root
        var query = ""
        var bodyCount = 0
        switch kind {
        case .get: method = "GET"
        case .put: method = "PUT"; bodyCount = operation.kind == .create ? 0 : operation.length
        case .head: method = "HEAD"
        case .delete: method = "DELETE"
        default:
            method = "GET"
            let prefix = operation.path.isEmpty ? "" : operation.path + "/"
            query = "delimiter=%2F&list-type=2&max-keys=1000&prefix=\(S3Signer.uriEncode(prefix, keepSlash: false))"
        }
        if kind != .list { path += "/" + S3Signer.uriEncode(operation.path, keepSlash: true) }
        var range = ""
        if kind == .get && operation.length > 0 {
            range = "Range: bytes=\(operation.offset)-\(operation.offset + UInt64(operation.length) - 1)\r\n"
        }
        let response = await request(method, path: path, query: query, extraHeaders: range, isHead: kind == .head,
                                     body: bodyCount > 0 ? payload.prefix(bodyCount) : nil)
        return OpResult(status: Self.status(response.code), bytes: kind == .put ? bodyCount : response.bytes, start: start,
                        firstByte: response.firstByte == 0 ? monotonicNanoseconds() : response.firstByte, end: monotonicNanoseconds())
    }

    private static func status(_ code: Int32) -> OpStatus {
        code < 0 ? .connectionLost : (code >= 200 && code < 300 ? .ok : OpStatus(code))
    }

    /// Sends one signed request (the body by reference, or `text`) and waits for its response.
    private func request(_ method: String, path: String, query: String, extraHeaders: String = "", isHead: Bool = false,
                         body: UnsafeRawBufferPointer? = nil, text: String = "", keepsBody: Bool = false) async -> Handler.Response {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        if ts.tv_sec != cachedSecond {
            cachedSecond = ts.tv_sec
            cachedDate = S3Signer.amzDate(ts.tv_sec)
        }
        let authorization = signer.authorization(method: method, path: path, query: query, host: hostHeader, amzDate: cachedDate)
        let bodyCount = body?.count ?? text.utf8.count
        let head = "\(method) \(path)\(query.isEmpty ? "" : "?" + query) HTTP/1.1\r\nHost: \(hostHeader)\r\nx-amz-date: \(cachedDate)\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\nAuthorization: \(authorization)\r\n\(extraHeaders)Content-Length: \(bodyCount)\r\n\r\n"
        return await withUnsafeContinuation { (continuation: UnsafeContinuation<Handler.Response, Never>) in
            handler.queue.append(.init(continuation: continuation, isHead: isHead, firstByte: 0, keepsBody: keepsBody))
            var message = head + text
            message.withUTF8 { connection.write(UnsafeRawBufferPointer($0)) }
            if let body, !body.isEmpty { connection.send(body, keepingAlive: payload) }
        }
    }

    /// Part size of multipart uploads: S3's minimum for all parts but the last.
    public static let partSize = 5 << 20

    /// A multipart upload of `length` bytes: CreateMultipartUpload, UploadPart for each 5 MiB
    /// (one after another; the pattern payload again in each), CompleteMultipartUpload with
    /// their ETags. A failed part aborts the upload.
    private func multipart(_ operation: Operation, start: UInt64) async -> OpResult {
        let path = "/" + target.root + "/" + S3Signer.uriEncode(operation.path, keepSlash: true)
        func done(_ status: OpStatus, _ bytes: Int, _ first: UInt64) -> OpResult {
            OpResult(status: status, bytes: bytes, start: start, firstByte: first == 0 ? monotonicNanoseconds() : first, end: monotonicNanoseconds())
        }
        let created = await request("POST", path: path, query: "uploads=", keepsBody: true)
        let first = created.firstByte
        guard Self.status(created.code).isOK else { return done(Self.status(created.code), 0, first) }
        guard let uploadID = Self.element("UploadId", in: created.body) else { return done(.badReply, 0, first) }
        let encodedID = S3Signer.uriEncode(uploadID, keepSlash: false)
        let length = max(operation.length, 1)
        let parts = (length + Self.partSize - 1) / Self.partSize
        var etags: [String] = []
        for number in 1...parts {
            let part = payload.prefix(min(Self.partSize, length - (number - 1) * Self.partSize))
            let uploaded = await request("PUT", path: path, query: "partNumber=\(number)&uploadId=\(encodedID)", body: part, keepsBody: true)
            let status = Self.status(uploaded.code)
            guard status.isOK, !uploaded.etag.isEmpty else {
                _ = await request("DELETE", path: path, query: "uploadId=\(encodedID)")
                return done(status.isOK ? .badReply : status, 0, first)
            }
            etags.append(uploaded.etag)
        }
        var xml = "<CompleteMultipartUpload>"
        for (i, etag) in etags.enumerated() { xml += "<Part><PartNumber>\(i + 1)</PartNumber><ETag>\(etag)</ETag></Part>" }
        xml += "</CompleteMultipartUpload>"
        let completed = await request("POST", path: path, query: "uploadId=\(encodedID)", text: xml, keepsBody: true)
        let status = Self.status(completed.code)
        // A 200 may still carry an <Error> (the upload failed while the response streamed).
        if status.isOK && Self.element("Error", in: completed.body) != nil { return done(.badReply, 0, first) }
        return done(status, status.isOK ? length : 0, first)
    }

    /// The text of the first `<name>` element of an XML body.
    static func element(_ name: String, in body: [UInt8]) -> String? {
        let text = String(decoding: body, as: UTF8.self)
        guard let open = text.firstRange(of: "<\(name)>") else { return nil }
        let rest = text[open.upperBound...]
        guard let close = rest.firstRange(of: "</\(name)>") else { return nil }
        return String(rest[..<close.lowerBound])
    }
}
