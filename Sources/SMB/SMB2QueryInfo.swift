import VFS

/// QUERY_INFO (MS-SMB2 §3.3.5.20; classes from MS-FSCC §2.4 and §2.5): file, filesystem and
/// security information built from VFS attributes. Pipes answer only what pipes have.
extension SMBConnection {
    enum InfoType {
        static let file: UInt8 = 1
        static let fileSystem: UInt8 = 2
        static let security: UInt8 = 3
        static let quota: UInt8 = 4
    }

    enum FileClass {
        static let basic: UInt8 = 4
        static let standard: UInt8 = 5
        static let `internal`: UInt8 = 6
        static let ea: UInt8 = 7
        static let access: UInt8 = 8
        static let name: UInt8 = 9
        static let rename: UInt8 = 10
        static let link: UInt8 = 11
        static let disposition: UInt8 = 13
        static let position: UInt8 = 14
        static let fullEA: UInt8 = 15
        static let mode: UInt8 = 16
        static let alignment: UInt8 = 17
        static let all: UInt8 = 18
        static let allocation: UInt8 = 19
        static let endOfFile: UInt8 = 20
        static let alternateName: UInt8 = 21
        static let stream: UInt8 = 22
        static let compression: UInt8 = 28
        static let networkOpen: UInt8 = 34
        static let attributeTag: UInt8 = 35
        static let normalizedName: UInt8 = 48
        static let dispositionEx: UInt8 = 64
    }

    /// The fixed part of each class (MS-FSCC): a buffer smaller than this is
    /// INFO_LENGTH_MISMATCH; one that holds it but not the variable part gets what fits and
    /// STATUS_BUFFER_OVERFLOW.
    static func fixedSize(infoType: UInt8, infoClass: UInt8) -> Int {
        if infoType == InfoType.fileSystem {
            switch infoClass {
            case 1: return 24
            case 3: return 24
            case 4: return 8
            case 5: return 16
            case 6: return 48
            case 7: return 32
            case 8: return 64
            case 11: return 28
            default: return 0
            }
        }
        switch infoClass {
        case FileClass.basic: return 40
        case FileClass.standard: return 24
        case FileClass.internal, FileClass.position, FileClass.attributeTag: return 8
        case FileClass.ea, FileClass.access, FileClass.mode, FileClass.alignment: return 4
        case FileClass.all: return 104
        case FileClass.alternateName, FileClass.name, FileClass.normalizedName: return 8
        case FileClass.stream: return 32
        case FileClass.compression: return 16
        case FileClass.networkOpen: return 56
        default: return 0
        }
    }

