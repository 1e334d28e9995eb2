import Crypto
import HTTP
import VFS

/// What S3 keeps about an object besides its bytes: the ETag, Content-Type, the standard
/// headers S3 stores (Content-Encoding, Cache-Control, ...) and `x-amz-meta-*`. Stored in one
/// extended attribute so NFS and SMB see the object as a plain file.
///
/// The ETag is stamped with the size and mtime it was computed for: a file changed over NFS or
/// SMB (or written there in the first place) gets its MD5 computed afresh when S3 next needs it.
struct ObjectMetadata: Equatable {
    var etag = ""
    var contentType: String?
    /// Stored standard headers, lowercase names.
    var headers: [(name: String, value: String)] = []
    /// `x-amz-meta-*` with the prefix removed, lowercase names.
    var user: [(name: String, value: String)] = []
    var stampSize: UInt64 = 0
    var stampMtime = Timespec.zero

    /// An ordinary user xattr, not one of the server's hidden `user.dmanoel.*` names: the
    /// linux and io_uring modules refuse those to every caller, and other protocols may
    /// usefully see an object's Content-Type and metadata.
    static let xattrName = "user.s3.metadata"
    static let storedHeaders = ["content-encoding", "content-disposition", "content-language", "cache-control", "expires"]
    /// S3's limit on user metadata (names and values together).
    static let maxUserBytes = 2048

    static func == (a: ObjectMetadata, b: ObjectMetadata) -> Bool {
        a.etag == b.etag && a.contentType == b.contentType && a.headers.elementsEqual(b.headers, by: ==) && a.user.elementsEqual(b.user, by: ==)
    }

    func matches(_ attributes: Attributes) -> Bool {
        stampSize == attributes.size && stampMtime == attributes.mtime
    }

    mutating func stamp(_ attributes: Attributes) {
        stampSize = attributes.size
        stampMtime = attributes.mtime
    }

    /// Content-Type, standard headers and x-amz-meta-* of a PUT, POST ?uploads or a REPLACE copy.
    static func fromRequest(_ request: HTTPRequest) throws(S3Error) -> ObjectMetadata {
        var metadata = ObjectMetadata()
        metadata.contentType = request.value("content-type")
        var userBytes = 0
        for index in 0..<request.fieldCount {
            let field = request.field(at: index)
            let name = String(decoding: field.name, as: UTF8.self).lowercased()
            let value = String(decoding: field.value, as: UTF8.self)
            if name.hasPrefix("x-amz-meta-") {
                let short = String(name.dropFirst("x-amz-meta-".count))
                guard !short.isEmpty else { continue }
                userBytes += short.utf8.count + value.utf8.count
                metadata.user.append((short, value))
            } else if storedHeaders.contains(name) {
                metadata.headers.append((name, value))
            }
        }
        if userBytes > maxUserBytes {
            throw S3Error("MetadataTooLarge", .badRequest, "Your metadata headers exceed the maximum allowed metadata size (2 KB).")
        }
        return metadata
    }

    /// One line per item: "v1", "etag E", "stamp SIZE SEC NSEC", "type T", "hdr NAME VALUE", "meta NAME VALUE".
    func encoded() -> [UInt8] {
        var text = "v1\netag \(etag)\nstamp \(stampSize) \(stampMtime.seconds) \(stampMtime.nanoseconds)\n"
        if let contentType { text += "type \(contentType)\n" }
        for (name, value) in headers { text += "hdr \(name) \(value)\n" }
        for (name, value) in user { text += "meta \(name) \(value)\n" }
        return Array(text.utf8)
    }

    init() {}

    init?(decoding bytes: [UInt8]) {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first == "v1" else { return nil }
        for line in lines.dropFirst() where !line.isEmpty {
            let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            let rest = parts.count > 1 ? String(parts[1]) : ""
            switch parts[0] {
            case "etag": etag = rest
            case "stamp":
                let numbers = rest.split(separator: " ")
                guard numbers.count == 3, let size = UInt64(numbers[0]), let seconds = Int64(numbers[1]), let nanos = UInt32(numbers[2]) else { return nil }
                stampSize = size
                stampMtime = Timespec(seconds: seconds, nanoseconds: nanos)
            case "type": contentType = rest
            case "hdr", "meta":
                let pair = rest.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                let item = (String(pair[0]), pair.count > 1 ? String(pair[1]) : "")
                if parts[0] == "hdr" { headers.append(item) } else { user.append(item) }
            default: break
            }
        }
    }

