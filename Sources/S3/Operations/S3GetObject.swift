import HTTP
import VFS

/// GetObject and HeadObject: conditionals (RFC 9110 §13 order), single byte ranges, and the
/// data sent by reference from the VFS's blocks, with back-pressure so a large object never
/// sits in memory.
extension S3Gateway {
    func getObject(_ call: S3Call, head: Bool) async throws(S3Error) -> Int {
        // An object replaced by a PUT between our lookup and our first read is looked up again
        // (the reader gets the new object whole rather than a cut-off response).
        for _ in 0..<3 {
            if let sent = try await getObjectOnce(call, head: head) { return sent }
        }
        throw .internalError
    }

    /// nil when the object changed under us before anything was sent: try again.
    private func getObjectOnce(_ call: S3Call, head: Bool) async throws(S3Error) -> Int? {
        let root = try await bucketDirectory(call.bucket)
        let path = try ObjectPath(call.key)
        var handle: FileHandle
        var attributes: Attributes
        do {
            (handle, attributes) = try await walk(root, path.components, credentials: call.credentials)
        } catch .accessDenied {
            throw .accessDenied
        } catch {
            throw .noSuchKey
        }
        // A directory is an object only when asked for as "name/" (a folder marker).
        if attributes.type == .directory && !path.isDirectory { throw .noSuchKey }
        if attributes.type != .directory && path.isDirectory { throw .noSuchKey }
        if attributes.type != .regular && attributes.type != .directory { throw .noSuchKey }
        // "folder/" is the hidden file in the directory when a body was PUT to it, else empty.
        if attributes.type == .directory,
           let folder = try? await vfs.lookup(handle, name: ObjectPath.folderObject, mask: S3Masks.object, credentials: call.credentials) {
            (handle, attributes) = folder
        }
        let metadata = try await metadata(of: handle, attributes, credentials: call.credentials, cache: call.state)
        let size = attributes.type == .directory ? 0 : attributes.size

        if let status = Self.evaluateConditions(call.request, etag: metadata.etag, modified: attributes.mtime.seconds) {
            if status == .notModified {
                respondEmpty(call, status: .notModified) { headers in
                    headers.add("ETag", quoted: metadata.etag)
                    headers.add("Last-Modified", date: attributes.mtime.seconds)
                }
                return 0
            }
            throw .preconditionFailed
        }

        var range: ClosedRange<UInt64>?
        if let rangeText = call.request.value("range") {
            switch Self.parseRange(rangeText, size: size) {
            case .whole: range = nil
            case let .part(part): range = part
            case .unsatisfiable:
                if head {
                    respondEmpty(call, status: .rangeNotSatisfiable) { $0.add("Content-Range", "bytes */\(size)") }
                    return 0
                }
                var error = S3Error.invalidRange
                error.unsatisfiedSize = size
                throw error
            }
        }
        let start = range?.lowerBound ?? 0
        let length = range.map { $0.upperBound - $0.lowerBound + 1 } ?? size
        // The first piece is read before the head goes out, so a failure still has a status.
        var first: ReadResult?
        if !head && length > 0 {
            do {
                first = try await vfs.read(handle, offset: start, count: Int(min(length, UInt64(Self.ioSize))), credentials: call.credentials)
            } catch .stale, .notFound {
                return nil
            } catch {
                throw S3Error(error)
            }
        }
        call.exchange.respond(range == nil ? .ok : .partialContent, contentLength: length) { headers in
            headers.add("x-amz-request-id", call.requestID)
            headers.add("Last-Modified", date: attributes.mtime.seconds)
            headers.add("Accept-Ranges", "bytes")
            if let range { headers.add("Content-Range", "bytes \(range.lowerBound)-\(range.upperBound)/\(size)") }
            var shown = metadata
            Self.applyResponseOverrides(call.query, to: &shown)
            shown.write(to: &headers)
        }
        if head || length == 0 { return 0 }
        return try await sendData(call, handle: handle, offset: start, length: length, first: first)
    }

