import ONCRPC
import VFS

/// fattr4 attribute numbers (RFC 7530 §5, RFC 8881 §5) this server knows.
public enum NFS4Attr {
    public static let supportedAttrs = 0, type = 1, fhExpireType = 2, change = 3, size = 4, linkSupport = 5,
        symlinkSupport = 6, namedAttr = 7, fsid = 8, uniqueHandles = 9, leaseTime = 10, rdattrError = 11,
        aclSupport = 13, cansettime = 15, caseInsensitive = 16, casePreserving = 17, chownRestricted = 18,
        filehandle = 19, fileid = 20, filesAvail = 21, filesFree = 22, filesTotal = 23, homogeneous = 26,
        maxfilesize = 27, maxlink = 28, maxname = 29, maxread = 30, maxwrite = 31, mode = 33, noTrunc = 34,
        numlinks = 35, owner = 36, ownerGroup = 37, rawdev = 41, spaceAvail = 42, spaceFree = 43,
        spaceTotal = 44, spaceUsed = 45, timeAccess = 47, timeAccessSet = 48, timeCreate = 50, timeDelta = 51,
        timeMetadata = 52, timeModify = 53, timeModifySet = 54, mountedOnFileid = 55, suppattrExclcreat = 75,
        xattrSupport = 82

    /// What GETATTR answers (and SETATTR sets: mode, owner, owner_group, size, the two *_set times).
    public static func supported(minor: UInt32) -> Bitmap4 {
        var bits = [supportedAttrs, type, fhExpireType, change, size, linkSupport, symlinkSupport, namedAttr, fsid,
                    uniqueHandles, leaseTime, rdattrError, aclSupport, cansettime, caseInsensitive, casePreserving,
                    chownRestricted, filehandle, fileid, filesAvail, filesFree, filesTotal, homogeneous, maxfilesize,
                    maxlink, maxname, maxread, maxwrite, mode, noTrunc, numlinks, owner, ownerGroup, rawdev,
                    spaceAvail, spaceFree, spaceTotal, spaceUsed, timeAccess, timeAccessSet, timeCreate, timeDelta,
                    timeMetadata, timeModify, timeModifySet, mountedOnFileid]
        if minor >= 1 { bits.append(suppattrExclcreat) }
        if minor >= 2 { bits.append(xattrSupport) }
        return Bitmap4(bits)
    }

    /// Attributes a client may set.
    public static let settable = Bitmap4([size, mode, owner, ownerGroup, timeAccessSet, timeModifySet])
    /// Attributes that need the filesystem's statistics.
    static let statfsBits = Bitmap4([filesAvail, filesFree, filesTotal, spaceAvail, spaceFree, spaceTotal])

    /// The VFS attributes needed to answer `requested`.
    static func vfsMask(_ requested: Bitmap4) -> AttributeMask {
        var mask: AttributeMask = [.type]
        if requested.contains(change) { mask.insert([.change, .ctime]) }
        if requested.contains(size) { mask.insert(.size) }
        if requested.contains(fsid) { mask.insert(.fsid) }
        if requested.contains(fileid) || requested.contains(mountedOnFileid) { mask.insert(.fileid) }
        if requested.contains(mode) { mask.insert(.mode) }
        if requested.contains(numlinks) { mask.insert(.nlink) }
        if requested.contains(owner) { mask.insert(.uid) }
        if requested.contains(ownerGroup) { mask.insert(.gid) }
        if requested.contains(rawdev) { mask.insert(.rdev) }
        if requested.contains(spaceUsed) { mask.insert(.spaceUsed) }
        if requested.contains(timeAccess) { mask.insert(.atime) }
        if requested.contains(timeCreate) { mask.insert(.birthTime) }
        if requested.contains(timeMetadata) { mask.insert(.ctime) }
        if requested.contains(timeModify) { mask.insert(.mtime) }
        return mask
    }
}

/// Everything needed to encode one object's fattr4.
public struct NFS4AttrSource {
    public var attributes: Attributes
    public var fsid: (major: UInt64, minor: UInt64)
    public var handle: [UInt8]
    public var mountedOnFileid: UInt64
    public var statfs: FileSystemStats?
    public var leaseSeconds: UInt32
    public var minor: UInt32
    public var rdattrError: NFS4Status = .ok

    public init(attributes: Attributes, fsid: (major: UInt64, minor: UInt64), handle: [UInt8], mountedOnFileid: UInt64,
                statfs: FileSystemStats?, leaseSeconds: UInt32, minor: UInt32) {
        self.attributes = attributes
        self.fsid = fsid
        self.handle = handle
        self.mountedOnFileid = mountedOnFileid
        self.statfs = statfs
        self.leaseSeconds = leaseSeconds
        self.minor = minor
    }
}

