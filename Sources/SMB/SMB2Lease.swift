import Synchronization
import VFS

/// A lease asked for in a CREATE's RqLs context (MS-SMB2 §2.2.13.2.8, v1, and §2.2.13.2.10,
/// v2 from SMB 3.0 on).
struct SMBLeaseRequest {
    let key: [UInt8]
    let state: UInt32
    let version: Int
    let parentKey: [UInt8]?
    let epoch: UInt16
}

/// SMB2 lease state bits (MS-SMB2 §2.2.13.2.8) and the VFS's lease states.
enum LeaseBits {
    static let read: UInt32 = 0x1
    static let handle: UInt32 = 0x2
    static let write: UInt32 = 0x4

    /// Only R, RH, RW and RWH exist: anything without read caching is nothing.
    static func vfs(_ bits: UInt32) -> LeaseState {
        guard bits & read != 0 else { return [] }
        var state: LeaseState = .read
        if bits & handle != 0 { state.insert(.handle) }
        if bits & write != 0 { state.insert(.write) }
        return state
    }

    static func smb(_ state: LeaseState) -> UInt32 {
        (state.contains(.read) ? read : 0) | (state.contains(.handle) ? handle : 0) | (state.contains(.write) ? write : 0)
    }
}

/// Leases (MS-SMB2 §3.3.5.9.8, §3.3.4.7, §3.3.5.22.2) in the VFS's file state: a lease is the
/// lease of one `StateOwner` derived from the client's GUID and the lease key, and every open
/// with that key is opened as that owner, so the opens of one lease never break it. The
/// caching is granted, broken and acknowledged like an oplock's; the epoch (v2) counts its
/// changes.
extension SMBConnection {
    /// `StateOwner.client` of lease holders (SMB opens without a lease use `stateClient`).
    static let leaseClient: UInt64 = .max - 1

    /// The holder that stands for (ClientGuid, LeaseKey).
    func leaseOwner(_ key: [UInt8]) -> StateOwner {
        var hasher = Hasher()
        hasher.combine(clientGUID)
        hasher.combine(key)
        return StateOwner(client: Self.leaseClient, owner: UInt64(bitPattern: Int64(hasher.finalize())))
    }

    /// The RqLs context of a CREATE at `position` (nil when its size fits neither version).
    static func leaseRequest(_ reader: SMBReader, at position: Int, dialect: SMB2Dialect) throws(NTStatus) -> SMBLeaseRequest? {
        let base = position + Int(try reader.u16(at: position + 10))
        let length = Int(try reader.u32(at: position + 12))
        guard length >= 32 else { return nil }
        let key = Array(try reader.slice(at: base, count: 16))
        let state = try reader.u32(at: base + 16)
        guard length >= 52, dialect >= .smb300 else {
            return SMBLeaseRequest(key: key, state: state, version: 1, parentKey: nil, epoch: 0)
        }
        let flags = try reader.u32(at: base + 20)
        let parent = flags & 0x4 != 0 ? Array(try reader.slice(at: base + 32, count: 16)) : nil
        return SMBLeaseRequest(key: key, state: state, version: 2, parentKey: parent, epoch: try reader.u16(at: base + 48))
    }

    /// Grants the lease an open asked for: at least what its holder already has, at most what
    /// the other holders allow. Returns the state granted (possibly none).
    func grantLease(_ open: OpenFile, _ request: SMBLeaseRequest, openID: UInt64) -> LeaseState {
        let existing = open.state.lease(of: open.owner)?.state ?? []
        // Only an upgrade to a superset changes a lease ("RH" asking for "RW" keeps "RH"), and
        // only while no other lease shares the file (Windows keeps it as it is then).
        let requested = LeaseBits.vfs(request.state)
        let alone = !open.state.opens.contains { $0.owner != open.owner && !$0.access.isEmpty }
        let wanted = requested.isSuperset(of: existing) && (existing.isEmpty || alone) ? requested : existing
        let granted = wanted == existing ? existing : open.requestLease(wanted, onBreak: leaseBreakHandler(open, request, openID: openID))
        server.noteLeaseState(open.owner, granted, file: open.handle, requestEpoch: request.epoch, version: request.version)
        return granted
    }

    /// How the VFS tells this connection to break a lease: a LEASE_BREAK notification on this
    /// connection's loop. A lease caching reads only needs no acknowledgement (MS-SMB2
    /// §3.3.4.7), so such a break is acknowledged here at once.
    private func leaseBreakHandler(_ open: OpenFile, _ request: SMBLeaseRequest, openID: UInt64) -> LeaseBreakHandler {
        let table = vfs.fileStates
        let handle = open.handle
        let holder = open.owner
        let key = request.key
        let server = self.server
        return { [weak self] request in
            let acknowledge = request.from.contains(.write) || request.from.contains(.handle)
            if !acknowledge { table.acknowledgeBreak(handle, holder: holder, to: request.to) }
            let (epoch, version) = server.bumpLeaseEpoch(holder)
            guard let connection = self else { return }
            connection.connection.loop.execute {
                connection.sendLeaseBreak(openID: openID, holder: holder, key: key, epoch: version == 2 ? epoch : 0,
                                          from: request.from, to: request.to, acknowledge: acknowledge)
            }
        }
    }

