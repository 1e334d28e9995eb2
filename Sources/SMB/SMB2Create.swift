import VFS

/// CREATE (MS-SMB2 §3.3.5.9): paths from the share root walked through the VFS, the six
/// dispositions, directory/non-directory options, access checked against the share and the
/// object's mode, delete-on-close, the MxAc and QFid create contexts, and named pipes on IPC$.
extension SMBConnection {
    enum Disposition: UInt32 {
        case supersede = 0, open, create, openIf, overwrite, overwriteIf
    }

    enum CreateOption {
        static let directory: UInt32 = 0x1
        static let nonDirectory: UInt32 = 0x40
        static let deleteOnClose: UInt32 = 0x1000
        /// FILE_WRITE_THROUGH: every WRITE on the open is durable before it is answered.
        static let writeThrough: UInt32 = 0x2
    }

    enum CreateAction {
        static let superseded: UInt32 = 0
        static let opened: UInt32 = 1
        static let created: UInt32 = 2
        static let overwritten: UInt32 = 3
    }

    /// Opens one connection may hold.
    static let maxOpens = 16384

    /// Splits a client path ("dir\\file") into checked components.
    static func components(_ path: String) throws(NTStatus) -> [String] {
        var parts: [String] = []
        for part in path.split(separator: "\\", omittingEmptySubsequences: true) {
            let name = String(part)
            if name == "." || name == ".." { throw .objectNameInvalid }
            if name.utf8.count > 255 { throw .objectNameInvalid }
            for scalar in name.unicodeScalars {
                switch scalar {
                case "*", "?", "<", ">", "\"", "|", "/", ":": throw .objectNameInvalid
                default: if scalar.value < 0x20 { throw .objectNameInvalid }
                }
            }
            parts.append(name)
        }
        guard parts.count <= 256 else { throw .objectNameInvalid }
        return parts
    }

    /// Looks up every directory of `parts` but the last from the share root.
    func walk(_ tree: SMBTree, _ parts: ArraySlice<String>, credentials: Credentials) async throws(NTStatus) -> FileHandle {
        guard var handle = tree.root else { throw .objectPathNotFound }
        for part in parts {
            do {
                let (next, attributes) = try await vfs.lookup(handle, name: part, mask: .type, credentials: credentials)
                guard attributes.type == .directory else { throw NTStatus.objectPathNotFound }
                handle = next
            } catch let error as NTStatus {
                throw error
            } catch let error as VFSError {
                throw error == .notFound || error == .notDirectory ? .objectPathNotFound : NTStatus(error)
            } catch {
                throw .internalError
            }
        }
        return handle
    }

