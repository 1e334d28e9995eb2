import ONCRPC
import VFS

/// XDR shapes shared by the NFSv3 procedures (RFC 1813 §2.5–2.6).
enum NFS3XDR {
    /// fattr3 is 84 bytes; post_op_attr adds the boolean.
    static let fattrSize = 84
    static let postOpSize = 4 + fattrSize
    /// wcc_data: pre_op_attr (bool + size, mtime, ctime) + post_op_attr.
    static let wccSize = 4 + 24 + postOpSize
    static let postOpHandleSize = 4 + 4 + NFS3.maxHandleSize

    static func ftype(_ type: FileType) -> UInt32 {
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

    static func time(_ encoder: inout XDREncoder, _ t: Timespec) {
        encoder.uint32(UInt32(truncatingIfNeeded: t.seconds))
        encoder.uint32(t.nanoseconds)
    }

    static func fattr(_ encoder: inout XDREncoder, _ a: Attributes) {
        encoder.uint32(ftype(a.type))
        encoder.uint32(a.mode & 0o7777)
        encoder.uint32(a.nlink)
        encoder.uint32(a.uid)
        encoder.uint32(a.gid)
        encoder.uint64(a.size)
        encoder.uint64(a.spaceUsed)
        encoder.uint32(a.rdevMajor)
        encoder.uint32(a.rdevMinor)
        encoder.uint64(a.fsid)
        encoder.uint64(a.fileid)
        time(&encoder, a.atime)
        time(&encoder, a.mtime)
        time(&encoder, a.ctime)
    }

    static func postOp(_ encoder: inout XDREncoder, _ a: Attributes?) {
        guard let a else { return encoder.bool(false) }
        encoder.bool(true)
        fattr(&encoder, a)
    }

    static func preOp(_ encoder: inout XDREncoder, _ a: Attributes?) {
        guard let a else { return encoder.bool(false) }
        encoder.bool(true)
        encoder.uint64(a.size)
        time(&encoder, a.mtime)
        time(&encoder, a.ctime)
    }

    static func wcc(_ encoder: inout XDREncoder, _ change: DirectoryChange?) {
        preOp(&encoder, change?.before)
        postOp(&encoder, change?.after)
    }

    static func wcc(_ encoder: inout XDREncoder, before: Attributes, after: Attributes) {
        preOp(&encoder, before)
        postOp(&encoder, after)
    }

    static func handle(_ encoder: inout XDREncoder, _ handle: SignedHandle) {
        handle.withBytes { encoder.opaque($0) }
    }

    static func postOpHandle(_ encoder: inout XDREncoder, _ handle: SignedHandle?) {
        guard let handle else { return encoder.bool(false) }
        encoder.bool(true)
        handle.withBytes { encoder.opaque($0) }
    }

    static func decodeTime(_ decoder: inout XDRDecoder) throws(XDRError) -> Timespec {
        let seconds = try decoder.uint32()
        let nanoseconds = try decoder.uint32()
        guard nanoseconds < 1_000_000_000 else { throw XDRError() }
        return Timespec(seconds: Int64(seconds), nanoseconds: nanoseconds)
    }

    /// sattr3: each field behind a "set it" discriminant.
    static func sattr(_ decoder: inout XDRDecoder) throws(XDRError) -> SetAttributes {
        var changes = SetAttributes()
        if try decoder.bool() { changes.mode = try decoder.uint32() & 0o7777 }
        if try decoder.bool() { changes.uid = try decoder.uint32() }
        if try decoder.bool() { changes.gid = try decoder.uint32() }
        if try decoder.bool() { changes.size = try decoder.uint64() }
        changes.atime = try timeHow(&decoder)
        changes.mtime = try timeHow(&decoder)
        return changes
    }

    private static func timeHow(_ decoder: inout XDRDecoder) throws(XDRError) -> TimeSetting {
        switch try decoder.uint32() {
        case 0: return .unchanged
        case 1: return .serverTime
        case 2: return .value(try decodeTime(&decoder))
        default: throw XDRError()
        }
    }

    static func name(_ decoder: inout XDRDecoder) throws(XDRError) -> String {
        // Names longer than NAME_MAX are decoded (up to a sane bound) so the caller can answer
        // NAMETOOLONG rather than GARBAGE_ARGS.
        try decoder.string(maximum: 1024)
    }
}
