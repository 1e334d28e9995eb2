import Crypto
import HTTP
import VFS

/// ListObjects (v1) and ListObjectsV2 over a directory tree.
///
/// Keys come out in S3's order (UTF-8 byte order of the whole key) although they live in
/// directories: siblings are sorted by name, with "/" appended to directory names, and visited
/// depth first, which yields exactly the byte order of full keys. A page resumes at its marker
/// by descending only the directories on the marker's path and skipping what sorts before it,
/// so no page re-reads the whole tree. The prefix's directory part is walked to directly.
/// Directories are read without attributes (names and types only, what getdents gives), and
/// only the objects a page returns are looked up for their size, time and ETag: a page of
/// 1,000 keys from a directory of 10,000 files costs 1,000 lookups (mostly cache hits), not
/// 10,000 stats (lessons.md: READDIRPLUS must not stat every entry).
/// An empty directory is listed as the key "dir/" (the folder markers S3 tools create).
/// ListObjectVersions is the same listing with every object as its only version, "null"
/// (versioning is never enabled here).
extension S3Gateway {
    struct Listing {
        var prefix: [UInt8]
        var delimiter: [UInt8]?
        /// Items at or before this key were returned by earlier pages.
        var after: [UInt8]?
        var maxKeys: Int
        /// The loop's metadata cache.
        var cache: S3LoopState?
        var objects: [(key: String, attributes: Attributes, etag: String)] = []
        var prefixes: [String] = []
        var lastPrefix: [UInt8]?
        var truncated = false
        /// The last key or common prefix returned (the next page's marker).
        var last: [UInt8]?

        var count: Int { objects.count + prefixes.count }

        /// Whether another item may be added; sets `truncated` when the page is full.
        mutating func room() -> Bool {
            if count >= maxKeys {
                truncated = true
                return false
            }
            return true
        }
    }