    /// Adds ETag, Content-Type, stored headers and x-amz-meta-* to a response.
    func write(to headers: inout HTTPHeaderWriter) {
        headers.add("ETag", quoted: etag)
        headers.add("Content-Type", contentType ?? "binary/octet-stream")
        for (name, value) in self.headers { headers.add(name: name, value) }
        for (name, value) in user { headers.add(name: "x-amz-meta-" + name, value) }
    }
}

/// The ETag of a single-part object: its MD5 in hex.
enum ETag {
    static let empty = "d41d8cd98f00b204e9800998ecf8427e"

    /// Strips the quotes clients put around an ETag (and W/ for weak tags).
    static func normalize(_ text: some StringProtocol) -> String {
        var s = Substring(text).trimmingSpaces
        if s.hasPrefix("W/") { s = s.dropFirst(2) }
        if s.hasPrefix("\"") { s = s.dropFirst() }
        if s.hasSuffix("\"") { s = s.dropLast() }
        return String(s)
    }
}

/// Metadata one loop read recently, valid while the object's ctime, size and mtime are the
/// ones it was read with (changing the xattr changes the ctime): a GET of a hot object needs
/// no getxattr.
struct CachedMetadata {
    var ctime: Timespec
    var size: UInt64
    var mtime: Timespec
    var metadata: ObjectMetadata

    func matches(_ attributes: Attributes) -> Bool {
        attributes.valid.contains(.ctime) && ctime == attributes.ctime && size == attributes.size && mtime == attributes.mtime
    }
}

extension S3LoopState {
    static let metadataCacheSize = 16384

    func remember(_ metadata: ObjectMetadata, for handle: FileHandle, _ attributes: Attributes) {
        guard attributes.valid.contains(.ctime) else { return }
        if self.metadata.count >= Self.metadataCacheSize { self.metadata.removeAll(keepingCapacity: true) }
        self.metadata[handle] = CachedMetadata(ctime: attributes.ctime, size: attributes.size, mtime: attributes.mtime, metadata: metadata)
    }
}

extension S3Gateway {
    /// The object's metadata, with an ETag valid for its current contents: read from the
    /// xattr when its stamp matches, else computed by reading the file and stored again.
    func metadata(of handle: FileHandle, _ attributes: Attributes, credentials: Credentials, cache: S3LoopState? = nil) async throws(S3Error) -> ObjectMetadata {
        if let cache, let entry = cache.metadata[handle], entry.matches(attributes) { return entry.metadata }
        let metadata = try await readMetadata(of: handle, attributes, credentials: credentials)
        cache?.remember(metadata, for: handle, attributes)
        return metadata
    }

    private func readMetadata(of handle: FileHandle, _ attributes: Attributes, credentials: Credentials) async throws(S3Error) -> ObjectMetadata {
        var stored: ObjectMetadata?
        if let bytes = try? await vfs.getxattr(handle, name: ObjectMetadata.xattrName, credentials: credentials) {
            stored = ObjectMetadata(decoding: bytes)
        }
        if let stored, stored.matches(attributes) { return stored }
        var metadata = stored ?? ObjectMetadata()
        if attributes.type == .directory {
            metadata.etag = ETag.empty
            return metadata
        }
        let md5 = Digest(.md5)
        var offset: UInt64 = 0
        do {
            while offset < attributes.size {
                let result = try await vfs.read(handle, offset: offset, count: S3Gateway.ioSize, credentials: credentials)
                for segment in result.segments { md5.update(segment.bytes) }
                if result.count == 0 { break }
                offset += UInt64(result.count)
            }
        } catch {
            throw S3Error(error)
        }
        metadata.etag = Hex.encode(md5.finish())
        metadata.stamp(attributes)
        // Best effort: a read-only mount or a backend without xattrs just recomputes next time.
        try? await vfs.setxattr(handle, name: ObjectMetadata.xattrName, value: metadata.encoded(), credentials: credentials)
        return metadata
    }

    /// Stores metadata on a freshly written file whose attributes are `attributes`.
    func store(_ metadata: ObjectMetadata, on handle: FileHandle, credentials: Credentials) async {
        try? await vfs.setxattr(handle, name: ObjectMetadata.xattrName, value: metadata.encoded(), credentials: credentials)
    }
}
