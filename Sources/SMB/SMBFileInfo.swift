import VFS

/// How VFS attributes look to SMB clients: FILETIMEs, DOS attributes, allocation sizes and
/// the fixed-layout information blocks several commands share.
enum SMBFileInfo {
    static let attributeReadOnly: UInt32 = 0x1
    static let attributeHidden: UInt32 = 0x2
    static let attributeDirectory: UInt32 = 0x10
    static let attributeArchive: UInt32 = 0x20
    static let attributeNormal: UInt32 = 0x80

    /// The attributes a getattr should fetch for SMB.
    static let mask: AttributeMask = [.type, .mode, .nlink, .uid, .gid, .size, .spaceUsed, .fileid, .atime, .mtime, .ctime, .birthTime]

    static func dosAttributes(_ attributes: Attributes) -> UInt32 {
        var value: UInt32 = attributes.type == .directory ? attributeDirectory : attributeArchive
        if attributes.type != .directory && attributes.valid.contains(.mode) && attributes.mode & 0o222 == 0 { value |= attributeReadOnly }
        return value
    }

    static func creationTime(_ attributes: Attributes) -> UInt64 {
        FileTime.from(attributes.valid.contains(.birthTime) && attributes.birthTime != .zero ? attributes.birthTime : attributes.mtime)
    }

    static func allocationSize(_ attributes: Attributes) -> UInt64 {
        if attributes.type == .directory { return 0 }
        let rounded = (attributes.size + 4095) & ~UInt64(4095)
        return attributes.valid.contains(.spaceUsed) ? max(attributes.spaceUsed, rounded) : rounded
    }

    static func endOfFile(_ attributes: Attributes) -> UInt64 {
        attributes.type == .directory ? 0 : attributes.size
    }

    /// CreationTime, LastAccessTime, LastWriteTime, ChangeTime (32 bytes).
    static func times(_ writer: inout SMBWriter, _ attributes: Attributes) {
        writer.u64(creationTime(attributes))
        writer.u64(FileTime.from(attributes.atime))
        writer.u64(FileTime.from(attributes.mtime))
        writer.u64(FileTime.from(attributes.ctime))
    }

    /// The four times, allocation size, end of file and attributes (CREATE, CLOSE and
    /// FileNetworkOpenInformation share this 52-byte run).
    static func networkOpen(_ writer: inout SMBWriter, _ attributes: Attributes) {
        times(&writer, attributes)
        writer.u64(allocationSize(attributes))
        writer.u64(endOfFile(attributes))
        writer.u32(dosAttributes(attributes))
    }

    /// FileBasicInformation (40 bytes).
    static func basic(_ writer: inout SMBWriter, _ attributes: Attributes) {
        times(&writer, attributes)
        writer.u32(dosAttributes(attributes))
        writer.u32(0)
    }

    /// FileStandardInformation (24 bytes).
    static func standard(_ writer: inout SMBWriter, _ attributes: Attributes, deletePending: Bool) {
        writer.u64(allocationSize(attributes))
        writer.u64(endOfFile(attributes))
        writer.u32(max(1, attributes.nlink))
        writer.u8(deletePending ? 1 : 0)
        writer.u8(attributes.type == .directory ? 1 : 0)
        writer.u16(0)
    }
}

/// Access mask bits (MS-DTYP §2.4.3, MS-SMB2 §2.2.13.1).
enum SMBAccess {
    static let readData: UInt32 = 0x1
    static let writeData: UInt32 = 0x2
    static let appendData: UInt32 = 0x4
    static let readEA: UInt32 = 0x8
    static let writeEA: UInt32 = 0x10
    static let execute: UInt32 = 0x20
    static let deleteChild: UInt32 = 0x40
    static let readAttributes: UInt32 = 0x80
    static let writeAttributes: UInt32 = 0x100
    static let delete: UInt32 = 0x10000
    static let readControl: UInt32 = 0x20000
    static let writeDAC: UInt32 = 0x40000
    static let writeOwner: UInt32 = 0x80000
    static let synchronize: UInt32 = 0x100000
    static let maximumAllowed: UInt32 = 0x0200_0000
    static let genericAll: UInt32 = 0x1000_0000
    static let genericExecute: UInt32 = 0x2000_0000
    static let genericWrite: UInt32 = 0x4000_0000
    static let genericRead: UInt32 = 0x8000_0000

    static let all: UInt32 = 0x001F_01FF
    /// Bits that change the object or its name.
    static let modifying: UInt32 = writeData | appendData | writeEA | writeAttributes | deleteChild | delete | writeDAC | writeOwner

    /// Generic rights expanded to specific ones (MS-SMB2 §3.3.5.9 uses the file mapping).
    static func expand(_ mask: UInt32) -> UInt32 {
        var value = mask & 0x01FF_FFFF
        if mask & genericRead != 0 { value |= 0x0012_0089 }
        if mask & genericWrite != 0 { value |= 0x0012_0116 }
        if mask & genericExecute != 0 { value |= 0x0012_00A0 }
        if mask & genericAll != 0 { value |= all }
        return value
    }
}
