import Crypto
import VFS

/// An object key mapped onto the VFS: "a/b/c" is the file c in the directory a/b under the
/// bucket's directory. A key ending in "/" names a directory (the "folder" objects S3 tools
/// create).
struct ObjectPath {
    var key: String
    var components: [String]
    var isDirectory: Bool

    var name: String { components[components.count - 1] }
    var parents: ArraySlice<String> { components.dropLast() }

    /// Names the server keeps for itself inside buckets (temporary uploads, multipart parts).
    static let reservedPrefix = ".dmanoel-s3"
    /// The file inside directory "d" that holds the content and metadata of the object "d/"
    /// when one was PUT (S3 "folder" objects may have a body).
    static let folderObject = reservedPrefix + "-folder"
    static let maxKeyBytes = 1024

    /// Refuses keys that cannot be files: empty segments, "." and "..", NUL, over-long names,
    /// and the server's reserved names. Nothing a client sends can leave the bucket: every
    /// segment is looked up as one name under the bucket's directory.
    init(_ key: String) throws(S3Error) {
        guard !key.isEmpty else { throw .invalidArgument("The object key is empty.") }
        guard key.utf8.count <= Self.maxKeyBytes else { throw S3Error("KeyTooLongError", .badRequest, "Your key is too long.") }
        var parts = key.utf8.contains(UInt8(ascii: "/")) ? key.split(separator: "/", omittingEmptySubsequences: false).map(String.init) : [key]
        isDirectory = key.hasSuffix("/")
        if isDirectory { parts.removeLast() }
        guard !parts.isEmpty else { throw .invalidArgument("The object key \"/\" cannot be stored.") }
        for part in parts {
            guard !part.isEmpty else {
                throw .invalidArgument("Keys with empty path segments (\"//\" or a leading \"/\") cannot be stored as files.")
            }
            guard part != "." && part != ".." else {
                throw .invalidArgument("Keys with \".\" or \"..\" path segments cannot be stored as files.")
            }
            guard part.utf8.count <= 255 else {
                throw S3Error("KeyTooLongError", .badRequest, "A path segment of the key is longer than 255 bytes.")
            }
            guard !part.utf8.contains(0) else { throw .invalidArgument("Keys cannot contain NUL characters.") }
            guard !part.hasPrefix(Self.reservedPrefix) else {
                throw .invalidArgument("Path segments starting with \(Self.reservedPrefix) are reserved by the server.")
            }
        }
        self.key = key
        components = parts
    }
}

/// The attributes the S3 layer asks the VFS for.
enum S3Masks {
    static let object: AttributeMask = [.type, .size, .mtime, .ctime, .fileid]
    static let type: AttributeMask = [.type]
}

extension S3Gateway {
    /// Looks each segment up under `root`; the last handle and its attributes.
    func walk(_ root: FileHandle, _ components: some Collection<String>, credentials: Credentials) async throws(VFSError) -> (FileHandle, Attributes) {
        var handle = root
        var attributes = Attributes()
        var index = 0
        let last = components.count - 1
        for name in components {
            (handle, attributes) = try await vfs.lookup(handle, name: name, mask: index == last ? S3Masks.object : S3Masks.type, credentials: credentials)
            if index < last && attributes.type != .directory { throw .notDirectory }
            index += 1
        }
        return (handle, attributes)
    }

    /// The directory for `components` under `root`, created where missing (mkdir -p).
    func makeDirectories(_ root: FileHandle, _ components: some Collection<String>, credentials: Credentials) async throws(S3Error) -> FileHandle {
        var handle = root
        for name in components {
            let found: (FileHandle, Attributes)?
            do {
                found = try await vfs.lookup(handle, name: name, mask: S3Masks.type, credentials: credentials)
            } catch .notFound {
                found = nil
            } catch {
                throw S3Error(error)
            }
            if let (child, attributes) = found {
                guard attributes.type == .directory else {
                    throw S3Error("ObjectConflict", .conflict, "The key's path goes through an existing object (\(name)); a file cannot also be a directory.")
                }
                handle = child
                continue
            }
            do {
                handle = try await vfs.create(in: handle, name: name, kind: .directory, mode: .guarded, attributes: SetAttributes(mode: 0o755), credentials: credentials).handle
            } catch .exists {
                // Created by someone else meanwhile.
                do { handle = try await vfs.lookup(handle, name: name, mask: S3Masks.type, credentials: credentials).0 } catch { throw S3Error(error) }
            } catch {
                throw S3Error(error)
            }
        }
        return handle
    }