    func queryInfo(_ request: inout SMB2Request, reply: SMBReply) async throws(NTStatus) {
        let reader = request.reader
        guard try reader.u16(at: 64) == 41 else { throw .invalidParameter }
        let infoType = try reader.u8(at: 66)
        let infoClass = try reader.u8(at: 67)
        let outputLength = Int(try reader.u32(at: 68))
        let additional = try reader.u32(at: 80)
        let open = try open(request, at: 88)
        guard outputLength <= maxIOSize else { throw .invalidParameter }
        if open.pipe != nil {
            // A pipe has no file attributes, filesystem or security to show.
            throw .invalidParameter
        }
        let attributes = try await getattr(open.handle)
        var stats: FileSystemStats?
        if infoType == InfoType.fileSystem && (infoClass == 3 || infoClass == 7) {
            do {
                stats = try await vfs.statfs(open.handle)
            } catch {
                throw NTStatus(error)
            }
        }
        let scratchSize = 1024 + open.path.utf16.count * 2 + (request.tree?.share?.name.utf16.count ?? 0) * 2
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: scratchSize, alignment: 8)
        defer { scratch.deallocate() }
        var writer = SMBWriter(scratch, capacity: scratchSize)
        switch infoType {
        case InfoType.file:
            _ = try encodeFileInfo(&writer, infoClass, open: open, attributes: attributes)
        case InfoType.fileSystem:
            _ = try encodeFileSystemInfo(&writer, infoClass, open: open, request: request, stats: stats)
        case InfoType.security:
            Self.encodeSecurityDescriptor(&writer, attributes: attributes, additional: additional)
        default:
            throw .invalidInfoClass
        }
        let produced = writer.offset
        var status = NTStatus.success
        var count = produced
        if produced > outputLength {
            if infoType != InfoType.security && outputLength < max(1, Self.fixedSize(infoType: infoType, infoClass: infoClass)) {
                throw .infoLengthMismatch
            }
            if infoType == InfoType.security {
                // The client asks again with the size this reports.
                let needed = produced
                respond(request, reply: reply, status: .bufferTooSmall, bodyCapacity: 12) { writer in
                    writer.u16(9)
                    writer.u8(0)
                    writer.u8(0)
                    writer.u32(4)
                    writer.u32(UInt32(needed))
                }
                return
            }
            status = .bufferOverflow
            count = outputLength
        }
        respond(request, reply: reply, status: status, bodyCapacity: 8 + count) { writer in
            writer.u16(9)
            writer.u16(72)
            writer.u32(UInt32(count))
            writer.bytes(UnsafeRawBufferPointer(start: scratch, count: count))
        }
    }

    /// Returns whether the class has a fixed size (too small a buffer is then an error, not a
    /// truncation).
    private func encodeFileInfo(_ writer: inout SMBWriter, _ infoClass: UInt8, open: SMBOpen, attributes: Attributes) throws(NTStatus) -> Bool {
        let deletePending = open.fileState?.state.deletePending ?? false
        switch infoClass {
        case FileClass.basic:
            SMBFileInfo.basic(&writer, attributes)
        case FileClass.standard:
            SMBFileInfo.standard(&writer, attributes, deletePending: deletePending)
        case FileClass.internal:
            writer.u64(attributes.fileid)
        case FileClass.ea:
            writer.u32(0)
        case FileClass.access:
            writer.u32(open.access)
        case FileClass.position:
            writer.u64(open.position)
        case FileClass.mode:
            writer.u32(0)
        case FileClass.alignment:
            writer.u32(0)
        case FileClass.all:
            SMBFileInfo.basic(&writer, attributes)
            SMBFileInfo.standard(&writer, attributes, deletePending: deletePending)
            writer.u64(attributes.fileid)
            writer.u32(0)             // EA size
            writer.u32(open.access)
            writer.u64(open.position)
            writer.u32(0)             // mode
            writer.u32(0)             // alignment
            let name = "\\" + open.path
            writer.u32(UInt32(name.utf16.count * 2))
            writer.utf16(name)
            return false
        case FileClass.alternateName:
            // No 8.3 names are generated: the short name is the name itself.
            writer.u32(UInt32(open.name.utf16.count * 2))
            writer.utf16(open.name)
            return false
        case FileClass.normalizedName, FileClass.name:
            let name = infoClass == FileClass.name ? "\\" + open.path : open.path
            writer.u32(UInt32(name.utf16.count * 2))
            writer.utf16(name)
            return false
        case FileClass.networkOpen:
            SMBFileInfo.networkOpen(&writer, attributes)
            writer.u32(0)
        case FileClass.attributeTag:
            writer.u32(SMBFileInfo.dosAttributes(attributes))
            writer.u32(0)
        case FileClass.stream:
            guard attributes.type != .directory else { return false }
            writer.u32(0)
            let name = "::$DATA"
            writer.u32(UInt32(name.utf16.count * 2))
            writer.u64(SMBFileInfo.endOfFile(attributes))
            writer.u64(SMBFileInfo.allocationSize(attributes))
            writer.utf16(name)
            return false
        case FileClass.compression:
            writer.u64(SMBFileInfo.endOfFile(attributes))
            writer.u16(0)
            writer.u8(0)
            writer.u8(0)
            writer.u8(0)
            writer.zeros(3)
        default:
            throw .invalidInfoClass
        }
        return true
    }

    private func encodeFileSystemInfo(_ writer: inout SMBWriter, _ infoClass: UInt8, open: SMBOpen, request: SMB2Request,
                                      stats: FileSystemStats?) throws(NTStatus) -> Bool {
        let label = request.tree?.share?.name ?? ""
        switch infoClass {
        case 1:  // FileFsVolumeInformation
            writer.u64(server.startTime)
            writer.u32(UInt32(truncatingIfNeeded: label.hashValue))
            writer.u32(UInt32(label.utf16.count * 2))
            writer.u8(0)
            writer.u8(0)
            writer.utf16(label)
            return false
        case 3, 7:  // FileFsSizeInformation, FileFsFullSizeInformation
            guard let stats else { throw .invalidInfoClass }
            let unit: UInt64 = 4096
            writer.u64(stats.totalBytes / unit)
            writer.u64(stats.availableBytes / unit)
            if infoClass == 7 { writer.u64(stats.freeBytes / unit) }
            writer.u32(8)    // sectors per unit
            writer.u32(512)  // bytes per sector
        case 4:  // FileFsDeviceInformation
            writer.u32(7)    // FILE_DEVICE_DISK
            writer.u32(0x20) // FILE_DEVICE_IS_MOUNTED
        case 5:  // FileFsAttributeInformation
            // Case-sensitive search, case-preserved names, Unicode names, large files.
            writer.u32(0x1 | 0x2 | 0x4)
            writer.u32(255)
            let name = "NTFS"
            writer.u32(UInt32(name.utf16.count * 2))
            writer.utf16(name)
            return false
        case 6:  // FileFsControlInformation: no quotas
            writer.zeros(24)
            writer.u64(UInt64.max)
            writer.u64(UInt64.max)
            writer.u32(0)
            writer.u32(0)
        case 8:  // FileFsObjectIdInformation
            writer.bytes(server.guid)
            writer.zeros(48)
        case 11:  // FileFsSectorSizeInformation
            for _ in 0..<4 { writer.u32(512) }
            writer.u32(0x3)  // aligned device, partition aligned
            writer.u32(0)
            writer.u32(0)
        default:
            throw .invalidInfoClass
        }
        return true
    }

    /// A self-relative security descriptor: the owner and group as Samba's Unix SIDs
    /// (S-1-22-1-uid, S-1-22-2-gid) and a DACL granting everyone full access (the VFS's mode
    /// bits decide what is really allowed).
    static func encodeSecurityDescriptor(_ writer: inout SMBWriter, attributes: Attributes, additional: UInt32) {
        let start = writer.offset
        let wantOwner = additional & 0x1 != 0
        let wantGroup = additional & 0x2 != 0
        let wantDACL = additional & 0x4 != 0
        writer.u8(1)
        writer.u8(0)
        writer.u16(0x8000 | (wantDACL ? 0x4 : 0))
        let offsets = writer.offset
        writer.zeros(16)
        func sid(_ authority: UInt8, _ subs: [UInt32]) {
            writer.u8(1)
            writer.u8(UInt8(subs.count))
            writer.zeros(5)
            writer.u8(authority)
            for sub in subs { writer.u32(sub) }
        }
        if wantOwner {
            writer.patch32(UInt32(writer.offset - start), at: offsets)
            sid(22, [1, attributes.uid])
        }
        if wantGroup {
            writer.patch32(UInt32(writer.offset - start), at: offsets + 4)
            sid(22, [2, attributes.gid])
        }
        if wantDACL {
            writer.patch32(UInt32(writer.offset - start), at: offsets + 12)
            writer.u8(2)
            writer.u8(0)
            writer.u16(8 + 20)
            writer.u16(1)
            writer.u16(0)
            writer.u8(0)      // ACCESS_ALLOWED_ACE_TYPE
            writer.u8(0)
            writer.u16(20)
            writer.u32(SMBAccess.all)
            sid(1, [0])       // Everyone
        }
    }
}
