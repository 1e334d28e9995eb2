import Crypto
import Glibc
import HTTP
import JSON
import VFS

/// Browser-based uploads: POST to the bucket with a multipart/form-data body whose fields
/// carry the key, a base64 policy (expiration and conditions), its signature (SigV4, or the
/// AWSAccessKeyId + HMAC-SHA-1 form) and the file. The policy is checked the way S3 does it:
/// every condition must hold, and every form field except the signature ones, `file` and
/// `x-ignore-*` must be covered by one. The object is then stored like a PUT.
///
/// The body is read whole (at most `maxPostBody`): this form is for browsers uploading
/// files, larger objects go through PUT or multipart.
extension S3Gateway {
    static let maxPostBody = 64 << 20

    /// A POST of multipart/form-data to a bucket.
    static func isPostUpload(_ request: HTTPRequest) -> Bool {
        guard request.method == .post, let type = request.value("content-type") else { return false }
        return type.lowercased().hasPrefix("multipart/form-data")
    }

    struct FormField {
        var name: String
        var value: [UInt8]
        var filename: String?
        var contentType: String?

        var text: String { String(decoding: value, as: UTF8.self) }
    }

    func postObject(_ exchange: HTTPExchange, state: S3LoopState, requestID: String) async throws(S3Error) -> Int {
        let address = try address(of: exchange.request)
        guard address.key.isEmpty, !address.bucket.isEmpty else { throw .methodNotAllowed }
        let root = try await bucketDirectory(address.bucket)
        guard let boundary = Self.boundary(exchange.request.value("content-type") ?? "") else {
            throw .invalidArgument("A POST upload needs Content-Type: multipart/form-data with a boundary.")
        }
        let body: [UInt8]
        do {
            body = try await exchange.readBody(limit: Self.maxPostBody)
        } catch .tooLarge {
            throw .entityTooLarge
        } catch {
            throw .incompleteBody
        }
        let fields = try Self.parseForm(body, boundary: boundary)
        var form: [String: String] = [:]
        for field in fields where field.name.lowercased() != "file" { form[field.name.lowercased()] = field.text }
        guard let file = fields.first(where: { $0.name.lowercased() == "file" }) else {
            throw .invalidArgument("POST requires exactly one file upload per request.")
        }

        // Who signed it.
        guard let policy = form["policy"] else {
            throw .accessDenied("Anonymous POST uploads are not allowed: sign a policy with an access key.")
        }
        let user: S3User
        if let signature = form["x-amz-signature"] {
            guard form["x-amz-algorithm"] == "AWS4-HMAC-SHA256", let credential = form["x-amz-credential"], let date = form["x-amz-date"] else {
                throw .invalidArgument("A SigV4 POST needs x-amz-algorithm (AWS4-HMAC-SHA256), x-amz-credential and x-amz-date.")
            }
            user = try state.signer.verifyPolicy(credential: credential, amzDate: date, policy: policy, signature: signature)
        } else {
            guard let signature = form["signature"] else {
                throw .invalidArgument("Bucket POST must contain a field named 'Signature'.")
            }
            guard let accessKey = form["awsaccesskeyid"] else {
                throw .invalidArgument("Bucket POST must contain a field named 'AWSAccessKeyId'.")
            }
            user = try state.signer.verifyPolicyV2(accessKey: accessKey, policy: policy, signature: signature)
        }
        try checkBucketAccess(address.bucket, user)

        // What the policy allows.
        guard var key = form["key"], !key.isEmpty else { throw .invalidArgument("Bucket POST must contain a field named 'key'.") }
        key = key.replacing("${filename}", with: file.filename ?? "")
        form["key"] = key  // conditions on $key see the name after substitution
        let sizeRange = try Self.checkPolicy(policy, form: form, bucket: address.bucket, fileSize: file.value.count)
        if let sizeRange {
            if file.value.count < sizeRange.lowerBound { throw .entityTooSmall }
            if file.value.count > sizeRange.upperBound { throw .entityTooLarge }
        }

        // Store it like a PUT.
        let path = try ObjectPath(key)
        guard !path.isDirectory else { throw .invalidArgument("A POST upload cannot target a key ending in \"/\".") }
        var metadata = ObjectMetadata()
        metadata.contentType = form["content-type"] ?? file.contentType
        for (name, value) in form.sorted(by: { $0.key < $1.key }) {
            if name.hasPrefix("x-amz-meta-") { metadata.user.append((String(name.dropFirst("x-amz-meta-".count)), value)) }
            if ObjectMetadata.storedHeaders.contains(name) { metadata.headers.append((name, value)) }
        }
        metadata.etag = Hex.encode(Digest.hash(.md5, file.value))
        let credentials = user.credentials
        let parent = try await makeDirectories(root, path.parents, credentials: credentials)
        let (temporary, handle) = try await createTemporary(in: parent, state: state, credentials: credentials)
        do throws(S3Error) {
            let block = HeapBlock(capacity: file.value.count)
            file.value.withUnsafeBytes { if let base = $0.baseAddress { block.base.copyMemory(from: base, byteCount: $0.count) } }
            let written: WriteResult
            do {
                written = try await vfs.write(handle, offset: 0, data: UnsafeRawBufferPointer(start: block.base, count: file.value.count),
                                              stability: .fileSync, credentials: credentials)
            } catch {
                throw S3Error(error)
            }
            withExtendedLifetime(block) {}
            try await publish(handle, temporary: temporary, in: parent, as: path.name, metadata: &metadata, synced: written.after, credentials: credentials)
        } catch {
            _ = try? await vfs.remove(in: parent, name: temporary, credentials: credentials)
            await removeEmptyDirectories(root, path.parents, credentials: credentials)
            throw error
        }

        // The answer the form asked for.
        let etag = metadata.etag
        let location = "/\(address.bucket)/\(URIEncoding.encode(key, keepSlash: true))"
        if let redirect = form["success_action_redirect"], !redirect.isEmpty {
            let separator = redirect.contains("?") ? "&" : "?"
            let target = "\(redirect)\(separator)bucket=\(URIEncoding.encode(address.bucket))&key=\(URIEncoding.encode(key))&etag=\(URIEncoding.encode("\"\(etag)\""))"
            exchange.respond(HTTPStatus(303, "See Other"), contentLength: 0) { headers in
                headers.add("Location", target)
                headers.add("ETag", quoted: etag)
                headers.add("x-amz-request-id", requestID)
            }
        } else if form["success_action_status"] == "201" {
            var document = XMLWriter()
            document.open("PostResponse")
            document.element("Location", location)
            document.element("Bucket", address.bucket)
            document.element("Key", key)
            document.element("ETag", "\"\(etag)\"")
            document.close("PostResponse")
            exchange.respond(HTTPStatus(201, "Created"), body: document.text) { headers in
                headers.add("Content-Type", "application/xml")
                headers.add("ETag", quoted: etag)
                headers.add("Location", location)
                headers.add("x-amz-request-id", requestID)
            }
        } else {
            let status: HTTPStatus = form["success_action_status"] == "200" ? .ok : .noContent
            exchange.respond(status, contentLength: status == .noContent ? nil : 0) { headers in
                headers.add("ETag", quoted: etag)
                headers.add("Location", location)
                headers.add("x-amz-request-id", requestID)
            }
        }
        return file.value.count
    }

    /// The boundary parameter of a multipart/form-data Content-Type.
    static func boundary(_ contentType: String) -> String? {
        for parameter in contentType.split(separator: ";").dropFirst() {
            let item = parameter.trimmingSpaces
            guard item.lowercased().hasPrefix("boundary=") else { continue }
            var value = item.dropFirst("boundary=".count)
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = value.dropFirst().dropLast() }
            return value.isEmpty || value.utf8.count > 200 ? nil : String(value)
        }
        return nil
    }

    /// The parts of a multipart/form-data body (RFC 7578): each part's name, optional filename
    /// and content type, and bytes.
    static func parseForm(_ body: [UInt8], boundary: String) throws(S3Error) -> [FormField] {
        let delimiter = Array("--\(boundary)".utf8)
        let malformed = S3Error("MalformedPOSTRequest", .badRequest, "The body of your POST request is not well-formed multipart/form-data.")
        guard var position = find(delimiter, in: body, from: 0) else { throw malformed }
        var fields: [FormField] = []
        while true {
            position += delimiter.count
            if body.count >= position + 2 && body[position] == UInt8(ascii: "-") && body[position + 1] == UInt8(ascii: "-") { return fields }
            guard let lineEnd = find([0x0D, 0x0A], in: body, from: position) else { throw malformed }
            let headersStart = lineEnd + 2
            guard let headersEnd = find([0x0D, 0x0A, 0x0D, 0x0A], in: body, from: headersStart) else { throw malformed }
            let dataStart = headersEnd + 4
            guard let next = find([0x0D, 0x0A] + delimiter, in: body, from: dataStart) else { throw malformed }
            var field = FormField(name: "", value: Array(body[dataStart..<next]))
            for line in String(decoding: body[headersStart..<headersEnd], as: UTF8.self).split(separator: "\r\n") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmingSpaces
                if name == "content-disposition" {
                    for parameter in value.split(separator: ";").dropFirst() {
                        let item = parameter.trimmingSpaces
                        guard let eq = item.firstIndex(of: "=") else { continue }
                        var text = item[item.index(after: eq)...]
                        if text.hasPrefix("\""), text.hasSuffix("\""), text.count >= 2 { text = text.dropFirst().dropLast() }
                        switch item[..<eq].lowercased() {
                        case "name": field.name = String(text)
                        case "filename": field.filename = String(text)
                        default: break
                        }
                    }
                } else if name == "content-type" {
                    field.contentType = String(value)
                }
            }
            guard !field.name.isEmpty else { throw malformed }
            fields.append(field)
            if fields.count > 1000 { throw malformed }
            position = next + 2
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        return haystack.withUnsafeBytes { hay -> Int? in
            let first = needle[0]
            var i = start
            let last = hay.count - needle.count
            while i <= last {
                guard let hit = memchr(hay.baseAddress! + i, Int32(first), last - i + 1) else { return nil }
                i = UnsafeRawPointer(hit) - hay.baseAddress!
                if memcmp(hay.baseAddress! + i, needle, needle.count) == 0 { return i }
                i += 1
            }
            return nil
        }
    }

    /// Checks the policy document against the form; returns the content-length-range, if any.
    static func checkPolicy(_ policy: String, form: [String: String], bucket: String, fileSize: Int) throws(S3Error) -> ClosedRange<Int>? {
        func invalid(_ message: String) -> S3Error { S3Error("InvalidPolicyDocument", .badRequest, "Invalid Policy: \(message)") }
        func denied(_ message: String) -> S3Error { .accessDenied("Invalid according to Policy: \(message)") }
        guard let decoded = Base64.decode(policy.filter { !$0.isWhitespace }), let document = try? JSONValue.parse(bytes: decoded),
              let object = document.objectValue
        else { throw invalid("Invalid JSON.") }
        guard let expiration = object["expiration"]?.stringValue else { throw invalid("Policy missing expiration.") }
        guard let expires = Self.parseISO8601(expiration) else { throw invalid("Invalid 'expiration' value: '\(expiration)'") }
        guard let conditions = object["conditions"]?.arrayValue else { throw invalid("Policy missing conditions.") }
        if Int64(time(nil)) > expires { throw denied("Policy expired.") }

        var covered: Set<String> = []
        var sizeRange: ClosedRange<Int>?
        for condition in conditions {
            if let pairs = condition.objectValue {
                guard pairs.count == 1, let (name, expected) = pairs.first(where: { _ in true }), let value = expected.stringValue else {
                    throw invalid("Invalid simple condition: each must name one field and its value.")
                }
                let field = name.lowercased().hasPrefix("$") ? String(name.lowercased().dropFirst()) : name.lowercased()
                covered.insert(field)
                let actual = field == "bucket" ? bucket : form[field]
                guard actual == value else { throw denied("Policy Condition failed: [\"eq\", \"$\(field)\", \"\(value)\"]") }
            } else if let items = condition.arrayValue, let operation = items.first?.stringValue?.lowercased() {
                if operation == "content-length-range" {
                    guard items.count == 3, let low = items[1].intValue, let high = items[2].intValue, low >= 0, high >= low else {
                        throw invalid("Invalid content-length-range: it needs a minimum and a maximum, 0 <= minimum <= maximum.")
                    }
                    sizeRange = low...high
                    continue
                }
                guard items.count == 3, let name = items[1].stringValue, name.hasPrefix("$"), let value = items[2].stringValue else {
                    throw invalid("Invalid condition: \(operation) needs a $field and a value.")
                }
                let field = String(name.dropFirst()).lowercased()
                covered.insert(field)
                let actual = field == "bucket" ? bucket : (form[field] ?? "")
                switch operation {
                case "eq":
                    guard actual == value else { throw denied("Policy Condition failed: [\"eq\", \"$\(field)\", \"\(value)\"]") }
                case "starts-with":
                    guard actual.hasPrefix(value) else { throw denied("Policy Condition failed: [\"starts-with\", \"$\(field)\", \"\(value)\"]") }
                default:
                    throw invalid("Invalid condition operator \(operation).")
                }
            } else {
                throw invalid("Invalid condition.")
            }
        }
        let exempt: Set<String> = ["policy", "signature", "awsaccesskeyid", "x-amz-signature", "file"]
        for field in form.keys where !exempt.contains(field) && !field.hasPrefix("x-ignore-") && !covered.contains(field) {
            throw denied("Extra input fields: \(field)")
        }
        return sizeRange
    }

    /// "2026-11-24T23:41:00Z" or with fractional seconds ("…00.000Z").
    static func parseISO8601(_ text: String) -> Int64? {
        var main = Substring(text)
        guard main.hasSuffix("Z") else { return nil }
        main = main.dropLast()
        if let dot = main.firstIndex(of: ".") {
            guard main[main.index(after: dot)...].allSatisfy(\.isNumber) else { return nil }
            main = main[..<dot]
        }
        let compact = main.replacing("-", with: "").replacing(":", with: "")
        return SigV4.parseAmzDate(compact + "Z")
    }
}