    /// Removes the directories along `components` (deepest first) that are now empty, up to
    /// but not including the bucket's own directory. Stops at the first that is not empty.
    func removeEmptyDirectories(_ root: FileHandle, _ components: ArraySlice<String>, credentials: Credentials) async {
        var depth = components.count
        while depth > 0 {
            let parentPath = components.prefix(depth - 1)
            guard let parent = try? await walkDirectory(root, parentPath, credentials: credentials) else { return }
            do {
                _ = try await vfs.rmdir(in: parent, name: components[components.startIndex + depth - 1], credentials: credentials)
            } catch {
                return
            }
            depth -= 1
        }
    }

    /// Like `walk` but only for directories, and `root` itself for no components.
    func walkDirectory(_ root: FileHandle, _ components: some Collection<String>, credentials: Credentials) async throws(VFSError) -> FileHandle {
        guard !components.isEmpty else { return root }
        let (handle, attributes) = try await walk(root, components, credentials: credentials)
        guard attributes.type == .directory else { throw .notDirectory }
        return handle
    }

    /// Removes a directory and everything under it.
    func removeTree(in parent: FileHandle, name: String, credentials: Credentials) async throws(VFSError) {
        let (handle, attributes) = try await vfs.lookup(parent, name: name, mask: S3Masks.type, credentials: credentials)
        guard attributes.type == .directory else {
            _ = try await vfs.remove(in: parent, name: name, credentials: credentials)
            return
        }
        for entry in try await allEntries(handle, mask: [], credentials: credentials) {
            if entry.type == .directory {
                try await removeTree(in: handle, name: entry.name, credentials: credentials)
            } else {
                _ = try await vfs.remove(in: handle, name: entry.name, credentials: credentials)
            }
        }
        _ = try await vfs.rmdir(in: parent, name: name, credentials: credentials)
    }

    /// Every entry of a directory (all readdir pages).
    func allEntries(_ directory: FileHandle, mask: AttributeMask, credentials: Credentials) async throws(VFSError) -> [DirectoryEntry] {
        var entries: [DirectoryEntry] = []
        var cookie: UInt64 = 0
        var verifier: UInt64 = 0
        while true {
            let page = try await vfs.readdir(directory, cookie: cookie, verifier: verifier, maxEntries: 4096, mask: mask, credentials: credentials)
            for entry in page.entries where entry.name != "." && entry.name != ".." { entries.append(entry) }
            if page.eof || page.entries.isEmpty { return entries }
            cookie = page.entries[page.entries.count - 1].cookie
            verifier = page.verifier
        }
    }

    /// Writes all of `source` (from `offset`, `count` bytes) into `target` at `targetOffset`,
    /// server-side where the backend can, else by reading and writing.
    func copyData(from source: FileHandle, offset: UInt64, count: UInt64, to target: FileHandle, at targetOffset: UInt64,
                  md5: Digest?, credentials: Credentials) async throws(VFSError) {
        if md5 == nil {
            do throws(VFSError) {
                var done: UInt64 = 0
                while done < count {
                    let copied = try await vfs.copyRange(from: source, offset: offset + done, to: target, offset: targetOffset + done,
                                                         count: count - done, credentials: credentials)
                    if copied == 0 { throw VFSError.io }
                    done += copied
                }
                return
            } catch .crossDevice {
            } catch .notSupported {
            }
        }
        var done: UInt64 = 0
        while done < count {
            let want = Int(min(count - done, UInt64(S3Gateway.ioSize)))
            let result = try await vfs.read(source, offset: offset + done, count: want, credentials: credentials)
            if result.count == 0 { throw .io }
            var written = 0
            for segment in result.segments {
                md5?.update(segment.bytes)
                _ = try await vfs.write(target, offset: targetOffset + done + UInt64(written), data: segment.bytes, stability: .unstable, credentials: credentials)
                written += segment.bytes.count
            }
            done += UInt64(result.count)
        }
    }
}
