import VFS

/// nfsstat4 (RFC 7530 §13, RFC 8881 §15): the codes this server sends.
public enum NFS4Status: UInt32, Sendable, Error {
    case ok = 0
    case perm = 1
    case noent = 2
    case io = 5
    case nxio = 6
    case access = 13
    case exist = 17
    case xdev = 18
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
    case badhandle = 10001
    case badCookie = 10003
    case notsupp = 10004
    case toosmall = 10005
    case serverfault = 10006
    case badtype = 10007
    case delay = 10008
    case same = 10009
    case denied = 10010
    case expired = 10011
    case locked = 10012
    case grace = 10013
    case fhexpired = 10014
    case shareDenied = 10015
    case wrongsec = 10016
    case clidInuse = 10017
    case resource = 10018
    case moved = 10019
    case nofilehandle = 10020
    case minorVersMismatch = 10021
    case staleClientid = 10022
    case staleStateid = 10023
    case oldStateid = 10024
    case badStateid = 10025
    case badSeqid = 10026
    case notSame = 10027
    case lockRange = 10028
    case symlink = 10029
    case restorefh = 10030
    case attrnotsupp = 10032
    case noGrace = 10033
    case reclaimBad = 10034
    case badxdr = 10036
    case locksHeld = 10037
    case openmode = 10038
    case badowner = 10039
    case badname = 10041
    case badRange = 10042
    case opIllegal = 10044
    case deadlock = 10045
    case fileOpen = 10046
    case adminRevoked = 10047
    case cbPathDown = 10048
    case badsession = 10052
    case badslot = 10053
    case completeAlready = 10054
    case connNotBoundToSession = 10055
    case seqMisordered = 10063
    case sequencePos = 10064
    case reqTooBig = 10065
    case repTooBig = 10066
    case repTooBigToCache = 10067
    case retryUncachedRep = 10068
    case tooManyOps = 10070
    case opNotInSession = 10071
    case clientidBusy = 10074
    case seqFalseRetry = 10076
    case badHighSlot = 10077
    case deadsession = 10078
    case encrAlgUnsupp = 10079
    case notOnlyOp = 10081
    case wrongType = 10083
    case noxattr = 10095
    case xattr2big = 10096

    /// The status for a VFS error.
    public init(_ error: VFSError) {
        switch error {
        case .notFound: self = .noent
        case .exists: self = .exist
        case .notEmpty: self = .notempty
        case .isDirectory: self = .isdir
        case .notDirectory: self = .notdir
        case .crossDevice: self = .xdev
        case .nameTooLong: self = .nametoolong
        case .accessDenied: self = .access
        case .notPermitted: self = .perm
        case .readOnly: self = .rofs
        case .stale: self = .stale
        case .badHandle: self = .badhandle
        case .invalid: self = .inval
        case .noSpace: self = .nospc
        case .quota: self = .dquot
        case .fileTooBig: self = .fbig
        case .tooManyLinks: self = .mlink
        case .symlinkLoop: self = .symlink
        case .notSupported: self = .notsupp
        case .noData: self = .noent
        case .rangeTooBig: self = .inval
        case .busy: self = .delay
        case .badCookie: self = .badCookie
        case .notSync: self = .notSame
        case .io: self = .io
        case .wouldBlock: self = .denied
        }
    }
}

/// Why an operation stopped the compound: `status` still needs its status word written;
/// `written` already wrote its status and failure body (LOCK4denied, CLID_INUSE, ...).
public enum NFS4Error: Error {
    case status(NFS4Status)
    case written(NFS4Status)

    init(_ error: VFSError) { self = .status(NFS4Status(error)) }
}