/// Owner and group names a client may send in SETATTR, OPEN and CREATE besides numeric ids:
/// the configured users ("alice" or "alice@any.domain"); a user's name as a group means that
/// user's primary group.
public struct NFS4Identities: Sendable {
    public var users: [String: (uid: UInt32, gid: UInt32)]

    public init(users: [String: (uid: UInt32, gid: UInt32)] = [:]) { self.users = users }

    func id(_ text: String, group: Bool) -> UInt32? {
        if let numeric = UInt32(text) { return numeric }
        let name = text.split(separator: "@", maxSplits: 1).first.map(String.init) ?? text
        guard let user = users[name] else { return nil }
        return group ? user.gid : user.uid
    }
}

public enum NFS4Attributes {
    public static let maxTransfer: UInt64 = 1024 * 1024

    static func nfsType(_ type: FileType) -> UInt32 {
        switch type {
        case .regular: 1
        case .directory: 2
        case .blockDevice: 3
        case .characterDevice: 4
        case .symlink: 5
        case .socket: 6
        case .fifo: 7
        }
    }

    static func time(_ writer: inout XDRWriter, _ time: Timespec) {
        writer.int64(time.seconds)
        writer.uint32(time.nanoseconds)
    }

    /// Encodes fattr4 for the attributes of `requested` this server supports: the bitmap of
    /// those answered, then their values in ascending order.
    public static func encode(_ writer: inout XDRWriter, requested: Bitmap4, source: NFS4AttrSource) {
        let answered = answerable(requested, source: source)
        answered.encode(&writer)
        let lengthAt = writer.reserve()
        let start = writer.count
        encodeValues(&writer, answered, source: source)
        writer.patch(UInt32(writer.count - start), at: lengthAt)
    }

    /// The attributes of `requested` that can be answered for this source.
    static func answerable(_ requested: Bitmap4, source: NFS4AttrSource) -> Bitmap4 {
        var answered = requested.intersection(NFS4Attr.supported(minor: source.minor))
        // Write-only attributes are never returned.
        answered = answered.subtracting(Bitmap4([NFS4Attr.timeAccessSet, NFS4Attr.timeModifySet]))
        if source.statfs == nil { answered = answered.subtracting(NFS4Attr.statfsBits) }
        if !source.attributes.valid.contains(.birthTime) { answered = answered.subtracting(Bitmap4([NFS4Attr.timeCreate])) }
        while let last = answered.words.last, last == 0 { answered.words.removeLast() }
        return answered
    }

