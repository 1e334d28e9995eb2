import VFS

/// Oplock levels (MS-SMB2 §2.2.13).
enum OplockLevel {
    static let none: UInt8 = 0
    static let levelII: UInt8 = 1
    static let exclusive: UInt8 = 8
    static let batch: UInt8 = 9
    static let lease: UInt8 = 0xFF

    /// The caching an oplock stands for in the VFS's lease terms: level II reads, exclusive
    /// reads and writes, batch also keeps the handle.
    static func leaseState(_ level: UInt8) -> LeaseState {
        switch level {
        case levelII: [.read]
        case exclusive: [.read, .write]
        case batch: [.read, .write, .handle]
        default: []
        }
    }

    /// The oplock a lease state leaves (handle caching without write caching is level II).
    static func level(_ state: LeaseState) -> UInt8 {
        if state.contains(.write) { return state.contains(.handle) ? batch : exclusive }
        return state.contains(.read) ? levelII : none
    }
}

/// Share access bits (MS-SMB2 §2.2.13).
enum ShareAccess {
    static let read: UInt32 = 0x1
    static let write: UInt32 = 0x2
    static let delete: UInt32 = 0x4
}

/// SMB opens live in the VFS's shared file state (`vfs.fileStates`), next to NFSv4's: share
/// modes, byte-range locks, oplocks and delete-pending are one table, so each protocol sees
/// the other's. Each SMB open is its own `StateOwner` (share modes, locks and oplocks are per
/// open in SMB), in a client namespace NFSv4 client ids never reach.
extension SMBConnection {
    /// `StateOwner.client` of every SMB open (NFSv4 client ids carry the boot time in their
    /// high half).
    static let stateClient: UInt64 = .max

    /// What an open takes part in share modes with (MS-FSA §2.1.5.1.2): reading, writing
    /// (data or append) and deleting; the deny mode is what its ShareAccess leaves out. An
    /// open with none of these accesses (attributes only) takes no part.
    static func shareModes(access: UInt32, share: UInt32) -> (access: ShareMode, deny: ShareMode) {
        var granted: ShareMode = []
        if access & (SMBAccess.readData | SMBAccess.execute) != 0 { granted.insert(.read) }
        if access & (SMBAccess.writeData | SMBAccess.appendData) != 0 { granted.insert(.write) }
        if access & SMBAccess.delete != 0 { granted.insert(.delete) }
        var deny: ShareMode = []
        if share & ShareAccess.read == 0 { deny.insert(.read) }
        if share & ShareAccess.write == 0 { deny.insert(.write) }
        if share & ShareAccess.delete == 0 { deny.insert(.delete) }
        return (granted, deny)
    }

    /// Whether another open of the file lacks FILE_SHARE_DELETE: a rename or delete through
    /// `open` would violate it.
    func othersRefuseDelete(_ open: OpenFile) -> Bool {
        open.state.opens.contains { $0.owner != open.owner && $0.deny.contains(.delete) }
    }

    /// Whether some open of `handle` (a directory) was granted DELETE: Windows and Samba then
    /// refuse to rename entries out of it.
    func openedForDelete(_ handle: FileHandle) -> Bool {
        vfs.fileStates.state(of: handle)?.opens.contains { $0.access.contains(.delete) } ?? false
    }

    /// Whether I/O through `open` over a range runs into a byte-range lock (anyone's, NFSv4's
    /// included); one relaxed load when the file has none.
    func lockConflict(_ open: SMBOpen, offset: UInt64, length: Int, write: Bool) -> Bool {
        guard length > 0, let file = open.fileState else { return false }
        return file.conflictingLock(ByteRange(offset: offset, length: UInt64(length)), write: write, lockOwner: open.lockOwner) != nil
    }
}
