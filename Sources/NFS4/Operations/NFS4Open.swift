import NFS3
import ONCRPC
import Runtime
import VFS

extension NFS4Compound {
    /// The client an operation acts for: 4.0 names it, 4.1 takes it from the session.
    func actingClient(_ named: UInt64) throws(NFS4Error) -> UInt64 {
        if minor >= 1 {
            guard let session else { throw .status(.opNotInSession) }
            return session.clientid
        }
        return named
    }

    static func shareMode(_ bits: UInt32) -> ShareMode {
        var mode: ShareMode = []
        if bits & 1 != 0 { mode.insert(.read) }
        if bits & 2 != 0 { mode.insert(.write) }
        return mode
    }

    static func changeInfo(_ w: inout XDRWriter, _ change: DirectoryChange?) {
        w.bool(false)
        w.uint64(change.map { Self.changeValue($0.before) } ?? 0)
        w.uint64(change.map { Self.changeValue($0.after) } ?? 0)
    }

    static func changeValue(_ a: Attributes) -> UInt64 {
        a.valid.contains(.change) && a.change != 0 ? a.change
            : UInt64(bitPattern: a.ctime.seconds) &* 1_000_000_000 &+ UInt64(a.ctime.nanoseconds)
    }

    /// OPEN (RFC 7530 §16.16, RFC 8881 §18.16): CLAIM_NULL (with UNCHECKED, GUARDED,
    /// EXCLUSIVE and EXCLUSIVE4_1 creates) and CLAIM_FH; share reservations go through the
    /// VFS's shared table, so SMB opens and NFSv4 opens deny each other.
    func open() async throws(NFS4Error) {
        let seqid = try uint32()
        let accessBits = try uint32()
        let denyBits = try uint32()
        let namedClient = try uint64()
        let ownerBytes = Array(try opaque(maximum: 1024))
        let create = try uint32() == 1
        var createMode = CreateMode.unchecked
        var createAttributes = SetAttributes()
        var attrset = Bitmap4()
        if create {
            switch try uint32() {
            case 0: (createAttributes, attrset) = try NFS4Attributes.decodeSettable(&args, minor: minor, identities: program.identities)
            case 1:
                (createAttributes, attrset) = try NFS4Attributes.decodeSettable(&args, minor: minor, identities: program.identities)
                createMode = .guarded
            case 2:
                createMode = .exclusive(verifier: try fixed(8).loadUnaligned(as: UInt64.self))
            case 3 where minor >= 1:
                createMode = .exclusive(verifier: try fixed(8).loadUnaligned(as: UInt64.self))
                (createAttributes, attrset) = try NFS4Attributes.decodeSettable(&args, minor: minor, identities: program.identities)
            default: throw .status(.inval)
            }
        }
        let claim = try uint32()
        var name: String?
        switch claim {
        case 0: name = try component()
        case 1:
            // CLAIM_PREVIOUS: a reclaim of an open held before the restart, on the current
            // filehandle. No state survives a restart here, so any reclaim in grace is granted.
            _ = try uint32()
            guard state.inGrace else { throw .status(.noGrace) }
        case 4 where minor >= 1: break
        case 2, 3, 5, 6: throw .status(.notsupp)
        default: throw .status(.inval)
        }
        let access = Self.shareMode(accessBits & 0xFF)
        let deny = Self.shareMode(denyBits)
        guard accessBits & 0xFF != 0, accessBits & 0xFF <= 3, denyBits <= 3 else { throw .status(.inval) }
        let clientid = try actingClient(namedClient)
        if claim != 1 && state.inGrace { throw .status(.grace) }

        // The owner (and, in 4.0, its seqid) first: a bad seqid changes nothing.
        let (owner, client) = try state.withTables { t throws(NFS4Error) -> (NFS4Owner, NFS4Client) in
            let client = try state.client(&t, clientid)
            guard client.confirmed else { throw .status(.staleClientid) }
            // Too many opens: 4.0 has RESOURCE for it; 4.1 dropped RESOURCE, and DELAY is what
            // a server short of state answers there (the client retries once it has closed some).
            guard client.openCount < program.maxOpensPerClient else { throw .status(minor == 0 ? .resource : .delay) }
            let owner = state.owner(&t, clientid: clientid, bytes: ownerBytes, lock: false)
            try checkSeqid(owner, seqid)
            return (owner, client)
        }

        // The file.
        let export: NFSExport
        let file: FileHandle
        var change: DirectoryChange?
        var created = false
        if let name {
            guard case let .file(e, directory) = try requireCurrent() else { throw .status(create ? .rofs : .noent) }
            guard e.admits(peer) else { throw .status(.access) }
            export = e
            let credentials = credentials(export)
            if create {
                guard !export.readOnly else { throw .status(.rofs) }
                let result: CreateResult
                do {
                    result = try await vfs.create(in: directory, name: name, kind: .regular, mode: createMode, attributes: createAttributes, credentials: credentials)
                } catch {
                    throw NFS4Error(error)
                }
                if !result.created, case .guarded = createMode { throw .status(.exist) }
                if !result.created, case .exclusive = createMode {
                    // A retry finds its own file; another verifier's file is someone else's.
                    // (The VFS refuses a different verifier with `exists`.)
                }
                if !result.created && result.attributes.type == .directory { throw .status(.isdir) }
                if !result.created, let size = createAttributes.size {
                    do { _ = try await vfs.setattr(result.handle, SetAttributes(size: size), credentials: credentials) } catch { throw NFS4Error(error) }
                }
                file = result.handle
                change = result.directory
                created = result.created
                if !created { attrset = Bitmap4() }
            } else {
                do { file = try await vfs.lookup(directory, name: name, mask: [], credentials: credentials).0 } catch { throw NFS4Error(error) }
            }
        } else {
            (export, file) = try currentFile()
        }
        let credentials = credentials(export)
        let attributes: Attributes
        do { attributes = try await vfs.getattr(file, mask: [.type, .mode, .uid, .gid]) } catch { throw NFS4Error(error) }
        switch attributes.type {
        case .regular: break
        case .directory: throw .status(.isdir)
        case .symlink: throw .status(.symlink)
        default: throw .status(minor >= 1 ? .wrongType : .inval)
        }
        if access.contains(.write) && export.readOnly { throw .status(.rofs) }
        if !created {
            var wanted: AccessMask = []
            if access.contains(.read) { wanted.insert(.read) }
            if access.contains(.write) { wanted.insert(.write) }
            let granted: AccessMask
            do { granted = try await vfs.access(file, wanted: wanted, credentials: credentials) } catch { throw NFS4Error(error) }
            if granted != wanted { throw .status(.access) }
        }

        // An open by the same owner of the same file is upgraded: one stateid, both modes.
        let existing = state.tables.withLock { t in
            t.opens[NFS4State.OpenKey(owner: owner.id, file: file)]
        }
        var wantAccess = access, wantDeny = deny
        if let existing {
            wantAccess.formUnion(existing.openFile.access)
            wantDeny.formUnion(existing.openFile.deny)
            existing.openFile.close()
        }
        let outcome = vfs.fileStates.open(file, owner: owner.stateOwner, access: wantAccess, deny: wantDeny)
        guard case let .opened(openFile) = outcome else {
            // The owner keeps the open it had (breaking nobody's lease again).
            if let existing, case let .opened(back) = vfs.fileStates.open(file, owner: owner.stateOwner, access: existing.openFile.access,
                                                                          deny: existing.openFile.deny, breaking: []) {
                state.tables.withLock { _ in state.mutate(existing) { existing.openFile = back } }
            }
            // A pending SMB delete refuses opens like a deny mode would.
            if case .waitForLeaseBreak = outcome { throw .status(.delay) }
            throw .status(.shareDenied)
        }
        let (stateid, confirm) = state.tables.withLock { t -> (Stateid, Bool) in
            let entry: NFS4StateEntry
            if let existing, t.states[existing.id] != nil {
                state.mutate(existing) {
                    existing.openFile = openFile
                    existing.seqid &+= 1
                }
                for lock in state.locks(t, of: existing) { state.mutate(lock) { lock.openFile = openFile } }
                entry = existing
            } else {
                entry = state.newEntry(&t, kind: .open, client: client, file: file, exportID: export.id, openFile: openFile, owner: owner, openID: 0)
            }
            return (state.stateid(entry), minor == 0 && !owner.confirmed)
        }
        current = .file(export, file)
        currentStateid = stateid
        out.uint32(NFS4Status.ok.rawValue)
        stateid.encode(&out)
        Self.changeInfo(&out, change)
        out.uint32((confirm ? 2 : 0) | 4)  // OPEN4_RESULT_CONFIRM, OPEN4_RESULT_LOCKTYPE_POSIX
        attrset.encode(&out)
        out.uint32(0)  // OPEN_DELEGATE_NONE
    }

