/// Bytes returned by reference: valid while `owner` is alive. memfs hands out its own blocks
/// (zero copy); the linux backends hand out the buffer they read into.
public struct DataSegment: @unchecked Sendable {
    public let bytes: UnsafeRawBufferPointer
    public let owner: AnyObject

    public init(bytes: UnsafeRawBufferPointer, owner: AnyObject) {
        self.bytes = bytes
        self.owner = owner
    }
}

/// Memory owned by a heap allocation, freed when the last reference goes.
public final class HeapBlock: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let capacity: Int

    public init(capacity: Int) {
        self.capacity = capacity
        base = .allocate(byteCount: max(capacity, 1), alignment: 64)
    }

    deinit { base.deallocate() }
}

/// One block of zeros that reads of holes and past-EOF gaps point into.
public enum ZeroBlock {
    public static let size = 64 * 1024
    public static let shared: HeapBlock = {
        let block = HeapBlock(capacity: size)
        block.base.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        return block
    }()
}

public struct ReadResult: Sendable {
    public var segments: [DataSegment]
    public var count: Int
    public var eof: Bool
    /// Post-read attributes (NFSv3 post_op_attr), as requested by the caller's mask.
    public var attributes: Attributes

    public init(segments: [DataSegment], count: Int, eof: Bool, attributes: Attributes) {
        self.segments = segments
        self.count = count
        self.eof = eof
        self.attributes = attributes
    }

    /// The bytes copied into one array (tests and small replies).
    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(count)
        for segment in segments { out.append(contentsOf: segment.bytes) }
        return out
    }
}

/// How durable a write must be before it is acknowledged.
public enum WriteStability: Int, Sendable, Comparable {
    case unstable = 0
    case dataSync = 1
    case fileSync = 2

    public static func < (a: WriteStability, b: WriteStability) -> Bool { a.rawValue < b.rawValue }
}

public struct WriteResult: Sendable, Equatable {
    public var count: Int
    /// The stability actually achieved (at least what was asked).
    public var stability: WriteStability
    public var before: Attributes
    public var after: Attributes

    public init(count: Int, stability: WriteStability, before: Attributes, after: Attributes) {
        self.count = count
        self.stability = stability
        self.before = before
        self.after = after
    }
}

/// What CREATE makes.
public enum CreateKind: Sendable, Equatable {
    case regular
    case directory
    case symlink(target: String)
    case device(FileType, major: UInt32, minor: UInt32)
    case fifo
    case socket
}

/// NFS-style create semantics (SMB dispositions map onto these plus `truncate`).
public enum CreateMode: Sendable, Equatable {
    /// Create, or open the existing object.
    case unchecked
    /// Create; `exists` if the name is taken.
    case guarded
    /// Create once: a retry with the same verifier returns the object made the first time.
    case exclusive(verifier: UInt64)
}

public struct CreateResult: Sendable, Equatable {
    public var handle: FileHandle
    public var attributes: Attributes
    public var directory: DirectoryChange
    /// False when an existing object was opened (unchecked, or an exclusive retry).
    public var created: Bool

    public init(handle: FileHandle, attributes: Attributes, directory: DirectoryChange, created: Bool) {
        self.handle = handle
        self.attributes = attributes
        self.directory = directory
        self.created = created
    }
}

public struct DirectoryEntry: Sendable, Equatable {
    public var name: String
    public var fileid: UInt64
    /// Where the next READDIR resumes to continue after this entry.
    public var cookie: UInt64
    public var type: FileType
    /// Present when the caller's mask asked for attributes.
    public var attributes: Attributes?
    public var handle: FileHandle?

    public init(name: String, fileid: UInt64, cookie: UInt64, type: FileType, attributes: Attributes? = nil, handle: FileHandle? = nil) {
        self.name = name
        self.fileid = fileid
        self.cookie = cookie
        self.type = type
        self.attributes = attributes
        self.handle = handle
    }
}

public struct ReadDirResult: Sendable {
    public var entries: [DirectoryEntry]
    /// Cookies are valid with this verifier (NFSv3 cookieverf3).
    public var verifier: UInt64
    public var eof: Bool
    public var directory: Attributes

    public init(entries: [DirectoryEntry], verifier: UInt64, eof: Bool, directory: Attributes) {
        self.entries = entries
        self.verifier = verifier
        self.eof = eof
        self.directory = directory
    }
}

public enum XattrSetMode: Sendable, Equatable {
    case either
    /// Fail with `exists` if the attribute exists.
    case create
    /// Fail with `noData` if it does not.
    case replace
}

public enum SeekTarget: Sendable, Equatable {
    case data
    case hole
}
