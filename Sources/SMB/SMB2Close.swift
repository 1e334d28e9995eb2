import VFS

/// Opens handed to a background task on the same loop.
struct OpenList: @unchecked Sendable {
    let opens: [SMBOpen]
}

/// CLOSE and FLUSH (MS-SMB2 §3.3.5.10, §3.3.5.11). Closing an open marked delete-on-close
/// removes its name; FLUSH makes written data durable (a COMMIT through the VFS).
extension SMBConnection {
    func close(_ request: inout SMB2Request, reply: SMBReply) async throws(NTStatus) {
        let reader = request.reader
        guard try reader.u16(at: 64) == 24 else { throw .invalidParameter }
        let flags = try reader.u16(at: 66)
        let open = try open(request, at: 72)
        let deleted = try await closeOpen(open, credentials: request.session?.credentials)
        var attributes: Attributes?
        if flags & 0x1 != 0 && open.pipe == nil && !deleted {
            attributes = try? await vfs.getattr(open.handle, mask: SMBFileInfo.mask)
        }
        respond(request, reply: reply, bodyCapacity: 60) { writer in
            writer.u16(60)
            writer.u16(attributes == nil ? 0 : 1)
            writer.u32(0)
            if let attributes {
                SMBFileInfo.networkOpen(&writer, attributes)
            } else {
                writer.zeros(52)
            }
        }
    }

    /// Ends an open: leaves the VFS's file state (releasing its locks and oplock, waking whoever
    /// waited on them) and, when it was the file's last open and delete is pending, removes
    /// the name. Returns whether it removed it. CLOSE, LOGOFF, TREE_DISCONNECT and a dropped connection all end here.
    @discardableResult
    func closeOpen(_ open: SMBOpen, credentials: Credentials?) async throws(NTStatus) -> Bool {
        if open.notifyWatching {
            server.notify.unwatch(open.handle, connection: self, openID: open.id)
            open.notifyWatching = false
        }
        if let asyncID = open.pendingNotify { finishNotify(asyncID: asyncID, status: .notifyCleanup) }
        if opens[open.id] === open { sessions[open.sessionID]?.openCount -= 1 }
        opens[open.id] = nil
        guard let file = open.fileState else { return false }
        open.fileState = nil
        if open.deleteOnClose { file.state.deletePending = true }
        // A lease lives while an open of its key does; an oplock is the open's own.
        if open.lease == nil { file.releaseLease() }
        let deleteNow = file.close()
        if open.lease != nil, !file.state.opens.contains(where: { $0.owner == file.owner }) {
            file.releaseLease()
            server.forgetLease(file.owner)
        }
        guard deleteNow, let parent = open.parent else { return false }
        let who = credentials ?? sessions[open.sessionID]?.credentials ?? Credentials(uid: 65534, gid: 65534)
        do {
            if open.isDirectory {
                _ = try await vfs.rmdir(in: parent, name: open.name, credentials: who)
            } else {
                _ = try await vfs.remove(in: parent, name: open.name, credentials: who)
            }
        } catch {
            // The handle is closed either way; a name that went away meanwhile is no error.
            if error != .notFound { throw NTStatus(error) }
            return true
        }
        postChange(in: parent, .removed, name: open.name, isDirectory: open.isDirectory)
        return true
    }

    /// Ends every open matching `filter` (logoff, tree disconnect, connection loss), in the
    /// background: nothing waits for the deletions.
    func closeOpens(where filter: (SMBOpen) -> Bool) {
        // Oldest first, each still usable until its turn: a LOCK pending on a later handle
        // may be granted when an earlier one's locks go (smbtorture's lock cancel-tdis).
        let doomed = opens.values.filter(filter).sorted { $0.id < $1.id }
        guard !doomed.isEmpty else { return }
        let list = OpenList(opens: doomed)
        Task(executorPreference: connection.loop) {
            for open in list.opens {
                _ = try? await self.closeOpen(open, credentials: nil)
            }
        }
    }

    func flush(_ request: inout SMB2Request, reply: SMBReply) async throws(NTStatus) {
        guard try request.reader.u16(at: 64) == 24 else { throw .invalidParameter }
        let open = try open(request, at: 72)
        if open.pipe == nil && !open.isDirectory {
            do {
                _ = try await vfs.commit(open.handle)
            } catch {
                throw NTStatus(error)
            }
        }
        respond(request, reply: reply, bodyCapacity: 4) { writer in
            writer.u16(4)
            writer.u16(0)
        }
    }
}