    func create(_ request: inout SMB2Request, reply: SMBReply) async throws(NTStatus) {
        let reader = request.reader
        guard try reader.u16(at: 64) == 57, let session = request.session, let tree = request.tree else { throw .invalidParameter }
        // Anonymous, identification, impersonation, delegation: nothing else exists.
        guard try reader.u32(at: 68) <= 3 else { throw .badImpersonationLevel }
        let desired = try reader.u32(at: 88)
        let dispositionRaw = try reader.u32(at: 100)
        let options = try reader.u32(at: 104)
        let nameOffset = Int(try reader.u16(at: 108))
        let nameLength = Int(try reader.u16(at: 110))
        let contextsOffset = Int(try reader.u32(at: 112))
        let contextsLength = Int(try reader.u32(at: 116))
        guard let disposition = Disposition(rawValue: dispositionRaw) else { throw .invalidParameter }
        let path = nameLength == 0 ? "" : try reader.utf16(at: nameOffset, count: nameLength)
        // Names are relative to the share; Windows refuses a leading backslash.
        if path.hasPrefix("\\") && !tree.isIPC { throw .invalidParameter }
        let contexts = contextsLength == 0 ? [:] : try Self.createContexts(reader, offset: contextsOffset, length: contextsLength)
        guard opens.count < Self.maxOpens else { throw .insufficientResources }
        // The session's open count is reserved now, so CREATEs running at once cannot pass the limit together.
        guard session.openCount < server.settings.maxOpensPerSession else { throw .tooManyOpenedFiles }
        session.openCount += 1
        var opened = false
        defer { if !opened { session.openCount -= 1 } }
        if options & CreateOption.directory != 0 && options & CreateOption.nonDirectory != 0 { throw .invalidParameter }

        if tree.isIPC {
            try openPipe(&request, reply: reply, name: path, session: session, tree: tree)
            opened = true
            return
        }
        var access = SMBAccess.expand(desired)
        let wantsMaximum = desired & SMBAccess.maximumAllowed != 0
        let deleteOnClose = options & CreateOption.deleteOnClose != 0
        if deleteOnClose && access & SMBAccess.delete == 0 && !wantsMaximum { throw .accessDenied }
        if tree.readOnly {
            if access & SMBAccess.modifying != 0 || deleteOnClose { throw .accessDenied }
            if disposition != .open && disposition != .openIf { throw .accessDenied }
        }

        let parts = try Self.components(path)
        let credentials = session.credentials
        let shareAccess = try reader.u32(at: 96) & 0x7
        let requestedOplock = try reader.u8(at: 67)
        // A lease (RqLs) stands in for an oplock from SMB 2.1 on.
        var leaseRequest: SMBLeaseRequest?
        if requestedOplock == OplockLevel.lease, let dialect, dialect >= .smb210, let position = contexts["RqLs"] {
            leaseRequest = try Self.leaseRequest(reader, at: position, dialect: dialect)
        }
        if wantsMaximum { access |= tree.readOnly ? Self.readAccess : SMBAccess.all }
        let openID = allocateFileID()
        // Overwriting breaks oplocks to none; anything else leaves the holder level II.
        let overwrites = disposition == .overwrite || disposition == .overwriteIf || disposition == .supersede
        var fileState: OpenFile?
        var grantedOplock = OplockLevel.none
        var parent: FileHandle?
        var handle: FileHandle
        var attributes: Attributes
        var action = CreateAction.opened
        if parts.isEmpty {
            guard let root = tree.root else { throw .objectNameNotFound }
            handle = root
            if disposition == .create { throw .objectNameCollision }
            if options & CreateOption.nonDirectory != 0 { throw .fileIsADirectory }
            if deleteOnClose { throw .cannotDelete }
            attributes = try await getattr(root)
            (fileState, grantedOplock) = try await acquire(root, &request, reply: reply, openID: openID, access: access, share: shareAccess, oplock: OplockLevel.none,
                                                           overwrites: overwrites, isDirectory: true)
        } else {
            let directory = try await walk(tree, parts.dropLast(), credentials: credentials)
            parent = directory
            let leaf = parts.last!
            var found: (FileHandle, Attributes)?
            do {
                found = try await vfs.lookup(directory, name: leaf, mask: SMBFileInfo.mask, credentials: credentials)
            } catch {
                if error != .notFound { throw NTStatus(error) }
            }
            if let (existing, existingAttributes) = found {
                handle = existing
                attributes = existingAttributes
                if disposition == .create { throw .objectNameCollision }
                let isDirectory = attributes.type == .directory
                if options & CreateOption.directory != 0 && !isDirectory { throw .notADirectory }
                if options & CreateOption.nonDirectory != 0 && isDirectory { throw .fileIsADirectory }
                let overwrite = overwrites
                if overwrite && isDirectory { throw .invalidParameter }
                if overwrite && tree.readOnly { throw .accessDenied }
                try await checkAccess(handle, attributes: attributes, wanted: access, maximum: wantsMaximum, readOnly: tree.readOnly,
                                      credentials: credentials)
                // Share modes and oplocks are settled before the file is touched.
                (fileState, grantedOplock) = try await acquire(handle, &request, reply: reply, openID: openID, access: access, share: shareAccess,
                                                               oplock: requestedOplock, lease: leaseRequest, overwrites: overwrites,
                                                               isDirectory: isDirectory)
                if overwrite {
                    do {
                        attributes = try await vfs.setattr(handle, SetAttributes(size: 0), credentials: credentials).after
                    } catch {
                        Self.release(fileState)
                        throw NTStatus(error)
                    }
                    action = disposition == .supersede ? CreateAction.superseded : CreateAction.overwritten
                }
            } else {
                if disposition == .open || disposition == .overwrite { throw .objectNameNotFound }
                let directoryWanted = options & CreateOption.directory != 0
                do {
                    let created = try await vfs.create(in: directory, name: leaf, kind: directoryWanted ? .directory : .regular, mode: .guarded,
                                                       attributes: SetAttributes(mode: directoryWanted ? 0o755 : 0o644), credentials: credentials)
                    handle = created.handle
                    attributes = created.attributes
                    action = CreateAction.created
                } catch {
                    // Someone else created it between the lookup and here: open theirs when
                    // the disposition allows it.
                    guard error == .exists, disposition == .openIf || disposition == .overwriteIf || disposition == .supersede,
                          let (existing, existingAttributes) = try? await vfs.lookup(directory, name: leaf, mask: SMBFileInfo.mask, credentials: credentials)
                    else { throw NTStatus(error) }
                    handle = existing
                    attributes = existingAttributes
                    if directoryWanted && attributes.type != .directory { throw .notADirectory }
                    if options & CreateOption.nonDirectory != 0 && attributes.type == .directory { throw .fileIsADirectory }
                    action = CreateAction.opened
                }
                if !attributes.valid.contains(.mtime) { attributes = try await getattr(handle) }
                (fileState, grantedOplock) = try await acquire(handle, &request, reply: reply, openID: openID, access: access, share: shareAccess,
                                                               oplock: requestedOplock, lease: leaseRequest, overwrites: false,
                                                               isDirectory: attributes.type == .directory)
            }
        }
        let isDirectory = attributes.type == .directory
        let open = SMBOpen(id: openID, sessionID: session.id, treeID: tree.id, handle: handle, parent: parent,
                           name: parts.last ?? "", path: parts.joined(separator: "\\"), isDirectory: isDirectory, access: access)
        open.fileState = fileState
        if grantedOplock == OplockLevel.lease {
            open.lease = leaseRequest
            open.ownLockOwner = server.newStateOwner()
        }
        open.writeThrough = options & CreateOption.writeThrough != 0
        if deleteOnClose {
            if isDirectory, try await !directoryIsEmpty(handle, credentials: credentials) {
                Self.release(fileState)
                throw .directoryNotEmpty
            }
            open.deleteOnClose = true
        }
        opens[open.id] = open
        opened = true
        request.producedFileID = open.id
        if action == CreateAction.created {
            postChange(in: parent, .added, name: open.name, isDirectory: isDirectory)
        } else if action == CreateAction.overwritten || action == CreateAction.superseded {
            postChange(in: parent, .modified, name: open.name, isDirectory: false, filter: NotifyFilter.size | NotifyFilter.lastWrite)
        }

        let maximal = tree.readOnly ? Self.readAccess : Self.fullAccess
        let wantMxAc = contexts["MxAc"] != nil
        let wantQFid = contexts["QFid"] != nil
        let lease = open.lease.flatMap { request in
            fileState.map { file in (request, file.state.lease(of: file.owner), server.leaseEpoch(file.owner)) }
        }
        let finalAttributes = attributes
        let volume = UInt64(handle.mountID)
        respond(request, reply: reply, bodyCapacity: 88 + 32 + 48 + 80) { writer in
            writer.u16(89)
            writer.u8(grantedOplock)
            writer.u8(0)
            writer.u32(action)
            SMBFileInfo.networkOpen(&writer, finalAttributes)
            writer.u32(0)
            writer.u64(open.id)
            writer.u64(open.id)
            let contextsAt = writer.offset
            writer.u32(0)
            writer.u32(0)
            guard wantMxAc || wantQFid || lease != nil else { return }
            writer.align(8)
            let start = writer.offset
            var previous = -1
            if wantMxAc {
                previous = writer.offset
                Self.context(&writer, name: "MxAc", dataLength: 8)
                writer.u32(0)
                writer.u32(maximal)
            }
            if wantQFid {
                writer.align(8)
                if previous >= 0 { writer.patch32(UInt32(writer.offset - previous), at: previous) }
                previous = writer.offset
                Self.context(&writer, name: "QFid", dataLength: 32)
                writer.u64(finalAttributes.fileid)
                writer.u64(volume)
                writer.zeros(16)
            }
            if case let (leaseRequest, held, (epoch, version))? = lease {
                writer.align(8)
                if previous >= 0 { writer.patch32(UInt32(writer.offset - previous), at: previous) }
                previous = writer.offset
                Self.context(&writer, name: "RqLs", dataLength: version == 2 ? 52 : 32)
                Self.leaseResponse(&writer, leaseRequest, version: version, granted: held?.state ?? [], breaking: held?.breakingTo != nil,
                                   epoch: epoch)
            }
            writer.patch32(UInt32(start), at: contextsAt)
            writer.patch32(UInt32(writer.offset - start), at: contextsAt + 4)
        }
    }

