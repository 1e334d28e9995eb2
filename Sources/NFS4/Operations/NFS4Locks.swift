import NFS3
import ONCRPC
import VFS

extension NFS4Compound {
    static func lockRange(_ offset: UInt64, _ length: UInt64) throws(NFS4Error) -> ByteRange {
        guard length != 0 else { throw .status(.inval) }
        if length != .max {
            let (_, overflow) = offset.addingReportingOverflow(length)
            if overflow { throw .status(.inval) }
        }
        return ByteRange(offset: offset, length: length)
    }

    /// LOCK4denied: the conflicting lock and its owner.
    func writeDenied(_ lock: ByteRangeLock) {
        out.uint32(NFS4Status.denied.rawValue)
        out.uint64(lock.range.start)
        out.uint64(lock.range.end == .max ? .max : lock.range.end - lock.range.start)
        out.uint32(lock.kind == .exclusive ? 2 : 1)
        let (clientid, bytes) = state.tables.withLock { t in state.ownerBytes(t, lock.owner) }
        out.uint64(clientid)
        out.opaque(bytes)
    }

    /// LOCK (RFC 7530 §16.10): through the VFS's shared table, so SMB byte-range locks and
    /// NFSv4 ones conflict. Blocking variants are answered like the others (the client polls).
    func lock() async throws(NFS4Error) {
        let type = try uint32()
        guard (1...4).contains(type) else { throw .status(.inval) }
        let kind: LockKind = type % 2 == 1 ? .shared : .exclusive
        let reclaim = try bool()
        let offset = try uint64()
        let length = try uint64()
        let newOwner = try bool()
        var openStateid = Stateid(seqid: 0, boot: 0, id: 0), lockStateid = Stateid(seqid: 0, boot: 0, id: 0)
        var openSeqid: UInt32 = 0, lockSeqid: UInt32 = 0
        var ownerClient: UInt64 = 0
        var ownerBytes: [UInt8] = []
        if newOwner {
            openSeqid = try uint32()
            openStateid = try self.stateid()
            lockSeqid = try uint32()
            ownerClient = try uint64()
            ownerBytes = Array(try opaque(maximum: 1024))
        } else {
            lockStateid = try self.stateid()
            lockSeqid = try uint32()
        }
        if reclaim && !state.inGrace { throw .status(.noGrace) }
        if !reclaim && state.inGrace { throw .status(.grace) }
        let range = try Self.lockRange(offset, length)
        let (_, file) = try currentFile(pseudo: .isdir)
        let entry = try state.withTables { t throws(NFS4Error) -> NFS4StateEntry in
            if newOwner {
                let open = try state.entry(&t, openStateid, file: file, minor: minor)
                guard open.kind == .open else { throw .status(.badStateid) }
                try checkSeqid(open.owner, openSeqid)
                let clientid = minor >= 1 ? open.clientid : ownerClient
                guard clientid == open.clientid else { throw .status(.inval) }
                let owner = state.owner(&t, clientid: clientid, bytes: ownerBytes, lock: true)
                try checkSeqid(owner, lockSeqid)
                if let existing = state.locks(t, of: open).first(where: { $0.owner === owner }) {
                    return existing
                }
                return state.newEntry(&t, kind: .lock, client: open.client, file: file, exportID: open.exportID, openFile: open.openFile, owner: owner, openID: open.id)
            }
            let entry = try state.entry(&t, lockStateid, file: file, minor: minor)
            guard entry.kind == .lock else { throw .status(.badStateid) }
            try checkSeqid(entry.owner, lockSeqid)
            return entry
        }
        let outcome: LockOutcome
        do { outcome = try entry.openFile.lock(kind, range, lockOwner: entry.owner.stateOwner) } catch { throw .status(.openmode) }
        switch outcome {
        case let .denied(conflict):
            writeDenied(conflict)
            throw .written(.denied)
        case .granted:
            let stateid = state.tables.withLock { _ -> Stateid in
                state.mutate(entry) { entry.seqid &+= 1 }
                return state.stateid(entry)
            }
            currentStateid = stateid
            out.uint32(NFS4Status.ok.rawValue)
            stateid.encode(&out)
        }
    }

    /// LOCKT: would this lock be granted? Nothing changes.
    func lockt() async throws(NFS4Error) {
        let type = try uint32()
        guard (1...4).contains(type) else { throw .status(.inval) }
        let kind: LockKind = type % 2 == 1 ? .shared : .exclusive
        let offset = try uint64()
        let length = try uint64()
        let namedClient = try uint64()
        let ownerBytes = Array(try opaque(maximum: 1024))
        let range = try Self.lockRange(offset, length)
        let (_, file) = try currentFile(pseudo: .isdir)
        let clientid = try actingClient(namedClient)
        let tester = try state.withTables { t throws(NFS4Error) -> StateOwner in
            _ = try state.client(&t, clientid)
            let key = NFS4State.OwnerKey(clientid: clientid, lock: true, bytes: ownerBytes)
            return t.owners[key]?.stateOwner ?? StateOwner(client: clientid, owner: 0)
        }
        if let conflict = vfs.fileStates.state(of: file)?.testLock(kind, range, owner: tester) {
            writeDenied(conflict)
            throw .written(.denied)
        }
        out.uint32(NFS4Status.ok.rawValue)
    }

    func locku() async throws(NFS4Error) {
        let type = try uint32()
        guard (1...4).contains(type) else { throw .status(.inval) }
        let seqid = try uint32()
        let lockStateid = try self.stateid()
        let offset = try uint64()
        let length = try uint64()
        let range = try Self.lockRange(offset, length)
        let (_, file) = try currentFile(pseudo: .isdir)
        let entry = try state.withTables { t throws(NFS4Error) -> NFS4StateEntry in
            let entry = try state.entry(&t, lockStateid, file: file, minor: minor)
            guard entry.kind == .lock else { throw .status(.badStateid) }
            try checkSeqid(entry.owner, seqid)
            return entry
        }
        entry.openFile.unlock(range, lockOwner: entry.owner.stateOwner)
        let stateid = state.tables.withLock { _ -> Stateid in
            state.mutate(entry) { entry.seqid &+= 1 }
            return state.stateid(entry)
        }
        currentStateid = stateid
        out.uint32(NFS4Status.ok.rawValue)
        stateid.encode(&out)
    }
}
