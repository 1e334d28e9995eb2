import VFS

/// TREE_CONNECT and TREE_DISCONNECT (MS-SMB2 §3.3.5.7, §3.3.5.8): the configured shares
/// and IPC$. Anonymous sessions reach only guest shares and IPC$.
extension SMBConnection {
    enum ShareFlag {
        static let encryptData: UInt32 = 0x8000
        static let noCaching: UInt32 = 0x0030
    }

    /// Access masks reported as MaximalAccess.
    static let fullAccess: UInt32 = 0x001F_01FF
    static let readAccess: UInt32 = 0x0012_0089

    func treeConnect(_ request: inout SMB2Request, reply: SMBReply) async throws(NTStatus) {
        let reader = request.reader
        guard try reader.u16(at: 64) == 9, let session = request.session else { throw .invalidParameter }
        let pathOffset = Int(try reader.u16(at: 68))
        let pathLength = Int(try reader.u16(at: 70))
        guard pathLength <= 2 * 1024 else { throw .badNetworkName }
        let path = try reader.utf16(at: pathOffset, count: pathLength)
        // "\\server\share": the share is the last component.
        guard let name = path.split(separator: "\\").last.map(String.init), !name.isEmpty else { throw .badNetworkName }
        guard session.trees.count < 1024 else { throw .insufficientResources }

        let tree: SMBTree
        var shareFlags: UInt32 = ShareFlag.noCaching
        var maximalAccess = Self.fullAccess
        if name.uppercased() == "IPC$" {
            tree = SMBTree(id: session.nextTreeID, share: nil, root: nil, readOnly: true)
            shareFlags = 0
        } else {
            guard let share = server.share(named: name) else { throw .badNetworkName }
            if let user = session.user {
                // A share limited to some users (shares.NAME.users) refuses the others.
                if let allowed = share.users, !allowed.contains(user.name) { throw .accessDenied }
            } else if !share.guest {
                throw .accessDenied
            }
            let readOnly = share.readOnly || session.user.map { share.readOnlyUsers.contains($0.name) } ?? false
            if share.encrypt && (session.encryptor == nil) { throw .accessDenied }
            let root: FileHandle
            do {
                root = try await vfs.resolve(share.path, credentials: session.credentials).0
            } catch {
                throw .badNetworkName
            }
            tree = SMBTree(id: session.nextTreeID, share: share, root: root, readOnly: readOnly)
            if share.encrypt { shareFlags |= ShareFlag.encryptData }
            if readOnly { maximalAccess = Self.readAccess }
        }
        session.nextTreeID &+= 1
        session.trees[tree.id] = tree
        let treeID = tree.id
        var header = request.header
        header.treeID = treeID
        request.header = header
        request.tree = tree
        respond(request, reply: reply, bodyCapacity: 16) { writer in
            writer.u16(16)
            writer.u8(tree.isIPC ? 2 : 1)  // pipe or disk
            writer.u8(0)
            writer.u32(shareFlags)
            writer.u32(0)  // capabilities
            writer.u32(maximalAccess)
        }
    }

    func treeDisconnect(_ request: inout SMB2Request, reply: SMBReply) throws(NTStatus) {
        guard try request.reader.u16(at: 64) == 4, let session = request.session, let tree = request.tree else { throw .invalidParameter }
        closeOpens { $0.sessionID == session.id && $0.treeID == tree.id }
        session.trees[tree.id] = nil
        respond(request, reply: reply, bodyCapacity: 4) { writer in
            writer.u16(4)
            writer.u16(0)
        }
    }
}