    /// Gives up the file state of an open that failed after it was acquired.
    static func release(_ file: OpenFile?) {
        guard let file else { return }
        file.releaseLease()
        file.close()
    }

    /// A create context header with a four-letter name; the data follows.
    private static func context(_ writer: inout SMBWriter, name: String, dataLength: Int) {
        writer.u32(0)      // next
        writer.u16(16)     // name offset
        writer.u16(4)
        writer.u16(0)
        writer.u16(24)     // data offset
        writer.u32(UInt32(dataLength))
        for byte in name.utf8 { writer.u8(byte) }
        writer.u32(0)      // pad to 8
    }

    /// The create contexts a request carries, by name (their data is not needed yet).
    static func createContexts(_ reader: SMBReader, offset: Int, length: Int) throws(NTStatus) -> [String: Int] {
        _ = try reader.slice(at: offset, count: length)
        var found: [String: Int] = [:]
        var position = offset
        for _ in 0..<64 {
            let next = Int(try reader.u32(at: position))
            let nameOffset = Int(try reader.u16(at: position + 4))
            let nameLength = Int(try reader.u16(at: position + 6))
            let dataOffset = Int(try reader.u16(at: position + 10))
            let dataLength = Int(try reader.u32(at: position + 12))
            let name = try reader.slice(at: position + nameOffset, count: nameLength)
            guard position + nameOffset + nameLength <= offset + length else { throw .invalidParameter }
            if dataLength > 0 {
                _ = try reader.slice(at: position + dataOffset, count: dataLength)
                guard position + dataOffset + dataLength <= offset + length else { throw .invalidParameter }
            }
            if nameLength == 4 { found[String(decoding: name, as: UTF8.self)] = position }
            if next == 0 { return found }
            guard next % 8 == 0, next >= 16, position + next < offset + length else { throw .invalidParameter }
            position += next
        }
        throw .invalidParameter
    }

