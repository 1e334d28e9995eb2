import Glibc
import VFS

/// The SMB2 commands (MS-SMB2 §2.2.1), indexing the per-command statistics.
public enum SMB2Command: UInt16, CaseIterable, Sendable {
    case negotiate = 0, sessionSetup, logoff, treeConnect, treeDisconnect, create, close, flush, read, write,
         lock, ioctl, cancel, echo, queryDirectory, changeNotify, queryInfo, setInfo, oplockBreak

    public static let names = ["NEGOTIATE", "SESSION_SETUP", "LOGOFF", "TREE_CONNECT", "TREE_DISCONNECT", "CREATE", "CLOSE",
                               "FLUSH", "READ", "WRITE", "LOCK", "IOCTL", "CANCEL", "ECHO", "QUERY_DIRECTORY",
                               "CHANGE_NOTIFY", "QUERY_INFO", "SET_INFO", "OPLOCK_BREAK"]
}

/// Dialect revisions (MS-SMB2 §2.2.3).
public enum SMB2Dialect: UInt16, Comparable, CaseIterable, Sendable {
    case smb202 = 0x0202, smb210 = 0x0210, smb300 = 0x0300, smb302 = 0x0302, smb311 = 0x0311

    public static func < (a: SMB2Dialect, b: SMB2Dialect) -> Bool { a.rawValue < b.rawValue }

    /// The SMB 3.x family: AES-CMAC signing, KDF-derived keys, encryption.
    var isSMB3: Bool { self >= .smb300 }
}

/// The 64-byte SMB2 header of a request (MS-SMB2 §2.2.1.2, sync form; the async form reads
/// the same fields but treats bytes 32..39 as the AsyncId).
struct SMB2Header {
    static let size = 64
    static let protocolID: UInt32 = 0x424D_53FE  // "\xFESMB" little endian

    struct Flags: OptionSet {
        let rawValue: UInt32
        static let serverToRedirector = Flags(rawValue: 0x1)
        static let async = Flags(rawValue: 0x2)
        static let related = Flags(rawValue: 0x4)
        static let signed = Flags(rawValue: 0x8)
        static let dfs = Flags(rawValue: 0x1000_0000)
        static let replay = Flags(rawValue: 0x2000_0000)
    }

    var creditCharge: UInt16
    var channelSequence: UInt32
    var command: UInt16
    var creditRequest: UInt16
    var flags: Flags
    var nextCommand: UInt32
    var messageID: UInt64
    var asyncID: UInt64
    var treeID: UInt32
    var sessionID: UInt64

    /// Parses the header at the start of `bytes` (which holds at least the header).
    init(_ reader: SMBReader) throws(NTStatus) {
        guard try reader.u32(at: 0) == Self.protocolID, try reader.u16(at: 4) == 64 else { throw .invalidParameter }
        creditCharge = try reader.u16(at: 6)
        channelSequence = try reader.u32(at: 8)
        command = try reader.u16(at: 12)
        creditRequest = try reader.u16(at: 14)
        flags = Flags(rawValue: try reader.u32(at: 16))
        nextCommand = try reader.u32(at: 20)
        messageID = try reader.u64(at: 24)
        if flags.contains(.async) {
            asyncID = try reader.u64(at: 32)
            treeID = 0
        } else {
            asyncID = 0
            treeID = try reader.u32(at: 36)
        }
        sessionID = try reader.u64(at: 40)
    }

    /// Writes a response header for this request; the signature is left zero.
    static func writeResponse(_ writer: inout SMBWriter, command: UInt16, status: NTStatus, creditCharge: UInt16, credits: UInt16,
                              flags: Flags, nextCommand: UInt32, messageID: UInt64, asyncID: UInt64?, treeID: UInt32, sessionID: UInt64) {
        writer.u32(protocolID)
        writer.u16(64)
        writer.u16(creditCharge)
        writer.u32(status.rawValue)
        writer.u16(command)
        writer.u16(credits)
        var flags = flags
        flags.insert(.serverToRedirector)
        if asyncID != nil { flags.insert(.async) }
        writer.u32(flags.rawValue)
        writer.u32(nextCommand)
        writer.u64(messageID)
        if let asyncID {
            writer.u64(asyncID)
        } else {
            writer.u32(0)
            writer.u32(treeID)
        }
        writer.u64(sessionID)
        writer.zeros(16)
    }
}

/// Windows FILETIME: 100 ns units since 1601-01-01.
enum FileTime {
    static let unixEpoch: UInt64 = 116_444_736_000_000_000

    static func from(_ time: Timespec) -> UInt64 {
        if time.seconds < -11_644_473_600 { return 0 }
        return UInt64(Int64(unixEpoch) + time.seconds * 10_000_000 + Int64(time.nanoseconds / 100))
    }

    /// nil for 0 and -1, which mean "leave unchanged" in SET_INFO.
    static func timespec(_ value: UInt64) -> Timespec? {
        guard value != 0, value != UInt64.max, value != UInt64.max - 1 else { return nil }
        let relative = Int64(bitPattern: value) - Int64(unixEpoch)
        var seconds = relative / 10_000_000
        var remainder = relative % 10_000_000
        if remainder < 0 { remainder += 10_000_000; seconds -= 1 }
        return Timespec(seconds: seconds, nanoseconds: UInt32(remainder * 100))
    }

    static func now() -> UInt64 {
        var spec = Glibc.timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return from(Timespec(seconds: Int64(spec.tv_sec), nanoseconds: UInt32(spec.tv_nsec)))
    }
}
