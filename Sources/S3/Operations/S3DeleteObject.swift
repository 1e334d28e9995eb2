import HTTP
import VFS

/// DeleteObject and DeleteObjects. Deleting a key that does not exist succeeds (S3 semantics);
/// directories the deletion leaves empty are removed up to the bucket's directory.
extension S3Gateway {
    func deleteObject(_ call: S3Call) async throws(S3Error) {
        let root = try await bucketDirectory(call.bucket)
        let path = try ObjectPath(call.key)
        try await delete(path, root: root, credentials: call.credentials)
        respondEmpty(call, status: .noContent)
    }

    /// Removes one object; a missing key, or a directory named without its trailing "/", is
    /// not an error and changes nothing.
    func delete(_ path: ObjectPath, root: FileHandle, credentials: Credentials) async throws(S3Error) {
        let parent: FileHandle
        do {
            parent = try await walkDirectory(root, path.parents, credentials: credentials)
        } catch .accessDenied {
            throw .accessDenied
        } catch {
            return
        }
        do {
            if path.isDirectory {
                if let (folder, _) = try? await vfs.lookup(parent, name: path.name, mask: [], credentials: credentials) {
                    _ = try? await vfs.remove(in: folder, name: ObjectPath.folderObject, credentials: credentials)
                }
                _ = try await vfs.rmdir(in: parent, name: path.name, credentials: credentials)
            } else {
                _ = try await vfs.remove(in: parent, name: path.name, credentials: credentials)
            }
        } catch .notFound, .isDirectory, .notEmpty, .exists, .notDirectory, .notPermitted {
            // Not an object (a directory holding others, or nothing at all): nothing to delete.
            // (EPERM is what unlink says for a directory.)
            return
        } catch {
            throw S3Error(error)
        }
        await removeEmptyDirectories(root, path.parents, credentials: credentials)
    }

    /// POST ?delete: up to 1000 keys in one request; each gets a Deleted or an Error entry
    /// (Quiet mode reports only errors).
    func deleteObjects(_ call: S3Call) async throws(S3Error) {
        let root = try await bucketDirectory(call.bucket)
        guard let document = try await readXMLBody(call, required: true), document.name == "Delete" else { throw .malformedXML }
        let objects = document.children("Object")
        guard !objects.isEmpty, objects.count <= 1000 else { throw .malformedXML }
        let quiet = document.child("Quiet")?.text.lowercased() == "true"
        var result = XMLWriter()
        result.open("DeleteResult", namespace: true)
        for object in objects {
            guard let key = object.child("Key")?.text else { throw .malformedXML }
            do throws(S3Error) {
                let path = try ObjectPath(key)
                try await delete(path, root: root, credentials: call.credentials)
                if !quiet {
                    result.open("Deleted")
                    result.element("Key", key)
                    result.close("Deleted")
                }
            } catch {
                result.open("Error")
                result.element("Key", key)
                result.element("Code", error.code)
                result.element("Message", error.message)
                result.close("Error")
            }
        }
        result.close("DeleteResult")
        respondXML(call, result)
    }
}
