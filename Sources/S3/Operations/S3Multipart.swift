import Crypto
import Glibc
import HTTP
import VFS

/// Multipart uploads. Each upload is a hidden directory in the bucket,
/// `.dmanoel-s3-uploads/UPLOADID/`, holding an `upload` file (the key and the metadata given
/// at creation) and one file per part named `part-NNNNN-MD5` (the ETag is in the name, so no
/// side table is needed). Completing copies the parts (server-side where the backend can) into
/// a temporary file that is published like a PUT, then removes the upload directory; aborting
/// removes it. Hidden names never appear in listings and cannot be used as keys.
extension S3Gateway {
    static let uploadsDirectory = ObjectPath.reservedPrefix + "-uploads"
    static let minimumPartSize: UInt64 = 5 << 20
    static let maxParts = 10_000

    struct Upload {
        var id: String
        var key: String
        var metadata: ObjectMetadata
        var initiated: Timespec
        var directory: FileHandle
    }

    struct Part {
        var number: Int
        var etag: String
        var name: String
        var attributes: Attributes
        var handle: FileHandle?
    }

    /// Upload ids are 32 random hexadecimal digits.
    private static func newUploadID() -> String {
        var generator = SystemRandomNumberGenerator()
        return Hex.encode((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    private static func isUploadID(_ text: String) -> Bool {
        text.utf8.count == 32 && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// The upload `id` of `key` in the bucket (NoSuchUpload if it is gone or for another key).
    func upload(_ id: String?, root: FileHandle, key: String?, credentials: Credentials) async throws(S3Error) -> Upload {
        guard let id, Self.isUploadID(id) else { throw .noSuchUpload }
        let directory: FileHandle
        let attributes: Attributes
        do {
            (directory, attributes) = try await walk(root, [Self.uploadsDirectory, id], credentials: credentials)
        } catch {
            throw .noSuchUpload
        }
        guard attributes.type == .directory else { throw .noSuchUpload }
        let info: [UInt8]
        do {
            let (file, fileAttributes) = try await vfs.lookup(directory, name: "upload", mask: [.size], credentials: credentials)
            info = try await vfs.read(file, offset: 0, count: Int(min(fileAttributes.size, 64 * 1024)), credentials: credentials).bytes
        } catch {
            throw .noSuchUpload
        }
        guard let newline = info.firstIndex(of: 0x0A), let uploadKey = String(validating: info[..<newline], as: UTF8.self),
              let metadata = ObjectMetadata(decoding: Array(info[(newline + 1)...]))
        else { throw .noSuchUpload }
        if let key, key != uploadKey { throw .noSuchUpload }
        return Upload(id: id, key: uploadKey, metadata: metadata, initiated: attributes.birthTime == .zero ? attributes.ctime : attributes.birthTime, directory: directory)
    }

    func createMultipartUpload(_ call: S3Call) async throws(S3Error) {
        let root = try await bucketDirectory(call.bucket)
        let path = try ObjectPath(call.key)
        guard !path.isDirectory else { throw .invalidArgument("A multipart upload cannot target a key ending in \"/\".") }
        let metadata = try ObjectMetadata.fromRequest(call.request)
        let id = Self.newUploadID()
        let uploads = try await makeDirectories(root, [Self.uploadsDirectory], credentials: call.credentials)
        do {
            let directory = try await vfs.create(in: uploads, name: id, kind: .directory, mode: .guarded,
                                                 attributes: SetAttributes(mode: 0o700), credentials: call.credentials).handle
            let file = try await vfs.create(in: directory, name: "upload", kind: .regular, mode: .guarded,
                                            attributes: SetAttributes(mode: 0o600), credentials: call.credentials).handle
            var info = Array(path.key.utf8)
            info.append(0x0A)
            info.append(contentsOf: metadata.encoded())
            let block = HeapBlock(capacity: info.count)
            info.withUnsafeBytes { block.base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            _ = try await vfs.write(file, offset: 0, data: UnsafeRawBufferPointer(start: block.base, count: info.count), stability: .fileSync, credentials: call.credentials)
            withExtendedLifetime(block) {}
        } catch {
            throw S3Error(error)
        }
        var document = XMLWriter()
        document.open("InitiateMultipartUploadResult", namespace: true)
        document.element("Bucket", call.bucket)
        document.element("Key", call.key)
        document.element("UploadId", id)
        document.close("InitiateMultipartUploadResult")
        respondXML(call, document)
    }

    private func partNumber(_ call: S3Call) throws(S3Error) -> Int {
        guard let text = call.query["partNumber"], let number = Int(text), (1...Self.maxParts).contains(number) else {
            throw .invalidArgument("Part number must be an integer between 1 and 10000, inclusive.")
        }
        return number
    }

    private static func partName(_ number: Int, etag: String) -> String {
        "part-\(padded(String(number), 5))-\(etag)"
    }

    /// The parts uploaded so far, by part number.
    func parts(of upload: Upload, credentials: Credentials) async throws(S3Error) -> [Part] {
        let entries: [DirectoryEntry]
        do {
            entries = try await allEntries(upload.directory, mask: [.type, .size, .mtime], credentials: credentials)
        } catch {
            throw .noSuchUpload
        }
        var parts: [Part] = []
        for entry in entries where entry.name.hasPrefix("part-") {
            let fields = entry.name.split(separator: "-")
            guard fields.count == 3, let number = Int(fields[1]), let attributes = entry.attributes else { continue }
            parts.append(Part(number: number, etag: String(fields[2]), name: entry.name, attributes: attributes, handle: entry.handle))
        }
        parts.sort { $0.number < $1.number }
        return parts
    }

    /// Puts a finished temporary part file in place, replacing an earlier upload of the same part.
    private func installPart(_ upload: Upload, number: Int, temporary: String, etag: String, synced: Bool = false, credentials: Credentials) async throws(S3Error) {
        let name = Self.partName(number, etag: etag)
        for old in try await parts(of: upload, credentials: credentials) where old.number == number && old.name != name {
            _ = try? await vfs.remove(in: upload.directory, name: old.name, credentials: credentials)
        }
        do {
            if !synced { _ = try await vfs.commit(try await vfs.lookup(upload.directory, name: temporary, mask: [], credentials: credentials).0) }
            _ = try await vfs.rename(from: upload.directory, name: temporary, to: upload.directory, newName: name, credentials: credentials)
        } catch {
            throw S3Error(error)
        }
    }

    func uploadPart(_ call: S3Call) async throws(S3Error) -> Int {
        let root = try await bucketDirectory(call.bucket)
        let number = try partNumber(call)
        let upload = try await upload(call.query["uploadId"], root: root, key: call.key, credentials: call.credentials)
        let payload = try S3Payload(call.exchange, protection: call.payload)
        defer { payload.close() }
        if let declared = payload.declaredLength, declared > settings.maxPutSize { throw .entityTooLarge }
        let (temporary, handle) = try await createTemporary(in: upload.directory, state: call.state, credentials: call.credentials)
        do throws(S3Error) {
            let (count, synced) = try await writeBody(payload, to: handle, credentials: call.credentials)
            let etag = Hex.encode(try payload.finish())
            try await installPart(upload, number: number, temporary: temporary, etag: etag, synced: synced != nil, credentials: call.credentials)
            respondEmpty(call) { $0.add("ETag", quoted: etag) }
            return Int(count)
        } catch {
            _ = try? await vfs.remove(in: upload.directory, name: temporary, credentials: call.credentials)
            throw error
        }
    }

    func uploadPartCopy(_ call: S3Call) async throws(S3Error) {
        let root = try await bucketDirectory(call.bucket)
        let number = try partNumber(call)
        let upload = try await upload(call.query["uploadId"], root: root, key: call.key, credentials: call.credentials)
        let source = try await copySource(call)
        var range: ClosedRange<UInt64> = 0...(source.attributes.size &- 1)
        if let text = call.request.value("x-amz-copy-source-range") {
            guard case let .part(part) = Self.parseRange(text, size: source.attributes.size), text.hasPrefix("bytes="),
                  Self.rangeEnd(text).map({ $0 < source.attributes.size }) ?? true else {
                throw S3Error("InvalidRange", .rangeNotSatisfiable, "The x-amz-copy-source-range is not satisfiable.")
            }
            range = part
        }
        let count = source.attributes.size == 0 ? 0 : range.upperBound - range.lowerBound + 1
        let (temporary, handle) = try await createTemporary(in: upload.directory, state: call.state, credentials: call.credentials)
        let md5 = Digest(.md5)
        do throws(S3Error) {
            do {
                try await copyData(from: source.handle, offset: range.lowerBound, count: count, to: handle, at: 0, md5: md5, credentials: call.credentials)
            } catch {
                throw S3Error(error)
            }
            let etag = Hex.encode(md5.finish())
            try await installPart(upload, number: number, temporary: temporary, etag: etag, credentials: call.credentials)
            var document = XMLWriter()
            document.open("CopyPartResult", namespace: true)
            document.element("LastModified", Self.isoTime(Timespec(seconds: Int64(time(nil)), nanoseconds: 0)))
            document.element("ETag", "\"\(etag)\"")
            document.close("CopyPartResult")
            respondXML(call, document)
        } catch {
            _ = try? await vfs.remove(in: upload.directory, name: temporary, credentials: call.credentials)
            throw error
        }
    }

    /// The last byte a "bytes=a-b" range asks for, if it names one.
    static func rangeEnd(_ text: String) -> UInt64? {
        guard let dash = text.lastIndex(of: "-") else { return nil }
        return UInt64(text[text.index(after: dash)...])
    }

    func completeMultipartUpload(_ call: S3Call) async throws(S3Error) {
        let root = try await bucketDirectory(call.bucket)
        let upload = try await upload(call.query["uploadId"], root: root, key: call.key, credentials: call.credentials)
        guard let document = try await readXMLBody(call, required: false), document.name == "CompleteMultipartUpload" else {
            throw .malformedXML
        }
        var requested: [(number: Int, etag: String)] = []
        for part in document.children("Part") {
            guard let numberText = part.child("PartNumber").map({ Substring($0.text).trimmingSpaces }), let number = Int(numberText),
                  let etag = part.child("ETag")?.text
            else { throw .malformedXML }
            if let previous = requested.last, previous.number > number { throw .invalidPartOrder }
            requested.append((number, ETag.normalize(etag)))
        }
        guard !requested.isEmpty, requested.count <= Self.maxParts else { throw .malformedXML }
        let available = try await parts(of: upload, credentials: call.credentials)
        // A part number listed twice (a client that re-sent a part) means the upload of it that
        // exists now: one of the listed ETags must be it.
        var chosen: [Part] = []
        var index = 0
        while index < requested.count {
            let number = requested[index].number
            var end = index
            while end < requested.count && requested[end].number == number { end += 1 }
            let etags = requested[index..<end].map(\.etag)
            guard let part = available.first(where: { $0.number == number && etags.contains($0.etag) }), part.handle != nil else {
                throw .invalidPart
            }
            chosen.append(part)
            index = end
        }
        for part in chosen.dropLast() where part.attributes.size < Self.minimumPartSize { throw .entityTooSmall }
        let path = try ObjectPath(upload.key)
        let parent = try await makeDirectories(root, path.parents, credentials: call.credentials)
        let (temporary, handle) = try await createTemporary(in: parent, state: call.state, credentials: call.credentials)
        var metadata = upload.metadata
        do throws(S3Error) {
            var offset: UInt64 = 0
            let etags = Digest(.md5)
            for part in chosen {
                do {
                    try await copyData(from: part.handle!, offset: 0, count: part.attributes.size, to: handle, at: offset, md5: nil, credentials: call.credentials)
                } catch {
                    throw S3Error(error)
                }
                offset += part.attributes.size
                guard let binary = Hex.decode(Substring(part.etag)) else { throw .invalidPart }
                etags.update(binary)
            }
            metadata.etag = "\(Hex.encode(etags.finish()))-\(chosen.count)"
            try await publish(handle, temporary: temporary, in: parent, as: path.name, metadata: &metadata, credentials: call.credentials)
        } catch {
            _ = try? await vfs.remove(in: parent, name: temporary, credentials: call.credentials)
            throw error
        }
        await removeUpload(upload, root: root, credentials: call.credentials)
        var result = XMLWriter()
        result.open("CompleteMultipartUploadResult", namespace: true)
        result.element("Location", "/\(call.bucket)/\(URIEncoding.encode(upload.key, keepSlash: true))")
        result.element("Bucket", call.bucket)
        result.element("Key", upload.key)
        result.element("ETag", "\"\(metadata.etag)\"")
        result.close("CompleteMultipartUploadResult")
        respondXML(call, result)
    }

    /// Removes an upload's directory, and the uploads directory when it was the last one.
    private func removeUpload(_ upload: Upload, root: FileHandle, credentials: Credentials) async {
        guard let (uploads, _) = try? await vfs.lookup(root, name: Self.uploadsDirectory, mask: [], credentials: credentials) else { return }
        try? await removeTree(in: uploads, name: upload.id, credentials: credentials)
        _ = try? await vfs.rmdir(in: root, name: Self.uploadsDirectory, credentials: credentials)
    }

    func abortMultipartUpload(_ call: S3Call) async throws(S3Error) {
        let root = try await bucketDirectory(call.bucket)
        let upload = try await upload(call.query["uploadId"], root: root, key: call.key, credentials: call.credentials)
        await removeUpload(upload, root: root, credentials: call.credentials)
        respondEmpty(call, status: .noContent)
    }

    func listParts(_ call: S3Call) async throws(S3Error) {
        let root = try await bucketDirectory(call.bucket)
        let upload = try await upload(call.query["uploadId"], root: root, key: call.key, credentials: call.credentials)
        let maxParts = min(Int(call.query["max-parts"] ?? "") ?? 1000, 1000)
        let marker = Int(call.query["part-number-marker"] ?? "") ?? 0
        let all = try await parts(of: upload, credentials: call.credentials).filter { $0.number > marker }
        let page = all.prefix(max(0, maxParts))
        var document = XMLWriter()
        document.open("ListPartsResult", namespace: true)
        document.element("Bucket", call.bucket)
        document.element("Key", upload.key)
        document.element("UploadId", upload.id)
        document.element("PartNumberMarker", marker)
        if let last = page.last { document.element("NextPartNumberMarker", last.number) }
        document.element("MaxParts", maxParts)
        document.element("IsTruncated", page.count < all.count)
        document.element("StorageClass", "STANDARD")
        for part in page {
            document.open("Part")
            document.element("PartNumber", part.number)
            document.element("LastModified", Self.isoTime(part.attributes.mtime))
            document.element("ETag", "\"\(part.etag)\"")
            document.element("Size", part.attributes.size)
            document.close("Part")
        }
        document.close("ListPartsResult")
        respondXML(call, document)
    }

    func listMultipartUploads(_ call: S3Call) async throws(S3Error) {
        let root = try await bucketDirectory(call.bucket)
        let prefix = call.query["prefix"] ?? ""
        let maxUploads = min(Int(call.query["max-uploads"] ?? "") ?? 1000, 1000)
        let keyMarker = call.query["key-marker"] ?? ""
        var uploads: [Upload] = []
        if let (directory, _) = try? await vfs.lookup(root, name: Self.uploadsDirectory, mask: [], credentials: call.credentials),
           let entries = try? await allEntries(directory, mask: [], credentials: call.credentials) {
            for entry in entries where Self.isUploadID(entry.name) {
                if let upload = try? await upload(entry.name, root: root, key: nil, credentials: call.credentials),
                   upload.key.hasPrefix(prefix), keyMarker.isEmpty || keyMarker.utf8.lexicographicallyPrecedes(upload.key.utf8) {
                    uploads.append(upload)
                }
            }
        }
        uploads.sort { $0.key == $1.key ? $0.id < $1.id : $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        let page = uploads.prefix(max(0, maxUploads))
        var document = XMLWriter()
        document.open("ListMultipartUploadsResult", namespace: true)
        document.element("Bucket", call.bucket)
        document.element("KeyMarker", keyMarker)
        document.element("UploadIdMarker", call.query["upload-id-marker"] ?? "")
        if let last = page.last {
            document.element("NextKeyMarker", last.key)
            document.element("NextUploadIdMarker", last.id)
        }
        document.element("Prefix", prefix)
        document.element("MaxUploads", maxUploads)
        document.element("IsTruncated", page.count < uploads.count)
        for upload in page {
            document.open("Upload")
            document.element("Key", upload.key)
            document.element("UploadId", upload.id)
            document.open("Initiator")
            document.element("ID", call.user.name)
            document.element("DisplayName", call.user.name)
            document.close("Initiator")
            document.open("Owner")
            document.element("ID", call.user.name)
            document.element("DisplayName", call.user.name)
            document.close("Owner")
            document.element("StorageClass", "STANDARD")
            document.element("Initiated", Self.isoTime(upload.initiated))
            document.close("Upload")
        }
        document.close("ListMultipartUploadsResult")
        respondXML(call, document)
    }
}
