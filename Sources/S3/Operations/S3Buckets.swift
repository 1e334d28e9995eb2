import HTTP
import VFS

/// Bucket operations: ListBuckets, HeadBucket, GetBucketLocation, CreateBucket, DeleteBucket.
/// Buckets are looked up in the namespace on every request (no in-memory map that could go
/// stale when a directory is removed over NFS or SMB).
extension S3Gateway {
    /// The directory of bucket `name`: a configured bucket, or a directory under the bucket root.
    func bucketDirectory(_ name: String) async throws(S3Error) -> FileHandle {
        if let configured = currentState.buckets.first(where: { $0.name == name }) {
            guard let (handle, attributes) = try? await vfs.resolve(configured.path), attributes.type == .directory else {
                throw .noSuchBucket
            }
            return handle
        }
        guard Self.isValidBucketName(name), let root = settings.bucketRoot,
              let (rootHandle, _) = try? await vfs.resolve(root),
              let (handle, attributes) = try? await vfs.lookup(rootHandle, name: name, mask: S3Masks.type, credentials: .root),
              attributes.type == .directory
        else { throw .noSuchBucket }
        return handle
    }

    /// S3's general-purpose bucket naming rules.
    static func isValidBucketName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (3...63).contains(bytes.count) else { return false }
        func alnum(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) }
        guard alnum(bytes[0]), alnum(bytes[bytes.count - 1]) else { return false }
        for (i, b) in bytes.enumerated() {
            guard alnum(b) || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") else { return false }
            if b == UInt8(ascii: "."), i > 0, bytes[i - 1] == UInt8(ascii: ".") { return false }
        }
        let parts = name.split(separator: ".")
        if parts.count == 4 && parts.allSatisfy({ UInt8($0) != nil }) { return false }
        return !name.hasPrefix("xn--") && !name.hasSuffix("-s3alias")
    }

    func listBuckets(_ call: S3Call) async throws(S3Error) {
        var entries: [(name: String, created: Timespec)] = []
        let state = currentState
        for bucket in state.buckets where state.bucketUsers[bucket.name].map({ $0.contains(call.user.name) }) ?? true {
            if let (_, attributes) = try? await vfs.resolve(bucket.path), attributes.type == .directory {
                entries.append((bucket.name, attributes.birthTime == .zero ? attributes.ctime : attributes.birthTime))
            }
        }
        if let root = settings.bucketRoot, let (rootHandle, _) = try? await vfs.resolve(root),
           let children = try? await allEntries(rootHandle, mask: [.type, .ctime, .birthTime], credentials: .root) {
            for child in children where child.type == .directory && Self.isValidBucketName(child.name) && !entries.contains(where: { $0.name == child.name }) {
                let attributes = child.attributes ?? Attributes()
                entries.append((child.name, attributes.birthTime == .zero ? attributes.ctime : attributes.birthTime))
            }
        }
        entries.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        var document = XMLWriter()
        document.open("ListAllMyBucketsResult", namespace: true)
        document.open("Owner")
        document.element("ID", call.user.name)
        document.element("DisplayName", call.user.name)
        document.close("Owner")
        document.open("Buckets")
        for entry in entries {
            document.open("Bucket")
            document.element("Name", entry.name)
            document.element("CreationDate", Self.isoTime(entry.created))
            document.close("Bucket")
        }
        document.close("Buckets")
        document.close("ListAllMyBucketsResult")
        respondXML(call, document)
    }

    func headBucket(_ call: S3Call) async throws(S3Error) {
        _ = try await bucketDirectory(call.bucket)
        respondEmpty(call) { $0.add("x-amz-bucket-region", self.settings.region) }
    }

    func getBucketLocation(_ call: S3Call) async throws(S3Error) {
        _ = try await bucketDirectory(call.bucket)
        var document = XMLWriter()
        document.open("LocationConstraint", namespace: true)
        if settings.region != "us-east-1" { document.text(settings.region) }
        document.close("LocationConstraint")
        respondXML(call, document)
    }

    /// The bucket, and the object when the request names one, must exist.
    private func requireTarget(_ call: S3Call) async throws(S3Error) {
        let root = try await bucketDirectory(call.bucket)
        guard !call.key.isEmpty else { return }
        let path = try ObjectPath(call.key)
        do {
            _ = try await walk(root, path.components, credentials: call.credentials)
        } catch {
            throw .noSuchKey
        }
    }

    /// GetBucketVersioning (never enabled), and GetBucketAcl / GetObjectAcl (the owner has
    /// full control): tools ask for these before they do anything else.
    func getBucketConfiguration(_ call: S3Call) async throws(S3Error) {
        try await requireTarget(call)
        var document = XMLWriter()
        if call.query.has("versioning") {
            document.open("VersioningConfiguration", namespace: true)
            document.close("VersioningConfiguration")
        } else {
            document.open("AccessControlPolicy", namespace: true)
            document.open("Owner")
            document.element("ID", call.user.name)
            document.element("DisplayName", call.user.name)
            document.close("Owner")
            document.open("AccessControlList")
            document.raw(#"<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">"#)
            document.element("ID", call.user.name)
            document.element("DisplayName", call.user.name)
            document.raw("</Grantee><Permission>FULL_CONTROL</Permission></Grant>")
            document.close("AccessControlList")
            document.close("AccessControlPolicy")
        }
        respondXML(call, document)
    }

    /// PutBucketAcl / PutObjectAcl: the one ACL this server has is "private" (the owner has
    /// full control, others nothing), so that canned ACL is accepted and any other refused.
    func putACL(_ call: S3Call) async throws(S3Error) {
        try await requireTarget(call)
        _ = try await readXMLBody(call, required: false)
        guard (call.request.value("x-amz-acl") ?? "private") == "private" else {
            throw S3Error("NotImplemented", .notImplemented, "Only the canned ACL \"private\" is supported.")
        }
        respondEmpty(call)
    }

    func createBucket(_ call: S3Call) async throws(S3Error) {
        // A CreateBucketConfiguration body (LocationConstraint) is read and ignored.
        _ = try await readXMLBody(call, required: false)
        guard let root = settings.bucketRoot else {
            throw .accessDenied("CreateBucket is disabled on this server: set server.s3_bucket_root to a directory in the namespace to allow it.")
        }
        guard Self.isValidBucketName(call.bucket) else { throw .invalidBucketName }
        if currentState.buckets.contains(where: { $0.name == call.bucket }) { throw .bucketAlreadyOwnedByYou }
        do {
            let (rootHandle, _) = try await vfs.resolve(root)
            _ = try await vfs.create(in: rootHandle, name: call.bucket, kind: .directory, mode: .guarded,
                                     attributes: SetAttributes(mode: 0o755), credentials: call.credentials)
        } catch .exists {
            // Buckets belong to whoever made the directory.
            if let (rootHandle, _) = try? await vfs.resolve(root),
               let (_, attributes) = try? await vfs.lookup(rootHandle, name: call.bucket, mask: [.uid], credentials: .root),
               attributes.uid != call.credentials.uid {
                throw S3Error("BucketAlreadyExists", .conflict,
                              "The requested bucket name is not available. Please select a different name and try again.")
            }
            throw .bucketAlreadyOwnedByYou
        } catch {
            throw S3Error(error)
        }
        respondEmpty(call) { $0.add("Location", "/\(call.bucket)") }
    }

    func deleteBucket(_ call: S3Call) async throws(S3Error) {
        if currentState.buckets.contains(where: { $0.name == call.bucket }) {
            _ = try await bucketDirectory(call.bucket)
            throw .accessDenied("Bucket \(call.bucket) is defined in the server's configuration (buckets); remove it there.")
        }
        _ = try await bucketDirectory(call.bucket)
        guard let root = settings.bucketRoot, let (rootHandle, _) = try? await vfs.resolve(root) else { throw .noSuchBucket }
        do {
            _ = try await vfs.rmdir(in: rootHandle, name: call.bucket, credentials: call.credentials)
        } catch .notEmpty, .exists {
            throw .bucketNotEmpty
        } catch .notFound {
            throw .noSuchBucket
        } catch {
            throw S3Error(error)
        }
        respondEmpty(call, status: .noContent)
    }

    /// The request body as XML; nil when empty and not `required`.
    func readXMLBody(_ call: S3Call, required: Bool) async throws(S3Error) -> XMLElement? {
        let payload = try S3Payload(call.exchange, protection: call.payload, lengthRequired: false)
        var bytes: [UInt8] = []
        defer { payload.close() }
        while let piece = try await payload.next() {
            if bytes.count + piece.count > Self.maxXMLBody { throw .malformedXML }
            bytes.append(contentsOf: piece)
        }
        _ = try payload.finish()
        if bytes.isEmpty {
            if required { throw S3Error("MissingRequestBodyError", .badRequest, "Request Body is empty.") }
            return nil
        }
        return try XMLParser.parse(bytes)
    }
}

extension XMLWriter {
    /// Text content (escaped).
    mutating func text(_ value: String) { raw(Self.escape(value)) }
}
