import Crypto
import HTTP
import VFS

/// CopyObject (and the source side of UploadPartCopy): the data is copied server-side
/// (copy_file_range where the backend has it) into a temporary file that is then published
/// like a PUT.
extension S3Gateway {
    struct CopySource {
        var handle: FileHandle
        var attributes: Attributes
        var metadata: ObjectMetadata
        var bucket: String
        var key: String
    }

    /// Resolves x-amz-copy-source ("bucket/key" or "/bucket/key", URL-encoded, optional
    /// ?versionId) and checks its x-amz-copy-source-if-* conditions.
    func copySource(_ call: S3Call) async throws(S3Error) -> CopySource {
        guard var text = call.request.value("x-amz-copy-source") else { throw .invalidArgument("x-amz-copy-source is missing.") }
        if let mark = text.firstIndex(of: "?") { text = String(text[..<mark]) }
        guard let decoded = URIEncoding.decode(text.utf8) else { throw .invalidArgument("x-amz-copy-source has a malformed escape.") }
        let trimmed = decoded.hasPrefix("/") ? decoded.dropFirst() : Substring(decoded)
        guard let slash = trimmed.firstIndex(of: "/") else {
            throw .invalidArgument("x-amz-copy-source must be of the form bucket/key.")
        }
        let bucket = String(trimmed[..<slash])
        let key = String(trimmed[trimmed.index(after: slash)...])
        try checkBucketAccess(bucket, call.user)
        let root = try await bucketDirectory(bucket)
        let path = try ObjectPath(key)
        let handle: FileHandle
        let attributes: Attributes
        do {
            (handle, attributes) = try await walk(root, path.components, credentials: call.credentials)
        } catch .accessDenied {
            throw .accessDenied
        } catch {
            throw .noSuchKey
        }
        guard attributes.type == .regular else { throw .noSuchKey }
        let metadata = try await metadata(of: handle, attributes, credentials: call.credentials, cache: call.state)
        let request = call.request
        let modified = attributes.mtime.seconds
        if let ifMatch = request.value("x-amz-copy-source-if-match") {
            if !Self.matchesETag(ifMatch, metadata.etag) { throw .preconditionFailed }
        } else if let text = request.value("x-amz-copy-source-if-unmodified-since"), let since = HTTPDate.parse(text), modified > since {
            throw .preconditionFailed
        }
        if let ifNoneMatch = request.value("x-amz-copy-source-if-none-match") {
            if Self.matchesETag(ifNoneMatch, metadata.etag) { throw .preconditionFailed }
        } else if let text = request.value("x-amz-copy-source-if-modified-since"), let since = HTTPDate.parse(text), modified <= since {
            throw .preconditionFailed
        }
        return CopySource(handle: handle, attributes: attributes, metadata: metadata, bucket: bucket, key: key)
    }

    func copyObject(_ call: S3Call) async throws(S3Error) {
        let source = try await copySource(call)
        let root = try await bucketDirectory(call.bucket)
        let path = try ObjectPath(call.key)
        guard !path.isDirectory else { throw .invalidArgument("A copy cannot target a key ending in \"/\".") }
        let directive = call.request.value("x-amz-metadata-directive") ?? "COPY"
        var metadata: ObjectMetadata
        switch directive {
        case "COPY": metadata = source.metadata
        case "REPLACE": metadata = try ObjectMetadata.fromRequest(call.request)
        default: throw .invalidArgument("x-amz-metadata-directive must be COPY or REPLACE.")
        }
        if source.bucket == call.bucket && source.key == call.key && directive == "COPY" {
            throw .invalidRequest("This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.")
        }
        let parent = try await makeDirectories(root, path.parents, credentials: call.credentials)
        let (temporary, handle) = try await createTemporary(in: parent, state: call.state, credentials: call.credentials)
        do throws(S3Error) {
            // A multipart ETag does not describe the copy, which is one part: compute the MD5.
            let md5: Digest? = source.metadata.etag.contains("-") ? Digest(.md5) : nil
            do {
                try await copyData(from: source.handle, offset: 0, count: source.attributes.size, to: handle, at: 0, md5: md5, credentials: call.credentials)
            } catch {
                throw S3Error(error)
            }
            metadata.etag = md5.map { Hex.encode($0.finish()) } ?? source.metadata.etag
            try await publish(handle, temporary: temporary, in: parent, as: path.name, metadata: &metadata, credentials: call.credentials)
        } catch {
            _ = try? await vfs.remove(in: parent, name: temporary, credentials: call.credentials)
            throw error
        }
        var document = XMLWriter()
        document.open("CopyObjectResult", namespace: true)
        document.element("LastModified", Self.isoTime(metadata.stampMtime))
        document.element("ETag", "\"\(metadata.etag)\"")
        document.close("CopyObjectResult")
        respondXML(call, document)
    }
}
