import Glibc

/// The one error type of the VFS. Every protocol maps it to its own status codes (NFS3ERR_*,
/// NFS4ERR_*, STATUS_*, S3 error codes) through a table of its own.
public enum VFSError: Error, Sendable, Equatable, Hashable, CustomStringConvertible {
    case notFound           // ENOENT
    case exists             // EEXIST
    case notEmpty           // ENOTEMPTY
    case isDirectory        // EISDIR
    case notDirectory       // ENOTDIR
    case crossDevice        // EXDEV
    case nameTooLong        // ENAMETOOLONG
    case accessDenied       // EACCES
    case notPermitted       // EPERM
    case readOnly           // EROFS
    case stale              // ESTALE: the handle names nothing (removed object, unknown mount, bad MAC)
    case badHandle          // a handle that is malformed (wrong length or layout)
    case invalid            // EINVAL
    case noSpace            // ENOSPC
    case quota              // EDQUOT
    case fileTooBig         // EFBIG
    case tooManyLinks       // EMLINK
    case symlinkLoop        // ELOOP
    case notSupported       // EOPNOTSUPP / ENOTSUP
    case noData             // ENODATA: no such xattr
    case rangeTooBig        // ERANGE: xattr value larger than the buffer allowed
    case busy               // EBUSY
    case badCookie          // a readdir cookie or verifier the directory no longer honours
    case notSync            // a guarded setattr whose guard did not match
    case io                 // EIO and anything unexpected
    case wouldBlock         // EAGAIN: lock conflict without waiting

    /// Maps a POSIX errno to the VFS error (EIO for anything without a closer match).
    public init(errno code: Int32) {
        switch code {
        case ENOENT: self = .notFound
        case EEXIST: self = .exists
        case ENOTEMPTY: self = .notEmpty
        case EISDIR: self = .isDirectory
        case ENOTDIR: self = .notDirectory
        case EXDEV: self = .crossDevice
        case ENAMETOOLONG: self = .nameTooLong
        case EACCES: self = .accessDenied
        case EPERM: self = .notPermitted
        case EROFS: self = .readOnly
        case ESTALE: self = .stale
        case EINVAL: self = .invalid
        case ENOSPC: self = .noSpace
        case EDQUOT: self = .quota
        case EFBIG: self = .fileTooBig
        case EMLINK: self = .tooManyLinks
        case ELOOP: self = .symlinkLoop
        case EOPNOTSUPP, ENOSYS: self = .notSupported
        case ENODATA: self = .noData
        case ERANGE: self = .rangeTooBig
        case EBUSY: self = .busy
        case EAGAIN: self = .wouldBlock
        case EBADF: self = .stale
        default: self = .io
        }
    }

    /// The closest POSIX errno (for plugins and logs).
    public var errno: Int32 {
        switch self {
        case .notFound: ENOENT
        case .exists: EEXIST
        case .notEmpty: ENOTEMPTY
        case .isDirectory: EISDIR
        case .notDirectory: ENOTDIR
        case .crossDevice: EXDEV
        case .nameTooLong: ENAMETOOLONG
        case .accessDenied: EACCES
        case .notPermitted: EPERM
        case .readOnly: EROFS
        case .stale, .badHandle: ESTALE
        case .invalid, .badCookie: EINVAL
        case .noSpace: ENOSPC
        case .quota: EDQUOT
        case .fileTooBig: EFBIG
        case .tooManyLinks: EMLINK
        case .symlinkLoop: ELOOP
        case .notSupported: EOPNOTSUPP
        case .noData: ENODATA
        case .rangeTooBig: ERANGE
        case .busy: EBUSY
        case .notSync: EINVAL
        case .io: EIO
        case .wouldBlock: EAGAIN
        }
    }

    public var description: String {
        switch self {
        case .badHandle: "malformed file handle"
        case .badCookie: "stale directory cookie"
        case .notSync: "guard mismatch"
        default: String(cString: strerror(errno))
        }
    }
}
