import Glibc
import Runtime
import VFS

/// Oplocks (MS-SMB2 §3.3.4.6, §3.3.5.22): granting them at CREATE through the shared file
/// table, break notifications to the holder (on its own loop), the holder's acknowledgement,
/// and CREATEs that wait for a break to finish.
extension SMBConnection {
    /// Adds an open to the file table, first breaking another client's exclusive or batch
    /// oplock if there is one; returns the file's state and the oplock this open gets.
    func acquire(_ handle: FileHandle, openID: UInt64, access: UInt32, share: UInt32, oplock: UInt8, breakTo: UInt8,
                 isDirectory: Bool) async throws(NTStatus) -> (SMBFileState, UInt8) {
        let overwrites = breakTo == OplockLevel.none
        let table = server.files
        for _ in 0..<16 {
            switch table.tryAcquire(handle, connection: self, openID: openID, access: access, share: share,
                                    requestedOplock: oplock, breakTo: breakTo, overwrites: overwrites, isDirectory: isDirectory) {
            case let .granted(state, level):
                return (state, level)
            case let .refused(status):
                throw status
            case let .breakAndWait(state, holder, level, waiter):
                let holderConnection = holder.connection
                let holderOpen = holder.openID
                holderConnection.connection.loop.execute { holderConnection.sendOplockBreak(openID: holderOpen, level: level) }
                await waitForBreak(state, waiter)
            case let .wait(state, waiter):
                await waitForBreak(state, waiter)
            }
        }
        throw .sharingViolation
    }

    /// Waits until the break this waiter depends on ends, or 35 s pass.
    private func waitForBreak(_ state: SMBFileState, _ waiter: SMBBreakWaiter) async {
        let table = server.files
        let loop = connection.loop
        let box = TimerBox()
        loop.execute { box.timer = loop.schedule(afterNanoseconds: SMBFileTable.breakTimeout) { table.timeOut(state, waiter: waiter) } }
        await withCheckedContinuation { continuation in table.park(waiter, continuation, state: state) }
        loop.execute { if let timer = box.timer { loop.cancel(timer) } }
    }

    /// Tells this connection's client that its oplock on `openID` goes down to `level`
    /// (MS-SMB2 §2.2.23.1). Runs on this connection's loop.
    func sendOplockBreak(openID: UInt64, level: UInt8) {
        guard !connection.isClosing, let open = opens[openID] else { return }
        var message = [UInt8](repeating: 0, count: 64 + 24)
        message.withUnsafeMutableBytes { raw in
            var writer = SMBWriter(raw.baseAddress!, capacity: raw.count)
            SMB2Header.writeResponse(&writer, command: SMB2Command.oplockBreak.rawValue, status: .success, creditCharge: 0, credits: 0,
                                     flags: [], nextCommand: 0, messageID: .max, asyncID: nil, treeID: 0, sessionID: 0)
            writer.u16(24)
            writer.u8(level)
            writer.u8(0)
            writer.u32(0)
            writer.u64(open.id)
            writer.u64(open.id)
        }
        if let session = sessions[open.sessionID], session.encryptData || session.trees[open.treeID]?.share?.encrypt == true,
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

    /// Level II holders of a file this open just changed lose their oplock (no
    /// acknowledgement is expected for a break to none).
    func breakLevelII(_ open: SMBOpen) {
        guard let state = open.fileState, state.levelIIHolders.load(ordering: .relaxed) > 0 else { return }
        open.oplock = OplockLevel.none
        for holder in server.files.breakLevelII(state, except: self, openID: open.id) {
            let holderConnection = holder.connection
            let holderOpen = holder.openID
            holderConnection.connection.loop.execute { holderConnection.sendOplockBreak(openID: holderOpen, level: OplockLevel.none) }
        }
    }

    /// OPLOCK_BREAK from the client: the acknowledgement of a break.
    func oplockBreakAck(_ request: inout SMB2Request, reply: SMBReply) throws(NTStatus) {
        let reader = request.reader
        guard try reader.u16(at: 64) == 24 else { throw .invalidParameter }
        let level = try reader.u8(at: 66)
        let open = try open(request, at: 72)
        guard let state = open.fileState else { throw .invalidDeviceRequest }
        guard let granted = server.files.acknowledge(state, connection: self, openID: open.id, level: level) else {
            throw .invalidOplockProtocol
        }
        open.oplock = granted
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