    /// Streams `length` bytes from `offset`: each VFS read's segments go out by reference, and
    /// the loop waits whenever more than a few MiB are queued on the socket.
    func sendData(_ call: S3Call, handle: FileHandle, offset: UInt64, length: UInt64, first: ReadResult? = nil) async throws(S3Error) -> Int {
        var sent: UInt64 = 0
        var pending = first
        while sent < length {
            let want = Int(min(length - sent, UInt64(Self.ioSize)))
            let result: ReadResult
            do {
                if let ready = pending {
                    result = ready
                    pending = nil
                } else {
                    result = try await vfs.read(handle, offset: offset + sent, count: want, credentials: call.credentials)
                }
            } catch {
                // The head is out: all that can be done is to cut the response short.
                call.exchange.connection.close()
                return Int(sent)
            }
            var count = 0
            for segment in result.segments where count < want {
                let bytes = segment.bytes.count <= want - count ? segment.bytes : UnsafeRawBufferPointer(rebasing: segment.bytes[0..<(want - count)])
                call.exchange.send(bytes, keepingAlive: segment.owner)
                count += bytes.count
            }
            if count == 0 {
                // The file shrank under us: the promised length cannot be met.
                call.exchange.connection.close()
                return Int(sent)
            }
            sent += UInt64(count)
            if sent < length, !(await call.exchange.drain()) { return Int(sent) }
        }
        return Int(sent)
    }

    enum RangeRequest {
        case whole
        case part(ClosedRange<UInt64>)
        case unsatisfiable
    }

    /// "bytes=a-b", "bytes=a-", "bytes=-n" (RFC 9110 §14.1.2). Several ranges, or anything
    /// malformed, mean the whole object (as S3 does).
    static func parseRange(_ text: String, size: UInt64) -> RangeRequest {
        guard text.hasPrefix("bytes=") else { return .whole }
        let spec = text.dropFirst(6).trimmingSpaces
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return .whole }
        let first = spec[..<dash].trimmingSpaces
        let last = spec[spec.index(after: dash)...].trimmingSpaces
        if first.isEmpty {
            guard let suffix = UInt64(last) else { return .whole }
            guard suffix > 0, size > 0 else { return .unsatisfiable }
            return .part((size - min(suffix, size))...(size - 1))
        }
        guard let from = UInt64(first) else { return .whole }
        let to: UInt64
        if last.isEmpty {
            to = size &- 1
        } else {
            guard let value = UInt64(last), value >= from else { return .whole }
            to = min(value, size &- 1)
        }
        guard from < size else { return .unsatisfiable }
        return .part(from...to)
    }

    /// The outcome of If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since
    /// (evaluated in RFC 9110 §13.2.2 order): nil to proceed, 412 or 304.
    static func evaluateConditions(_ request: HTTPRequest, etag: String, modified: Int64) -> HTTPStatus? {
        let readMethod = request.method == .get || request.method == .head
        if let ifMatch = request.value("if-match") {
            if !matchesETag(ifMatch, etag) { return .preconditionFailed }
        } else if let text = request.value("if-unmodified-since"), let since = HTTPDate.parse(text), modified > since {
            return .preconditionFailed
        }
        if let ifNoneMatch = request.value("if-none-match") {
            if matchesETag(ifNoneMatch, etag) { return readMethod ? .notModified : .preconditionFailed }
        } else if readMethod, let text = request.value("if-modified-since"), let since = HTTPDate.parse(text), modified <= since {
            return .notModified
        }
        return nil
    }

    /// Whether a comma list of entity tags (or "*") names `etag`.
    static func matchesETag(_ list: String, _ etag: String) -> Bool {
        for item in list.split(separator: ",") {
            let tag = item.trimmingSpaces
            if tag == "*" || ETag.normalize(tag) == etag { return true }
        }
        return false
    }

    /// response-content-type and friends (presigned GETs use them to set the download's headers).
    static func applyResponseOverrides(_ query: QueryParameters, to metadata: inout ObjectMetadata) {
        // Every override starts with "response-": most requests have none.
        guard query.pairs.contains(where: { $0.name.utf8.starts(with: "response-".utf8) }) else { return }
        if let type = query["response-content-type"] { metadata.contentType = type }
        for (parameter, header) in [("response-content-disposition", "content-disposition"), ("response-content-encoding", "content-encoding"),
                                    ("response-content-language", "content-language"), ("response-cache-control", "cache-control"),
                                    ("response-expires", "expires")] {
            guard let value = query[parameter] else { continue }
            metadata.headers.removeAll { $0.name == header }
            metadata.headers.append((header, value))
        }
    }
}
