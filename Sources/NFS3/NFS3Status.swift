import VFS

/// NFSv3 status codes (RFC 1813 §2.6).
public enum NFS3Status: UInt32, Sendable, Error {
    case ok = 0
    case perm = 1
    case noent = 2
    case io = 5
    case nxio = 6
    case acces = 13
    case exist = 17
    case xdev = 18
    case nodev = 19
    case notdir = 20
    case isdir = 21
    case inval = 22
    case fbig = 27
    case nospc = 28
    case rofs = 30
    case mlink = 31
    case nametoolong = 63
    case notempty = 66
    case dquot = 69
    case stale = 70
    case remote = 71
    case badhandle = 10001
    case notSync = 10002
    case badCookie = 10003
    case notsupp = 10004
    case toosmall = 10005
    case serverfault = 10006
    case badtype = 10007
    case jukebox = 10008

    /// The NFSv3 status for a VFS error: the table every NFSv3 procedure uses.
    public init(_ error: VFSError) {
        switch error {
        case .notFound: self = .noent
        case .exists: self = .exist
        case .notEmpty: self = .notempty
        case .isDirectory: self = .isdir
        case .notDirectory: self = .notdir
        case .crossDevice: self = .xdev
        case .nameTooLong: self = .nametoolong
        case .accessDenied: self = .acces
        case .notPermitted: self = .perm
        case .readOnly: self = .rofs
        case .stale: self = .stale
        case .badHandle: self = .badhandle
        case .invalid: self = .inval
        case .noSpace: self = .nospc
        case .quota: self = .dquot
        case .fileTooBig: self = .fbig
        case .tooManyLinks: self = .mlink
        case .symlinkLoop: self = .inval
        case .notSupported: self = .notsupp
        case .noData: self = .inval
        case .rangeTooBig: self = .inval
        case .busy: self = .jukebox
        case .badCookie: self = .badCookie
        case .notSync: self = .notSync
        case .io: self = .io
        case .wouldBlock: self = .jukebox
        }
    }
}

/// Program numbers and sizes.
public enum NFS3 {
    public static let program: UInt32 = 100_003
    public static let mountProgram: UInt32 = 100_005
    /// FHSIZE3.
    public static let maxHandleSize = 64
    /// rtmax / wtmax advertised in FSINFO.
    public static let maxTransfer = 1024 * 1024
    /// Preferred transfer size (rtpref / wtpref).
    public static let preferredTransfer = 1024 * 1024
    public static let maxPath = 4096
}
