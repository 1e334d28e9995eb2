import Crypto
import HTTP
import VFS

/// PutObject: the body is written to a hidden temporary file next to the target, checked
/// (length, SHA-256, chunk signatures, Content-MD5), made durable, given its metadata, and
/// only then renamed over the key: readers never see a partial object, and a failed upload
/// leaves nothing behind.
extension S3Gateway {
    func putObject(_ call: S3Call) async throws(S3Error) -> Int {
        let root = try await bucketDirectory(call.bucket)
        let path = try ObjectPath(call.key)
        var metadata = try ObjectMetadata.fromRequest(call.request)
        let payload = try S3Payload(call.exchange, protection: call.payload)
        defer { payload.close() }
        if let declared = payload.declaredLength, declared > settings.maxPutSize { throw .entityTooLarge }

        // A "folder/" object is a directory; its content and metadata go in a hidden file in it.
        let parent = try await makeDirectories(root, path.isDirectory ? path.components[...] : path.parents, credentials: call.credentials)
        let name = path.isDirectory ? ObjectPath.folderObject : path.name
        let (temporary, handle) = try await createTemporary(in: parent, state: call.state, credentials: call.credentials)
        do throws(S3Error) {
            let (count, synced) = try await writeBody(payload, to: handle, credentials: call.credentials)
            metadata.etag = Hex.encode(try payload.finish())
            try await publish(handle, temporary: temporary, in: parent, as: name, metadata: &metadata, synced: synced,
                              conditions: call.request, credentials: call.credentials)
            respondEmpty(call) { $0.add("ETag", quoted: metadata.etag) }
            return Int(count)
        } catch {
            _ = try? await vfs.remove(in: parent, name: temporary, credentials: call.credentials)
            // Directories made for this object and left empty go too: a failed PUT leaves nothing.
            await removeEmptyDirectories(root, path.isDirectory ? path.components[...] : path.parents, credentials: call.credentials)
            throw error
        }
    }

    /// Writes the body into `handle` as it arrives. When the length is known the last write is
    /// a FILE_SYNC one (the same descriptor writes and syncs: no separate COMMIT), and its
    /// attributes come back; otherwise the caller commits.
    func writeBody(_ payload: S3Payload, to handle: FileHandle, credentials: Credentials) async throws(S3Error) -> (UInt64, synced: Attributes?) {
        var offset: UInt64 = 0
        var synced: Attributes?
        while let piece = try await payload.next() {
            // A body without a declared length (chunked) is cut off where a declared one is refused.
            guard offset + UInt64(piece.count) <= settings.maxPutSize else { throw .entityTooLarge }
            let last = payload.declaredLength == offset + UInt64(piece.count)
            do {
                let result = try await vfs.write(handle, offset: offset, data: piece, stability: last ? .fileSync : .unstable, credentials: credentials)
                if last { synced = result.after }
            } catch {
                throw S3Error(error)
            }
            offset += UInt64(piece.count)
        }
        return (offset, synced)
    }

    /// Conditional writes: If-Match (the current object's ETag, or "*" for any object) and
    /// If-None-Match ("*": only if there is none). Checked when the new object is complete,
    /// right before it replaces the old one, so a write that finished meanwhile is seen.
    func checkWriteConditions(_ request: HTTPRequest, in directory: FileHandle, name: String, credentials: Credentials) async throws(S3Error) {
        let ifMatch = request.value("if-match")
        let ifNoneMatch = request.value("if-none-match")
        guard ifMatch != nil || ifNoneMatch != nil else { return }
        var current: String?
        if let (handle, attributes) = try? await vfs.lookup(directory, name: name, mask: S3Masks.object, credentials: credentials),
           attributes.type == .regular {
            current = try await metadata(of: handle, attributes, credentials: credentials).etag
        }
        if let ifMatch {
            guard let current, Self.matchesETag(ifMatch, current) else { throw .preconditionFailed }
        }
        if let ifNoneMatch, let current, Self.matchesETag(ifNoneMatch, current) { throw .preconditionFailed }
    }

    /// A new hidden file in `directory` for an upload in progress.
    func createTemporary(in directory: FileHandle, state: S3LoopState, credentials: Credentials) async throws(S3Error) -> (String, FileHandle) {
        let name = state.temporaryName()
        do {
            let result = try await vfs.create(in: directory, name: name, kind: .regular, mode: .guarded,
                                              attributes: SetAttributes(mode: 0o644), credentials: credentials)
            return (name, result.handle)
        } catch {
            throw S3Error(error)
        }
    }

    /// Makes a finished temporary file durable, stamps and stores its metadata, and renames it
    /// over `name` (atomically replacing an older object).
    func publish(_ handle: FileHandle, temporary: String, in directory: FileHandle, as name: String,
                 metadata: inout ObjectMetadata, synced: Attributes? = nil, conditions: HTTPRequest? = nil,
                 credentials: Credentials) async throws(S3Error) {
        if let conditions { try await checkWriteConditions(conditions, in: directory, name: name, credentials: credentials) }
        do {
            // A completed PUT means the data is on disk (FILE_SYNC semantics).
            let attributes: Attributes
            if let synced, synced.valid.isSuperset(of: [.size, .mtime]) { attributes = synced } else { attributes = try await vfs.commit(handle) }
            metadata.stamp(attributes)
            await store(metadata, on: handle, credentials: credentials)
            // SMB clients caching the object being replaced are told first.
            await vfs.recallLeases(in: directory, name: name, credentials: credentials)
            _ = try await vfs.rename(from: directory, name: temporary, to: directory, newName: name, credentials: credentials)
            // The rename (and the metadata stored before it) is on disk only once the directory is.
            _ = try await vfs.commit(directory)
        } catch .isDirectory, .exists, .notEmpty {
            throw S3Error("ObjectConflict", .conflict, "A directory with this name holds other objects; it cannot be replaced by an object.")
        } catch {
            throw S3Error(error)
        }
    }
}

extension S3LoopState {
    /// A fresh hidden name for a temporary upload file ("." + reserved prefix: out of listings).
    func temporaryName() -> String {
        temporaries &+= 1
        return "\(ObjectPath.reservedPrefix)-tmp-\(idPrefix)-\(String(temporaries, radix: 16))"
    }
}
