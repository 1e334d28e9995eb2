import VFS

/// SET_INFO (MS-SMB2 §3.3.5.21; MS-FSCC §2.4): times, end of file, rename, hard link,
/// delete-on-close. Each checks the access the open was granted.
extension SMBConnection {
    func setInfo(_ request: inout SMB2Request, reply: SMBReply) async throws(NTStatus) {
        let reader = request.reader
        guard try reader.u16(at: 64) == 33 else { throw .invalidParameter }
        let infoType = try reader.u8(at: 66)
        let infoClass = try reader.u8(at: 67)
        let length = Int(try reader.u32(at: 68))
        let offset = Int(try reader.u16(at: 72))
        let open = try open(request, at: 80)
        let buffer = SMBReader(try reader.slice(at: offset, count: length))
        guard open.pipe == nil else { throw .invalidParameter }
        guard let session = request.session, let tree = request.tree else { throw .invalidParameter }
        guard infoType == InfoType.file else { throw infoType == InfoType.security ? .notSupported : .invalidInfoClass }
        if tree.readOnly && infoClass != FileClass.position && infoClass != FileClass.mode { throw .accessDenied }
        let credentials = session.credentials

        switch infoClass {
        case FileClass.basic:
            guard length >= 36 else { throw .infoLengthMismatch }
            guard open.access & SMBAccess.writeAttributes != 0 else { throw .accessDenied }
            // A directory cannot be temporary (MS-FSA §2.1.5.14.2).
            let attributeBits = try buffer.u32(at: 32)
            if open.isDirectory && attributeBits & 0x100 != 0 { throw .invalidParameter }
            var changes = SetAttributes()
            if let atime = FileTime.timespec(try buffer.u64(at: 8)) { changes.atime = .value(atime) }
            if let mtime = FileTime.timespec(try buffer.u64(at: 16)) { changes.mtime = .value(mtime) }
            if !changes.isEmpty { try await setattr(open.handle, changes, credentials) }
        case FileClass.endOfFile, FileClass.allocation:
            guard length >= 8 else { throw .infoLengthMismatch }
            guard open.access & (SMBAccess.writeData | SMBAccess.appendData) != 0 else { throw .accessDenied }
            if open.isDirectory { throw .invalidParameter }
            let size = try buffer.u64(at: 0)
            breakReadCaching(open)
            if infoClass == FileClass.endOfFile {
                try await setattr(open.handle, SetAttributes(size: size), credentials)
            } else {
                // Allocation only shrinks a file whose end lies past it.
                let current = try await getattr(open.handle)
                if size < current.size { try await setattr(open.handle, SetAttributes(size: size), credentials) }
            }
        case FileClass.disposition, FileClass.dispositionEx:
            guard length >= 1 else { throw .infoLengthMismatch }
            let delete = infoClass == FileClass.disposition ? try buffer.u8(at: 0) != 0 : try buffer.u32(at: 0) & 0x1 != 0
            guard open.access & SMBAccess.delete != 0 else { throw .accessDenied }
            guard open.parent != nil else { throw .cannotDelete }
            if delete && open.isDirectory, try await !directoryIsEmpty(open.handle, credentials: credentials) { throw .directoryNotEmpty }
            open.fileState?.state.deletePending = delete
        case FileClass.rename, FileClass.link:
            guard length >= 20 else { throw .infoLengthMismatch }
            let replace = try buffer.u8(at: 0) != 0
            let nameLength = Int(try buffer.u32(at: 16))
            let target = try buffer.utf16(at: 20, count: nameLength)
            try await renameOrLink(open, to: target, replace: replace, link: infoClass == FileClass.link, tree: tree, credentials: credentials)
        case FileClass.position:
            guard length >= 8 else { throw .infoLengthMismatch }
            open.position = try buffer.u64(at: 0)
        case FileClass.mode:
            break
        default:
            throw .invalidInfoClass
        }
        if infoClass == FileClass.basic || infoClass == FileClass.endOfFile || infoClass == FileClass.allocation {
            let bits = infoClass == FileClass.basic ? NotifyFilter.attributes | NotifyFilter.lastWrite : NotifyFilter.size
            postChange(in: open.parent, .modified, name: open.name, isDirectory: open.isDirectory, filter: bits)
        }
        respond(request, reply: reply, bodyCapacity: 2) { $0.u16(2) }
    }

    private func setattr(_ handle: FileHandle, _ changes: SetAttributes, _ credentials: Credentials) async throws(NTStatus) {
        do {
            _ = try await vfs.setattr(handle, changes, credentials: credentials)
        } catch {
            throw NTStatus(error)
        }
    }

    private func renameOrLink(_ open: SMBOpen, to target: String, replace: Bool, link: Bool, tree: SMBTree, credentials: Credentials) async throws(NTStatus) {
        guard let parent = open.parent else { throw .accessDenied }
        if !link { guard open.access & SMBAccess.delete != 0 else { throw .accessDenied } }
        // Another open of the file that does not share delete forbids moving it.
        if !link, let file = open.fileState, othersRefuseDelete(file) {
            throw .sharingViolation
        }
        // So does a handle on the directory it leaves that was opened for DELETE.
        if !link && openedForDelete(parent) { throw .sharingViolation }
        let parts = try Self.components(target)
        guard let newName = parts.last else { throw .objectNameInvalid }
        let directory = try await walk(tree, parts.dropLast(), credentials: credentials)
        var existing: Attributes?
        do {
            existing = try await vfs.lookup(directory, name: newName, mask: .type, credentials: credentials).1
        } catch {
            if error != .notFound { throw NTStatus(error) }
        }
        let samePlace = directory == parent && newName == open.name
        if existing != nil && !samePlace {
            if !replace { throw .objectNameCollision }
            if existing?.type == .directory { throw .accessDenied }
        }
        do {
            if link {
                if existing != nil && !samePlace { _ = try await vfs.remove(in: directory, name: newName, credentials: credentials) }
                _ = try await vfs.link(open.handle, into: directory, name: newName, credentials: credentials)
            } else if !samePlace {
                _ = try await vfs.rename(from: parent, name: open.name, to: directory, newName: newName, credentials: credentials)
                if parent == directory {
                    postChange(in: parent, .renamedOldName, name: open.name, isDirectory: open.isDirectory)
                    postChange(in: directory, .renamedNewName, name: newName, isDirectory: open.isDirectory)
                } else {
                    postChange(in: parent, .removed, name: open.name, isDirectory: open.isDirectory)
                    postChange(in: directory, .added, name: newName, isDirectory: open.isDirectory)
                }
                open.parent = directory
                open.name = newName
                open.path = parts.joined(separator: "\\")
            }
        } catch {
            throw NTStatus(error)
        }
    }
}