    /// `version` 1 and 2 are ListObjects v1 and v2; 0 is ListObjectVersions.
    func listObjects(_ call: S3Call, version: Int) async throws(S3Error) {
        let root = try await bucketDirectory(call.bucket)
        let query = call.query
        let maxKeys: Int
        if let text = query["max-keys"] {
            guard let value = Int(text), value >= 0 else { throw .invalidArgument("max-keys must be a non-negative integer.") }
            maxKeys = min(value, 1000)
        } else {
            maxKeys = 1000
        }
        let urlEncoding: Bool
        switch query["encoding-type"] {
        case nil: urlEncoding = false
        case "url": urlEncoding = true
        default: throw .invalidArgument("Invalid Encoding Method specified in Request")
        }
        let prefix = query["prefix"] ?? ""
        let delimiter = query["delimiter"].flatMap { $0.isEmpty ? nil : $0 }
        if query["allow-unordered"] == "true" && delimiter != nil {
            throw .invalidArgument("allow-unordered cannot be combined with a delimiter.")
        }
        var after: String?
        var continuationToken: String?
        if version == 2 {
            if let token = query["continuation-token"] {
                guard let decoded = Self.decodeToken(token) else { throw .invalidArgument("The continuation token provided is incorrect.") }
                continuationToken = token
                after = decoded
            } else if let startAfter = query["start-after"], !startAfter.isEmpty {
                after = startAfter
            }
        } else if let marker = query[version == 0 ? "key-marker" : "marker"], !marker.isEmpty {
            after = marker
        }

        var listing = Listing(prefix: Array(prefix.utf8), delimiter: delimiter.map { Array($0.utf8) }, after: after.map { Array($0.utf8) }, maxKeys: maxKeys, cache: call.state)
        // Walk straight to the deepest directory the prefix names.
        let directoryPart = prefix.utf8.lastIndex(of: UInt8(ascii: "/")).map { String(prefix[...$0]) } ?? ""
        let components = directoryPart.split(separator: "/").map(String.init)
        // Keys never have empty segments, so a prefix with one ("/x", "a//b") matches nothing.
        if components.allSatisfy({ !$0.hasPrefix(ObjectPath.reservedPrefix) && $0 != "." && $0 != ".." }),
           !directoryPart.contains("//"), !directoryPart.hasPrefix("/"), maxKeys > 0,
           let start = try? await walkDirectory(root, components, credentials: call.credentials) {
            do {
                _ = try await collect(start, directoryKey: Array(directoryPart.utf8), isStart: true, &listing, credentials: call.credentials)
            } catch .accessDenied {
                throw .accessDenied
            } catch .notFound, .stale, .badCookie {
                // Changed while listing: what was collected stands.
            } catch {
                throw S3Error(error)
            }
        }

        func encoded(_ value: String) -> String { urlEncoding ? URIEncoding.encode(value, keepSlash: true) : value }
        var document = XMLWriter()
        let resultName = version == 0 ? "ListVersionsResult" : "ListBucketResult"
        document.open(resultName, namespace: true)
        document.element("Name", call.bucket)
        // v1 clients (botocore) do not url-decode the top-level Prefix: send it as is there.
        document.element("Prefix", version == 2 ? encoded(prefix) : prefix)
        if version == 2 {
            if let continuationToken { document.element("ContinuationToken", continuationToken) }
            if let startAfter = query["start-after"] { document.element("StartAfter", encoded(startAfter)) }
            document.element("KeyCount", listing.count)
        } else if version == 1 {
            document.element("Marker", encoded(query["marker"] ?? ""))
        } else {
            document.element("KeyMarker", encoded(query["key-marker"] ?? ""))
            document.element("VersionIdMarker", query["version-id-marker"] ?? "")
        }
        document.element("MaxKeys", maxKeys)
        if let delimiter { document.element("Delimiter", encoded(delimiter)) }
        if urlEncoding { document.element("EncodingType", "url") }
        document.element("IsTruncated", listing.truncated)
        if listing.truncated, let last = listing.last {
            let lastKey = String(decoding: last, as: UTF8.self)
            if version == 2 {
                document.element("NextContinuationToken", Self.encodeToken(lastKey))
            } else if version == 1 {
                document.element("NextMarker", encoded(lastKey))
            } else {
                document.element("NextKeyMarker", encoded(lastKey))
                document.element("NextVersionIdMarker", "null")
            }
        }
        for object in listing.objects {
            document.open(version == 0 ? "Version" : "Contents")
            document.element("Key", encoded(object.key))
            if version == 0 {
                document.element("VersionId", "null")
                document.element("IsLatest", true)
            }
            document.element("LastModified", Self.isoTime(object.attributes.mtime))
            document.element("ETag", "\"\(object.etag)\"")
            document.element("Size", object.attributes.type == .directory ? 0 : object.attributes.size)
            if version != 2 || query["fetch-owner"] == "true" {
                document.open("Owner")
                document.element("ID", call.user.name)
                document.element("DisplayName", call.user.name)
                document.close("Owner")
            }
            document.element("StorageClass", "STANDARD")
            document.close(version == 0 ? "Version" : "Contents")
        }
        for commonPrefix in listing.prefixes {
            document.open("CommonPrefixes")
            document.element("Prefix", encoded(commonPrefix))
            document.close("CommonPrefixes")
        }
        document.close(resultName)
        respondXML(call, document)
    }

