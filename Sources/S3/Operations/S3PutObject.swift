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
        if let declared = payload.declaredLength, declared > Self.maxPutSize { throw .entityTooLarge }

        if path.isDirectory {
            // A "folder/" marker: a directory, and only an empty body makes sense.
            while let piece = try await payload.next() {
                if !piece.isEmpty {
                    throw .invalidArgument("An object whose key ends in \"/\" is a directory here and cannot have content.")
                }
            }
            _ = try payload.finish()
            _ = try await makeDirectories(root, path.components, credentials: call.credentials)
            respondEmpty(call) { $0.add("ETag", "\"\(ETag.empty)\"") }
            return 0
        }

        let parent = try await makeDirectories(root, path.parents, credentials: call.credentials)
        let (temporary, handle) = try await createTemporary(in: parent, state: call.state, credentials: call.credentials)
        do throws(S3Error) {
            let (count, synced) = try await writeBody(payload, to: handle, credentials: call.credentials)
            metadata.etag = Hex.encode(try payload.finish())
            try await publish(handle, temporary: temporary, in: parent, as: path.name, metadata: &metadata, synced: synced, credentials: call.credentials)
            respondEmpty(call) { $0.add("ETag", "\"\(metadata.etag)\"") }
            return Int(count)
        } catch {
            _ = try? await vfs.remove(in: parent, name: temporary, credentials: call.credentials)
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
                 metadata: inout ObjectMetadata, synced: Attributes? = nil, credentials: Credentials) async throws(S3Error) {
        do {
            // A completed PUT means the data is on disk (FILE_SYNC semantics).
            let attributes: Attributes
            if let synced, synced.valid.isSuperset(of: [.size, .mtime]) { attributes = synced } else { attributes = try await vfs.commit(handle) }
            metadata.stamp(attributes)
            await store(metadata, on: handle, credentials: credentials)
            _ = try await vfs.rename(from: directory, name: temporary, to: directory, newName: name, credentials: credentials)
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