    /// OPEN_CONFIRM (4.0): the first open of a new open-owner is confirmed.
    func openConfirm() throws(NFS4Error) {
        let stateid = try self.stateid()
        let seqid = try uint32()
        let (_, file) = try currentFile()
        let result = try state.withTables { t throws(NFS4Error) -> Stateid in
            let entry = try state.entry(&t, stateid, file: file, minor: minor)
            guard entry.kind == .open else { throw .status(.badStateid) }
            try checkSeqid(entry.owner, seqid)
            entry.owner.confirmed = true
            state.mutate(entry) { entry.seqid &+= 1 }
            return state.stateid(entry)
        }
        out.uint32(NFS4Status.ok.rawValue)
        result.encode(&out)
    }

    /// OPEN_DOWNGRADE: fewer access or deny bits on an open.
    func openDowngrade() throws(NFS4Error) {
        let stateid = try self.stateid()
        let seqid = try uint32()
        let accessBits = try uint32() & 0xFF
        let denyBits = try uint32()
        let (_, file) = try currentFile()
        let access = Self.shareMode(accessBits), deny = Self.shareMode(denyBits)
        let entry = try state.withTables { t throws(NFS4Error) -> NFS4StateEntry in
            let entry = try state.entry(&t, stateid, file: file, minor: minor)
            guard entry.kind == .open else { throw .status(.badStateid) }
            try checkSeqid(entry.owner, seqid)
            return entry
        }
        guard !access.isEmpty, access.isSubset(of: entry.openFile.access), deny.isSubset(of: entry.openFile.deny) else { throw .status(.inval) }
        entry.openFile.close()
        guard case let .opened(openFile) = vfs.fileStates.open(file, owner: entry.owner.stateOwner, access: access, deny: deny) else {
            throw .status(.serverfault)
        }
        let result = state.tables.withLock { t -> Stateid in
            state.mutate(entry) {
                entry.openFile = openFile
                entry.seqid &+= 1
            }
            for lock in state.locks(t, of: entry) { state.mutate(lock) { lock.openFile = openFile } }
            return state.stateid(entry)
        }
        currentStateid = result
        out.uint32(NFS4Status.ok.rawValue)
        result.encode(&out)
    }