    func getattr(_ handle: FileHandle) async throws(NTStatus) -> Attributes {
        do {
            return try await vfs.getattr(handle, mask: SMBFileInfo.mask)
        } catch {
            throw NTStatus(error)
        }
    }

    /// Refuses an open whose wanted access the object's mode (or the share) does not allow.
    private func checkAccess(_ handle: FileHandle, attributes: Attributes, wanted: UInt32, maximum: Bool, readOnly: Bool,
                             credentials: Credentials) async throws(NTStatus) {
        if maximum { return }
        var needed: AccessMask = []
        if wanted & (SMBAccess.readData | SMBAccess.execute) != 0 && attributes.type != .directory { needed.insert(.read) }
        if wanted & (SMBAccess.writeData | SMBAccess.appendData) != 0 && attributes.type != .directory { needed.insert(.write) }
        guard !needed.isEmpty else { return }
        let granted: AccessMask
        do {
            granted = try await vfs.access(handle, wanted: needed, credentials: credentials)
        } catch {
            throw NTStatus(error)
        }
        if granted != needed { throw .accessDenied }
    }

    func directoryIsEmpty(_ handle: FileHandle, credentials: Credentials) async throws(NTStatus) -> Bool {
        do {
            let listing = try await vfs.readdir(handle, maxEntries: 1, credentials: credentials)
            return listing.entries.isEmpty
        } catch {
            throw NTStatus(error)
        }
    }
}