    /// LEASE_BREAK notification (MS-SMB2 §2.2.23.2). Runs on this connection's loop.
    func sendLeaseBreak(openID: UInt64, holder: StateOwner, key: [UInt8], epoch: UInt16, from: LeaseState, to: LeaseState, acknowledge: Bool) {
        guard let open = opens[openID] ?? opens.values.first(where: { $0.fileState?.owner == holder }) else { return }
        sendNotification(bodySize: 44, sessionID: open.sessionID, treeID: open.treeID) { writer in
            writer.u16(44)
            writer.u16(epoch)
            writer.u32(acknowledge ? 0x1 : 0)
            writer.bytes(key)
            writer.u32(LeaseBits.smb(from))
            writer.u32(LeaseBits.smb(to))
            writer.zeros(12)  // break reason, access mask hint, share mask hint
        }
    }

    /// The lease context of a CREATE response (its data: v1 32 bytes, v2 52 bytes).
    /// The lease's `version` decides the layout, whatever the CREATE asked with.
    static func leaseResponse(_ writer: inout SMBWriter, _ request: SMBLeaseRequest, version: Int, granted: LeaseState, breaking: Bool, epoch: UInt16) {
        writer.bytes(request.key)
        writer.u32(LeaseBits.smb(granted))
        var flags: UInt32 = breaking ? 0x2 : 0
        if version == 2 && request.parentKey != nil { flags |= 0x4 }
        writer.u32(flags)
        writer.u64(0)
        guard version == 2 else { return }
        writer.bytes(request.parentKey ?? [UInt8](repeating: 0, count: 16))
        writer.u16(epoch)
        writer.u16(0)
    }

    /// LEASE_BREAK acknowledgement (MS-SMB2 §3.3.5.22.2): the holder now caches at most what
    /// the break offered.
    func leaseBreakAck(_ request: inout SMB2Request, reply: SMBReply) throws(NTStatus) {
        let reader = request.reader
        let key = Array(try reader.slice(at: 72, count: 16))
        let state = try reader.u32(at: 88)
        let holder = leaseOwner(key)
        guard let file = opens.values.lazy.compactMap({ $0.fileState }).first(where: { $0.owner == holder }),
              let lease = file.state.lease(of: holder) else { throw .objectNameNotFound }
        guard let offered = lease.breakingTo else { throw .unsuccessful }
        // The bits as sent: "W" alone is no lease state, and not a subset of "" either.
        guard state & ~LeaseBits.smb(offered) == 0 else { throw .requestNotAccepted }
        let acknowledged = LeaseBits.vfs(state)
        file.acknowledgeBreak(to: acknowledged)
        respond(request, reply: reply, bodyCapacity: 36) { writer in
            writer.u16(36)
            writer.u16(0)
            writer.u32(0)
            writer.bytes(key)
            writer.u32(LeaseBits.smb(acknowledged))
            writer.u64(0)
        }
    }
}

extension SMBServer {
    /// A lease's epoch after a grant (MS-SMB2 §3.3.5.9.11: a new v2 lease starts one past the
    /// client's epoch; a change of state counts one more). Dropped with the lease.
    func noteLeaseState(_ holder: StateOwner, _ granted: LeaseState, file: FileHandle, requestEpoch: UInt16, version: Int) {
        leaseEpochs.withLock { epochs in
            if epochs[holder] == nil {
                epochs[holder] = (requestEpoch &+ 1, granted, file, version)
            } else if let current = epochs[holder], current.state != granted {
                epochs[holder] = (current.epoch &+ 1, granted, file, current.version)
            }
        }
    }

    /// The file a lease key is bound to while an open of it lives.
    func leaseFile(_ holder: StateOwner) -> FileHandle? {
        leaseEpochs.withLock { $0[holder]?.file }
    }

    /// The lease's epoch and version (1 or 2) for a CREATE response.
    func leaseEpoch(_ holder: StateOwner) -> (epoch: UInt16, version: Int) {
        leaseEpochs.withLock { $0[holder].map { ($0.epoch, $0.version) } ?? (0, 1) }
    }

    /// One more change (a break): the new epoch.
    func bumpLeaseEpoch(_ holder: StateOwner) -> (epoch: UInt16, version: Int) {
        leaseEpochs.withLock { epochs in
            guard let current = epochs[holder] else { return (0, 1) }
            epochs[holder] = (current.epoch &+ 1, current.state, current.file, current.version)
            return (current.epoch &+ 1, current.version)
        }
    }

    func forgetLease(_ holder: StateOwner) {
        leaseEpochs.withLock { _ = $0.removeValue(forKey: holder) }
    }
}