    /// CLOSE: ends the open and its lock stateids; refused while locks are held through it.
    func close() async throws(NFS4Error) {
        let seqid = try uint32()
        let stateid = try self.stateid()
        let (_, file) = try currentFile()
        let entry = try state.withTables { t throws(NFS4Error) -> NFS4StateEntry in
            if minor == 0, stateid.boot == state.boot, t.states[stateid.id] == nil, let owner = t.closed[stateid.id] {
                // A retransmitted CLOSE: the owner's last reply, if this was its last seqid.
                if owner.started && seqid == owner.seqid && owner.lastReply != nil {
                    replayOwner = owner
                    throw .written(.ok)
                }
                throw .status(.badStateid)
            }
            let entry = try state.entry(&t, stateid, file: file, minor: minor)
            guard entry.kind == .open else { throw .status(.badStateid) }
            try checkSeqid(entry.owner, seqid)
            if entry.openFile.holdsLocks { throw .status(.locksHeld) }
            state.removeEntry(&t, entry)
            if minor == 0 {
                if t.closed.count >= 4096 { t.closed.removeAll() }
                t.closed[entry.id] = entry.owner
            }
            return entry
        }
        entry.openFile.close()
        out.uint32(NFS4Status.ok.rawValue)
        Stateid(seqid: entry.seqid &+ 1, boot: state.boot, id: entry.id).encode(&out)
    }

    /// DELEGRETURN: no delegations are handed out, so no stateid names one.
    func delegreturn() async throws(NFS4Error) {
        _ = try self.stateid()
        _ = try requireCurrent()
        throw .status(.badStateid)
    }
}