    /// Visits `directory` (whose key prefix is `directoryKey`, "" or ending in "/") in key
    /// order, adding objects and common prefixes. Returns false once the page is full.
    private func collect(_ directory: FileHandle, directoryKey: [UInt8], isStart: Bool, _ listing: inout Listing, credentials: Credentials) async throws(VFSError) -> Bool {
        var entries = try await allEntries(directory, mask: [], credentials: credentials)
        let hasFolder = entries.contains { $0.name == ObjectPath.folderObject && $0.type == .regular }
        entries.removeAll { ($0.type != .regular && $0.type != .directory) || $0.name.hasPrefix(ObjectPath.reservedPrefix) }
        if !directoryKey.isEmpty {
            // The object "dir/" itself sorts before everything in it: the hidden folder file
            // when a body was PUT to it, or the directory when it is empty.
            if hasFolder, let (handle, attributes) = try? await vfs.lookup(directory, name: ObjectPath.folderObject, mask: S3Masks.object, credentials: credentials) {
                if !(await emitObject(directoryKey, attributes: attributes, handle: handle, &listing, credentials: credentials)) { return false }
            } else if entries.isEmpty {
                return await emitObject(directoryKey, attributes: try await vfs.getattr(directory, mask: S3Masks.object), handle: nil, &listing, credentials: credentials)
            }
        }
        var items: [(key: [UInt8], entry: DirectoryEntry)] = entries.map { entry in
            var key = directoryKey
            key.append(contentsOf: entry.name.utf8)
            if entry.type == .directory { key.append(UInt8(ascii: "/")) }
            return (key, entry)
        }
        items.sort { $0.key.lexicographicallyPrecedes($1.key) }
        for (key, entry) in items {
            let isDirectory = entry.type == .directory
            // Outside the prefix?
            if isDirectory {
                guard key.starts(with: listing.prefix) || listing.prefix.starts(with: key) else { continue }
            } else {
                guard key.starts(with: listing.prefix) else { continue }
            }
            // Returned by an earlier page?
            if let after = listing.after {
                if isDirectory {
                    if !after.starts(with: key) && !after.lexicographicallyPrecedes(key) { continue }
                } else if !after.lexicographicallyPrecedes(key) {
                    continue
                }
            }
            // Rolled up into a common prefix?
            if let delimiter = listing.delimiter, key.count > listing.prefix.count,
               let end = Self.firstIndex(of: delimiter, in: key, from: listing.prefix.count) {
                let commonPrefix = Array(key[..<(end + delimiter.count)])
                if let after = listing.after, !after.lexicographicallyPrecedes(commonPrefix) { continue }
                if commonPrefix == listing.lastPrefix { continue }
                guard listing.room() else { return false }
                listing.prefixes.append(String(decoding: commonPrefix, as: UTF8.self))
                listing.lastPrefix = commonPrefix
                listing.last = commonPrefix
                continue
            }
            // Only now, for what this page returns, the entry's handle and attributes.
            guard let (handle, attributes) = try? await vfs.lookup(directory, name: entry.name, mask: isDirectory ? S3Masks.type : S3Masks.object,
                                                                   credentials: credentials) else { continue }
            if isDirectory {
                guard attributes.type == .directory else { continue }
                if !(try await collect(handle, directoryKey: key, isStart: false, &listing, credentials: credentials)) { return false }
            } else {
                guard attributes.type == .regular else { continue }
                if !(await emitObject(key, attributes: attributes, handle: handle, &listing, credentials: credentials)) { return false }
            }
        }
        return true
    }

    private func emitObject(_ key: [UInt8], attributes: Attributes, handle: FileHandle?, _ listing: inout Listing, credentials: Credentials) async -> Bool {
        guard key.starts(with: listing.prefix) else { return true }
        if let after = listing.after, !after.lexicographicallyPrecedes(key) { return true }
        guard listing.room() else { return false }
        var etag = ETag.empty
        if attributes.type == .regular, let handle, let metadata = try? await metadata(of: handle, attributes, credentials: credentials, cache: listing.cache) {
            etag = metadata.etag
        }
        listing.objects.append((String(decoding: key, as: UTF8.self), attributes, etag))
        listing.last = key
        return true
    }

    private static func firstIndex(of needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        var i = start
        while i + needle.count <= haystack.count {
            if haystack[i] == needle[0] && haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    /// Continuation tokens are the last key returned, base64url without padding (opaque and
    /// URL-safe, which clients expect of them).
    static func encodeToken(_ key: String) -> String {
        String(Base64.encode(Array(key.utf8)).compactMap { c -> Character? in
            switch c {
            case "+": return "-"
            case "/": return "_"
            case "=": return nil
            default: return c
            }
        })
    }

    static func decodeToken(_ token: String) -> String? {
        var text = String(token.map { $0 == "-" ? "+" : ($0 == "_" ? "/" : $0) })
        while text.utf8.count % 4 != 0 { text += "=" }
        guard let bytes = Base64.decode(text) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }
}
