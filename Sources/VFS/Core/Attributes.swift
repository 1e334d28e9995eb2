/// What kind of object a handle names.
public enum FileType: UInt8, Sendable, Equatable, BitwiseCopyable {
    case regular = 1, directory, symlink, blockDevice, characterDevice, fifo, socket
}

/// Seconds and nanoseconds since the Unix epoch.
public struct Timespec: Sendable, Hashable, Comparable, BitwiseCopyable {
    public var seconds: Int64
    public var nanoseconds: UInt32

    public init(seconds: Int64, nanoseconds: UInt32) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public static let zero = Timespec(seconds: 0, nanoseconds: 0)

    public static func < (a: Timespec, b: Timespec) -> Bool {
        (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
    }
}

/// Which attributes a caller wants. A backend fills only these; an empty mask costs no stat.
public struct AttributeMask: OptionSet, Sendable, Hashable, BitwiseCopyable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let type = AttributeMask(rawValue: 1 << 0)
    public static let mode = AttributeMask(rawValue: 1 << 1)
    public static let nlink = AttributeMask(rawValue: 1 << 2)
    public static let uid = AttributeMask(rawValue: 1 << 3)
    public static let gid = AttributeMask(rawValue: 1 << 4)
    public static let size = AttributeMask(rawValue: 1 << 5)
    public static let spaceUsed = AttributeMask(rawValue: 1 << 6)
    public static let fsid = AttributeMask(rawValue: 1 << 7)
    public static let fileid = AttributeMask(rawValue: 1 << 8)
    public static let atime = AttributeMask(rawValue: 1 << 9)
    public static let mtime = AttributeMask(rawValue: 1 << 10)
    public static let ctime = AttributeMask(rawValue: 1 << 11)
    public static let birthTime = AttributeMask(rawValue: 1 << 12)
    public static let change = AttributeMask(rawValue: 1 << 13)
    public static let rdev = AttributeMask(rawValue: 1 << 14)

    public static let none: AttributeMask = []
    public static let all = AttributeMask(rawValue: (1 << 15) - 1)
    /// What NFSv3 wcc_data's pre-operation attributes carry.
    public static let weakCacheConsistency: AttributeMask = [.size, .mtime, .ctime]
    /// What NFSv3's fattr3 carries (no birth time, no change counter): what NFSv3 asks for,
    /// so backends never look up the rest for it.
    public static let nfs3: AttributeMask = [.type, .mode, .nlink, .uid, .gid, .size, .spaceUsed, .rdev, .fsid, .fileid, .atime, .mtime, .ctime]
    /// Everything a stat(2) yields (all but birth time, which only some backends know).
    public static let stat: AttributeMask = all.subtracting(.birthTime)
}

/// Attributes of one object; only the fields in `valid` mean anything.
public struct Attributes: Sendable, Equatable, BitwiseCopyable {
    public var valid: AttributeMask = []
    public var type: FileType = .regular
    /// Permission bits and set-id/sticky bits (07777), without the type.
    public var mode: UInt32 = 0
    public var nlink: UInt32 = 0
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var size: UInt64 = 0
    public var spaceUsed: UInt64 = 0
    public var fsid: UInt64 = 0
    public var fileid: UInt64 = 0
    public var atime: Timespec = .zero
    public var mtime: Timespec = .zero
    public var ctime: Timespec = .zero
    public var birthTime: Timespec = .zero
    /// Increases on every change of data or metadata (NFSv4 change attribute, SMB ChangeTime basis).
    public var change: UInt64 = 0
    public var rdevMajor: UInt32 = 0
    public var rdevMinor: UInt32 = 0

    public init() {}

    /// A copy with only the fields in `mask` marked valid.
    public func masked(_ mask: AttributeMask) -> Attributes {
        var copy = self
        copy.valid = valid.intersection(mask)
        return copy
    }
}

/// How to set a time in SETATTR: leave it, set it to the server's clock, or to a given value.
public enum TimeSetting: Sendable, Equatable {
    case unchanged
    case serverTime
    case value(Timespec)
}

/// The changes a SETATTR asks for; nil / `.unchanged` leave a field alone.
public struct SetAttributes: Sendable, Equatable {
    public var mode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var size: UInt64?
    public var atime: TimeSetting = .unchanged
    public var mtime: TimeSetting = .unchanged

    public init(mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, size: UInt64? = nil,
                atime: TimeSetting = .unchanged, mtime: TimeSetting = .unchanged) {
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.atime = atime
        self.mtime = mtime
    }

    public var isEmpty: Bool { mode == nil && uid == nil && gid == nil && size == nil && atime == .unchanged && mtime == .unchanged }
}

/// A directory's attributes before and after a change (NFS wcc_data, NFSv4 change_info).
public struct DirectoryChange: Sendable, Equatable {
    public var before: Attributes
    public var after: Attributes

    public init(before: Attributes, after: Attributes) {
        self.before = before
        self.after = after
    }
}

/// Space and object counts of a filesystem.
public struct FileSystemStats: Sendable, Equatable {
    public var totalBytes: UInt64
    public var freeBytes: UInt64
    public var availableBytes: UInt64
    public var totalFiles: UInt64
    public var freeFiles: UInt64
    public var availableFiles: UInt64
    public var maxNameLength: UInt32

    public init(totalBytes: UInt64, freeBytes: UInt64, availableBytes: UInt64, totalFiles: UInt64,
                freeFiles: UInt64, availableFiles: UInt64, maxNameLength: UInt32 = 255) {
        self.totalBytes = totalBytes
        self.freeBytes = freeBytes
        self.availableBytes = availableBytes
        self.totalFiles = totalFiles
        self.freeFiles = freeFiles
        self.availableFiles = availableFiles
        self.maxNameLength = maxNameLength
    }
}
