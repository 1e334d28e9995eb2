import VFS

/// A backend call the faults module can intercept, by the name a configuration uses.
public enum FaultOperation: String, Sendable, CaseIterable {
    case getattr, lookup, setattr, create, read, write, commit, readdir, readlink, link, remove, rmdir, rename
    case statfs, getxattr, setxattr, listxattr, removexattr, allocate, deallocate, seek, copy
    /// Every operation.
    case any

    /// Whether `after_bytes` means something for this operation (it counts payload bytes).
    public var movesBytes: Bool { self == .read || self == .write || self == .any }
}

/// One rule of a `faults` mount: when a call of `operation` (on a path under `pathPrefix`)
/// meets its trigger, it blocks a delegation thread for `delayMilliseconds` (a stuck system
/// call) and then fails with `error` without reaching the wrapped backend; a rule without
/// an error only delays. Triggers combine: with `everyN` only every n-th matching call
/// fires; with `afterBytes` a read or write fires once the bytes earlier matching calls moved
/// plus its own would exceed it (a disk that fills up). Without triggers every matching call
/// fires.
public struct FaultRule: Sendable, Equatable {
    public var operation: FaultOperation
    /// The errno name (`EIO`, `ENOSPC`, ...); nil: delay only.
    public var errorName: String?
    public var afterBytes: UInt64?
    public var everyN: Int?
    /// A string prefix of paths relative to the mount root ("/dir/file"): it matches the path a
    /// handle was first looked up or created by, or the named entry for calls that name one
    /// (create, lookup, remove, rmdir, link, rename). A handle never looked up has no path.
    public var pathPrefix: String?
    public var delayMilliseconds: Int?

    public init(operation: FaultOperation, errorName: String? = nil, afterBytes: UInt64? = nil, everyN: Int? = nil,
                pathPrefix: String? = nil, delayMilliseconds: Int? = nil) {
        self.operation = operation
        self.errorName = errorName
        self.afterBytes = afterBytes
        self.everyN = everyN
        self.pathPrefix = pathPrefix
        self.delayMilliseconds = delayMilliseconds
    }

    public var error: VFSError? { errorName.flatMap { Self.errors[$0] } }

    public static let maxDelayMilliseconds = 600_000

    /// The errors a rule can inject, by errno name.
    public static let errors: [String: VFSError] = [
        "EIO": .io, "ENOSPC": .noSpace, "EDQUOT": .quota, "EACCES": .accessDenied, "EPERM": .notPermitted,
        "EROFS": .readOnly, "EFBIG": .fileTooBig, "ESTALE": .stale, "EBUSY": .busy, "ENOENT": .notFound,
        "EEXIST": .exists, "ENOTEMPTY": .notEmpty, "ENAMETOOLONG": .nameTooLong, "EAGAIN": .wouldBlock,
        "EINVAL": .invalid, "EOPNOTSUPP": .notSupported,
    ]

    /// Whether `path` (nil: unknown) is one this rule is about.
    func covers(_ path: String?) -> Bool {
        guard let pathPrefix else { return true }
        guard let path else { return false }
        return path.hasPrefix(pathPrefix)
    }
}
