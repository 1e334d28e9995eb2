import Glibc
import Runtime
import VFS

/// Oplocks (MS-SMB2 §3.3.4.6, §3.3.5.22) as leases in the VFS's shared file state: granted at
/// CREATE, broken by any protocol's conflicting open or write (the VFS calls the holder's
/// break handler, which sends the notification on the holder's loop), acknowledged by the
/// holder; CREATEs wait for a break to finish or time out.
extension SMBConnection {
    /// Adds an open to the VFS's file state, first breaking other holders' oplocks and leases
    /// as MS-FSA §2.1.5.17 asks: a data open takes their write caching, an overwrite all of
    /// it, an attributes-only open nothing. Returns the open and the oplock it gets.
    /// While it waits, the CREATE goes async (an interim STATUS_PENDING reply), as Windows does.
    func acquire(_ handle: FileHandle, _ request: inout SMB2Request, reply: SMBReply, openID: UInt64, access: UInt32, share: UInt32,
                 oplock: UInt8, lease: SMBLeaseRequest? = nil, overwrites: Bool, isDirectory: Bool) async throws(NTStatus) -> (OpenFile, UInt8) {
        let (shareAccess, deny) = Self.shareModes(access: access, share: share)
        let breaking: LeaseState = overwrites ? [.read, .write, .handle] : shareAccess.isEmpty ? [] : [.write]
        // The opens of one lease are one holder.
        let owner = lease.map { leaseOwner($0.key) } ?? server.newStateOwner()
        // A lease key names one file (MS-SMB2 §3.3.5.9.8).
        if lease != nil, let bound = server.leaseFile(owner), bound != handle { throw .invalidParameter }
        let table = vfs.fileStates
        for _ in 0..<16 {
            let waiter = StateWaiter()
            switch table.open(handle, owner: owner, access: shareAccess, deny: deny, breaking: breaking, waiter: waiter) {
            case let .opened(open):
                if let lease, !isDirectory {
                    _ = grantLease(open, lease, openID: openID)
                    return (open, OplockLevel.lease)
                }
                return (open, grantOplock(open, openID: openID, requested: oplock, isDirectory: isDirectory))
            case .shareDenied:
                throw .sharingViolation
            case .deletePending:
                throw .deletePending
            case .waitForLeaseBreak:
                if request.asyncID == nil { _ = goAsync(&request, reply: reply) }
                await waitForBreak(waiter)
            }
        }
        throw .sharingViolation
    }

    /// The oplock an open gets: what it asked for if nobody else has the file, level II if
    /// others only read-cache it, none otherwise (and never on a directory).
    private func grantOplock(_ open: OpenFile, openID: UInt64, requested: UInt8, isDirectory: Bool) -> UInt8 {
        guard !isDirectory, requested != OplockLevel.none, requested != OplockLevel.lease else { return OplockLevel.none }
        let wanted = OplockLevel.leaseState(requested == OplockLevel.levelII ? OplockLevel.levelII : requested)
        guard !wanted.isEmpty else { return OplockLevel.none }
        return OplockLevel.level(open.requestLease(wanted, onBreak: oplockBreakHandler(open, openID: openID)))
    }

    /// How the VFS tells this connection that the oplock of open `openID` must go down: the
    /// notification leaves on this connection's loop. A level II oplock is simply gone (no
    /// acknowledgement is expected for a break to none, MS-SMB2 §3.3.4.6), so such a break is
    /// acknowledged here at once.
    private func oplockBreakHandler(_ open: OpenFile, openID: UInt64) -> LeaseBreakHandler {
        let table = vfs.fileStates
        let handle = open.handle
        let holder = open.owner
        return { [weak self] request in
            let from = OplockLevel.level(request.from)
            let to = OplockLevel.level(request.to)
            if !request.from.contains(.write) { table.acknowledgeBreak(handle, holder: holder, to: request.to) }
            guard from != to, let connection = self else { return }
            connection.connection.loop.execute { connection.sendOplockBreak(openID: openID, level: to) }
        }
    }

