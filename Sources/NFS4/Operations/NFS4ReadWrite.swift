import NFS3
import ONCRPC
import VFS

extension NFS4Compound {
    /// Checks the stateid of a READ, WRITE, SETATTR(size) or 4.2 operation on `file`:
    /// the anonymous and bypass stateids stand for no open; others must be this file's open
    /// or lock state, with the access the operation needs. Returns the VFS open (nil when
    /// anonymous) and the lock owner to check byte-range locks with.
    func ioState(_ stateid: Stateid, file: FileHandle, write: Bool) throws(NFS4Error) -> (OpenFile?, StateOwner?) {
        if stateid.isAnonymous || stateid.isBypass {
            // No open: the I/O still respects other opens' deny modes (the bypass stateid
            // skips a deny-read, as RFC 7530 §9.1.4.3 allows).
            let denied: ShareMode = write ? .write : (stateid.isBypass ? [] : .read)
            if !denied.isEmpty, let fileState = vfs.fileStates.state(of: file), fileState.opens.contains(where: { !$0.deny.isDisjoint(with: denied) }) {
                throw .status(.locked)
            }
            return (nil, nil)
        }
        let (open, kind, owner) = try state.ioEntry(stateid, file: file, minor: minor)
        if write && !open.access.contains(.write) { throw .status(.openmode) }
        if !write && open.access.isEmpty { throw .status(.openmode) }
        return (open, kind == .lock ? owner : nil)
    }

    /// Byte-range locks of other owners that `range` would cross: through the open the
    /// request holds, or the file's table for I/O without an open (anonymous stateid).
    func checkLocks(_ range: ByteRange, write: Bool, open: OpenFile?, lockOwner: StateOwner?, file: FileHandle) throws(NFS4Error) {
        if let open {
            if open.conflictingLock(range, write: write, lockOwner: lockOwner) != nil { throw .status(.locked) }
        } else if let fileState = vfs.fileStates.state(of: file),
                  fileState.conflictingLock(range, write: write, owner: StateOwner(client: 0, owner: 0)) != nil {
            throw .status(.locked)
        }
    }

    /// The data of `file` is about to change (WRITE, SETATTR of the size): other holders' read
    /// caching goes (SMB level II oplocks and leases; their write caching went at OPEN). An
    /// open's holders are told and the change goes ahead; without an open (anonymous stateid)
    /// the change waits for the holders' answers, as an NFSv3 WRITE does.
    func breakReadCaching(_ open: OpenFile?, file: FileHandle) async {
        if let open {
            open.state.breakReadCaching(by: open.owner)
        } else {
            await vfs.fileStates.recallLeases(file)
        }
    }

    /// I/O is for regular files: NFS4ERR_ISDIR for a directory, NFS4ERR_INVAL for anything else.
    func requireRegularFile(_ file: FileHandle) async throws {
        let type = try await vfs.getattr(file, mask: [.type]).type
        if type == .directory { throw NFS4Error.status(.isdir) }
        if type != .regular { throw NFS4Error.status(.inval) }
    }

    /// READ: the data goes out by reference when READ is the compound's last operation
    /// (the usual case), copied into the reply otherwise.
    func read() async throws(NFS4Error) {
        let stateid = try self.stateid()
        let offset = try uint64()
        var count = Int(min(try uint32(), UInt32(NFS4Attributes.maxTransfer)))
        if let session {
            // What the reply may still hold within the session's maximum response size.
            let room = Int(session.maxResponseSize) - out.count - 256
            guard room > 0 else { throw .status(.repTooBig) }
            count = min(count, room)
        }
        let (export, file) = try currentFile(pseudo: .isdir)
        let (open, lockOwner) = try ioState(stateid, file: file, write: false)
        let range = ByteRange(offset: offset, length: UInt64(count))
        try checkLocks(range, write: false, open: open, lockOwner: lockOwner, file: file)
        let result: ReadResult
        do {
            try await requireRegularFile(file)
            result = try await vfs.read(file, offset: offset, count: count, credentials: credentials(export))
        } catch let error as NFS4Error {
            throw error
        } catch let error as VFSError {
            throw NFS4Error(error == .accessDenied && open != nil ? .io : error)
        } catch {
            throw .status(.serverfault)
        }
        out.uint32(NFS4Status.ok.rawValue)
        out.bool(result.eof)
        if index == operationCount - 1 {
            out.uint32(UInt32(result.count))
            pendingData = (result.segments, result.count)
        } else {
            out.uint32(UInt32(result.count))
            var raw: [UInt8] = []
            raw.reserveCapacity(result.count)
            for segment in result.segments { raw.append(contentsOf: segment.bytes) }
            out.fixedOpaque(raw)
        }
    }