    /// The attribute values (attrlist4 contents) of `bits`, in ascending order.
    public static func encodeValues(_ w: inout XDRWriter, _ bits: Bitmap4, source: NFS4AttrSource) {
        let a = source.attributes
        for bit in bits.bits {
            switch bit {
            case NFS4Attr.supportedAttrs: NFS4Attr.supported(minor: source.minor).encode(&w)
            case NFS4Attr.type: w.uint32(nfsType(a.type))
            case NFS4Attr.fhExpireType: w.uint32(0)  // FH4_PERSISTENT
            case NFS4Attr.change:
                // The change counter where the backend keeps one, else ctime.
                w.uint64(a.valid.contains(.change) && a.change != 0 ? a.change
                         : UInt64(bitPattern: a.ctime.seconds) &* 1_000_000_000 &+ UInt64(a.ctime.nanoseconds))
            case NFS4Attr.size: w.uint64(a.size)
            case NFS4Attr.linkSupport, NFS4Attr.symlinkSupport, NFS4Attr.uniqueHandles, NFS4Attr.cansettime,
                 NFS4Attr.casePreserving, NFS4Attr.chownRestricted, NFS4Attr.homogeneous, NFS4Attr.noTrunc:
                w.bool(true)
            case NFS4Attr.namedAttr, NFS4Attr.caseInsensitive: w.bool(false)
            case NFS4Attr.fsid:
                w.uint64(source.fsid.major)
                w.uint64(source.fsid.minor)
            case NFS4Attr.leaseTime: w.uint32(source.leaseSeconds)
            case NFS4Attr.rdattrError: w.uint32(source.rdattrError.rawValue)
            case NFS4Attr.aclSupport: w.uint32(0)
            case NFS4Attr.filehandle: w.opaque(source.handle)
            case NFS4Attr.fileid: w.uint64(a.fileid)
            case NFS4Attr.filesAvail: w.uint64(source.statfs?.availableFiles ?? 0)
            case NFS4Attr.filesFree: w.uint64(source.statfs?.freeFiles ?? 0)
            case NFS4Attr.filesTotal: w.uint64(source.statfs?.totalFiles ?? 0)
            case NFS4Attr.maxfilesize: w.uint64(UInt64(Int64.max))
            case NFS4Attr.maxlink: w.uint32(65000)
            case NFS4Attr.maxname: w.uint32(255)
            case NFS4Attr.maxread, NFS4Attr.maxwrite: w.uint64(maxTransfer)
            case NFS4Attr.mode: w.uint32(a.mode & 0o7777)
            case NFS4Attr.numlinks: w.uint32(a.nlink)
            case NFS4Attr.owner: w.string(String(a.uid))
            case NFS4Attr.ownerGroup: w.string(String(a.gid))
            case NFS4Attr.rawdev:
                w.uint32(a.rdevMajor)
                w.uint32(a.rdevMinor)
            case NFS4Attr.spaceAvail: w.uint64(source.statfs?.availableBytes ?? 0)
            case NFS4Attr.spaceFree: w.uint64(source.statfs?.freeBytes ?? 0)
            case NFS4Attr.spaceTotal: w.uint64(source.statfs?.totalBytes ?? 0)
            case NFS4Attr.spaceUsed: w.uint64(a.spaceUsed)
            case NFS4Attr.timeAccess: time(&w, a.atime)
            case NFS4Attr.timeCreate: time(&w, a.birthTime)
            case NFS4Attr.timeDelta: time(&w, Timespec(seconds: 0, nanoseconds: 1))
            case NFS4Attr.timeMetadata: time(&w, a.ctime)
            case NFS4Attr.timeModify: time(&w, a.mtime)
            case NFS4Attr.mountedOnFileid: w.uint64(source.mountedOnFileid)
            case NFS4Attr.xattrSupport: w.bool(true)
            case NFS4Attr.suppattrExclcreat: Bitmap4([NFS4Attr.size, NFS4Attr.mode, NFS4Attr.owner, NFS4Attr.ownerGroup]).encode(&w)
            default: break
            }
        }
    }

    /// Decodes an fattr4 a client sends to set attributes (SETATTR, CREATE, OPEN): the
    /// changes and the bitmap of attributes set. Unknown or read-only attributes are refused
    /// (ATTRNOTSUPP / INVAL), owners must be numeric strings (BADOWNER otherwise).
    public static func decodeSettable(_ decoder: inout XDRDecoder, minor: UInt32, identities: NFS4Identities = NFS4Identities()) throws(NFS4Error) -> (SetAttributes, Bitmap4) {
        let bitmap: Bitmap4
        let values: UnsafeRawBufferPointer
        do {
            bitmap = try Bitmap4.decode(&decoder)
            values = try decoder.opaque(maximum: 64 * 1024)
        } catch {
            throw .status(.badxdr)
        }
        var changes = SetAttributes()
        for bit in bitmap.bits where !NFS4Attr.settable.contains(bit) {
            throw .status(NFS4Attr.supported(minor: minor).contains(bit) ? .inval : .attrnotsupp)
        }
        var v = XDRDecoder(values)
        do {
            for bit in bitmap.bits {
                switch bit {
                case NFS4Attr.size: changes.size = try v.uint64()
                case NFS4Attr.mode: changes.mode = try v.uint32() & 0o7777
                case NFS4Attr.owner:
                    guard let id = identities.id(try v.string(maximum: 1024), group: false) else { throw NFS4Error.status(.badowner) }
                    changes.uid = id
                case NFS4Attr.ownerGroup:
                    guard let id = identities.id(try v.string(maximum: 1024), group: true) else { throw NFS4Error.status(.badowner) }
                    changes.gid = id
                case NFS4Attr.timeAccessSet, NFS4Attr.timeModifySet:
                    let how = try v.uint32()
                    let setting: TimeSetting
                    if how == 1 {
                        let seconds = try v.int64()
                        let nanoseconds = try v.uint32()
                        guard nanoseconds < 1_000_000_000 else { throw NFS4Error.status(.inval) }
                        setting = .value(Timespec(seconds: seconds, nanoseconds: nanoseconds))
                    } else if how == 0 {
                        setting = .serverTime
                    } else {
                        throw XDRError()
                    }
                    if bit == NFS4Attr.timeAccessSet { changes.atime = setting } else { changes.mtime = setting }
                default: break
                }
            }
        } catch let error as NFS4Error {
            throw error
        } catch {
            throw .status(.badxdr)
        }
        return (changes, bitmap)
    }
}