    /// Waits until the break this waiter depends on ends, or the break timeout passes (the
    /// retried open then forces the break).
    private func waitForBreak(_ waiter: StateWaiter) async {
        let loop = connection.loop
        let box = TimerBox()
        loop.execute { box.timer = loop.schedule(afterNanoseconds: FileState.breakTimeout &+ 1_000_000) { waiter.wake() } }
        await waiter.wait()
        loop.execute { if let timer = box.timer { loop.cancel(timer) } }
    }

    /// Tells this connection's client that its oplock on `openID` goes down to `level`
    /// (MS-SMB2 §2.2.23.1). Runs on this connection's loop.
    func sendOplockBreak(openID: UInt64, level: UInt8) {
        guard let open = opens[openID] else { return }
        sendNotification(bodySize: 24, sessionID: open.sessionID, treeID: open.treeID) { writer in
            writer.u16(24)
            writer.u8(level)
            writer.u8(0)
            writer.u32(0)
            writer.u64(open.id)
            writer.u64(open.id)
        }
    }

    /// Sends an unsolicited OPLOCK_BREAK message (MessageId all ones), sealed when the
    /// session or share encrypts. Runs on this connection's loop.
    func sendNotification(bodySize: Int, sessionID: UInt64, treeID: UInt32, body: (inout SMBWriter) -> Void) {
        guard !connection.isClosing else { return }
        var message = [UInt8](repeating: 0, count: 64 + bodySize)
        message.withUnsafeMutableBytes { raw in
            var writer = SMBWriter(raw.baseAddress!, capacity: raw.count)
            SMB2Header.writeResponse(&writer, command: SMB2Command.oplockBreak.rawValue, status: .success, creditCharge: 0, credits: 0,
                                     flags: [], nextCommand: 0, messageID: .max, asyncID: nil, treeID: 0, sessionID: 0)
            body(&writer)
        }
        if let session = sessions[sessionID], session.encryptData || session.trees[treeID]?.share?.encrypt == true,
           let encryptor = session.encryptor {
            message.withUnsafeBytes { plain in
                connection.write(capacity: 4 + SMB2Transform.headerSize + plain.count) { out in
                    let length = SMB2Transform.seal(plain, session: session, encryptor: encryptor, into: out.baseAddress! + 4)
                    out.storeBytes(of: UInt32(length).bigEndian, toByteOffset: 0, as: UInt32.self)
                    return 4 + length
                }
            }
            return
        }
        var prefix = UInt32(message.count).bigEndian
        withUnsafeBytes(of: &prefix) { connection.write($0) }
        message.withUnsafeBytes { connection.write($0) }
    }

    /// A write through `open` is about to change the file: read caching (level II oplocks,
    /// this open's own included, and other protocols' leases) goes.
    @inline(__always)
    func breakReadCaching(_ open: SMBOpen) {
        guard let file = open.fileState, file.state.hasLeases else { return }
        file.state.breakReadCaching(by: file.owner, sparingOwn: open.lease != nil)
    }

    /// OPLOCK_BREAK from the client: the acknowledgement of a break, to at most the level
    /// offered (more is INVALID_OPLOCK_PROTOCOL, and the oplock is gone).
    func oplockBreakAck(_ request: inout SMB2Request, reply: SMBReply) throws(NTStatus) {
        let reader = request.reader
        if try reader.u16(at: 64) == 36 {
            try leaseBreakAck(&request, reply: reply)
            return
        }
        guard try reader.u16(at: 64) == 24 else { throw .invalidParameter }
        let level = try reader.u8(at: 66)
        let open = try open(request, at: 72)
        guard let file = open.fileState else { throw .invalidDeviceRequest }
        guard let offered = file.state.lease(of: file.owner)?.breakingTo else { throw .invalidOplockProtocol }
        guard level <= OplockLevel.level(offered) else {
            file.acknowledgeBreak(to: [])
            throw .invalidOplockProtocol
        }
        let granted = level == OplockLevel.levelII ? OplockLevel.levelII : OplockLevel.none
        file.acknowledgeBreak(to: OplockLevel.leaseState(granted))
        respond(request, reply: reply, bodyCapacity: 24) { writer in
            writer.u16(24)
            writer.u8(granted)
            writer.u8(0)
            writer.u32(0)
            writer.u64(open.id)
            writer.u64(open.id)
        }
    }
}

/// A timer id handed between the closures that set and cancel it (same loop).
private final class TimerBox: @unchecked Sendable {
    var timer: TimerID?
}