    /// WRITE: the data is used where it was received.
    func write() async throws(NFS4Error) {
        let stateid = try self.stateid()
        let offset = try uint64()
        let stableBits = try uint32()
        let data = try opaque(maximum: Int(NFS4Attributes.maxTransfer))
        guard let stability = WriteStability(rawValue: Int(stableBits)) else { throw .status(.badxdr) }
        let (export, file) = try currentFile(pseudo: .isdir)
        guard !export.readOnly else { throw .status(.rofs) }
        let (open, lockOwner) = try ioState(stateid, file: file, write: true)
        let range = ByteRange(offset: offset, length: UInt64(data.count))
        try checkLocks(range, write: true, open: open, lockOwner: lockOwner, file: file)
        await breakReadCaching(open, file: file)
        let result: WriteResult
        do {
            try await requireRegularFile(file)
            result = try await vfs.write(file, offset: offset, data: data, stability: stability, credentials: credentials(export))
        } catch let error as NFS4Error {
            throw error
        } catch let error as VFSError {
            throw NFS4Error(error)
        } catch {
            throw .status(.serverfault)
        }
        out.uint32(NFS4Status.ok.rawValue)
        out.uint32(UInt32(result.count))
        out.uint32(UInt32(result.stability.rawValue))
        withUnsafeBytes(of: program.writeVerifier) { out.fixedOpaque($0) }
    }

    func commit() async throws(NFS4Error) {
        let offset = try uint64()
        let count = UInt64(try uint32())
        let (_, file) = try currentFile(pseudo: .isdir)
        do {
            try await requireRegularFile(file)
            _ = try await vfs.commit(file, offset: offset, count: count)
        } catch let error as NFS4Error {
            throw error
        } catch let error as VFSError {
            throw NFS4Error(error)
        } catch {
            throw .status(.serverfault)
        }
        out.uint32(NFS4Status.ok.rawValue)
        withUnsafeBytes(of: program.writeVerifier) { out.fixedOpaque($0) }
    }

    /// ALLOCATE / DEALLOCATE (4.2).
    func allocate(deallocate: Bool) async throws(NFS4Error) {
        let stateid = try self.stateid()
        let offset = try uint64()
        let length = try uint64()
        let (export, file) = try currentFile(pseudo: .isdir)
        guard !export.readOnly else { throw .status(.rofs) }
        _ = try ioState(stateid, file: file, write: true)
        do {
            if deallocate {
                try await vfs.deallocate(file, offset: offset, length: length, credentials: credentials(export))
            } else {
                try await vfs.allocate(file, offset: offset, length: length, credentials: credentials(export))
            }
        } catch {
            throw NFS4Error(error)
        }
        out.uint32(NFS4Status.ok.rawValue)
    }

    /// SEEK (4.2): the next data or hole at or after an offset.
    func seek() async throws(NFS4Error) {
        let stateid = try self.stateid()
        let offset = try uint64()
        let what = try uint32()
        guard what <= 1 else { throw .status(.inval) }
        let (_, file) = try currentFile(pseudo: .isdir)
        _ = try ioState(stateid, file: file, write: false)
        let result: (offset: UInt64, eof: Bool)
        do { result = try await vfs.seek(file, offset: offset, target: what == 0 ? .data : .hole) } catch { throw NFS4Error(error) }
        out.uint32(NFS4Status.ok.rawValue)
        out.bool(result.eof)
        out.uint64(result.offset)
    }
}
