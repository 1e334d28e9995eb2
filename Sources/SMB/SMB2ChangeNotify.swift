import Runtime
import Synchronization
import VFS

/// A change to report (MS-FSCC §2.4.42 FILE_NOTIFY_INFORMATION).
struct SMBChange: Sendable {
    enum Action: UInt32 {
        case added = 1, removed, modified, renamedOldName, renamedNewName
    }

    let action: Action
    /// The name relative to the watched directory.
    let name: String
    /// Which completion-filter bits the change matches.
    let filter: UInt32
}

/// Completion filter bits (MS-SMB2 §2.2.35).
enum NotifyFilter {
    static let fileName: UInt32 = 0x1
    static let dirName: UInt32 = 0x2
    static let attributes: UInt32 = 0x4
    static let size: UInt32 = 0x8
    static let lastWrite: UInt32 = 0x10
}

/// Who watches which directory, across connections and loops. Mutations look here only when
/// `watchers` is non-zero, so an unwatched server pays one relaxed load per change.
final class SMBNotifyRegistry: Sendable {
    struct Watch {
        let connection: SMBConnection
        let openID: UInt64
    }

    private let table = Mutex<[FileHandle: [Watch]]>([:])
    let watchers = Atomic<Int>(0)

    func watch(_ directory: FileHandle, connection: SMBConnection, openID: UInt64) {
        table.withLock { table in
            if table[directory]?.contains(where: { $0.connection === connection && $0.openID == openID }) == true { return }
            table[directory, default: []].append(Watch(connection: connection, openID: openID))
            watchers.add(1, ordering: .relaxed)
        }
    }

    func unwatch(_ directory: FileHandle, connection: SMBConnection, openID: UInt64) {
        table.withLock { table in
            guard var list = table[directory], let index = list.firstIndex(where: { $0.connection === connection && $0.openID == openID }) else { return }
            list.remove(at: index)
            watchers.subtract(1, ordering: .relaxed)
            table[directory] = list.isEmpty ? nil : list
        }
    }

    /// Tells every watcher of `directory` about `change`, each on its own loop.
    func post(_ directory: FileHandle, _ change: SMBChange) {
        guard watchers.load(ordering: .relaxed) > 0 else { return }
        let list = table.withLock { $0[directory] ?? [] }
        for watch in list {
            let connection = watch.connection
            let openID = watch.openID
            connection.connection.loop.execute { connection.deliver(change, to: openID) }
        }
    }
}

/// A CHANGE_NOTIFY waiting for changes, answered asynchronously.
final class SMBPendingNotify {
    let asyncID: UInt64
    let messageID: UInt64
    let sessionID: UInt64
    let treeID: UInt32
    let openID: UInt64
    let outputLength: Int
    let signed: Bool
    let encrypted: Bool

    init(asyncID: UInt64, messageID: UInt64, sessionID: UInt64, treeID: UInt32, openID: UInt64, outputLength: Int, signed: Bool, encrypted: Bool) {
        self.asyncID = asyncID
        self.messageID = messageID
        self.sessionID = sessionID
        self.treeID = treeID
        self.openID = openID
        self.outputLength = outputLength
        self.signed = signed
        self.encrypted = encrypted
    }
}

/// CHANGE_NOTIFY and CANCEL (MS-SMB2 §3.3.5.19, §3.3.5.16): a watch on a directory handle,
/// an interim STATUS_PENDING reply, and the final reply when something changes, when the
/// handle closes (NOTIFY_CLEANUP) or when the client cancels (CANCELLED). Changes that arrive
/// while no request waits are kept (up to a bound) for the next one.
extension SMBConnection {
    /// Changes kept per handle between requests; more becomes NOTIFY_ENUM_DIR.
    static let maxQueuedChanges = 256

    func changeNotify(_ request: inout SMB2Request, reply: SMBReply, isLast: Bool) throws(NTStatus) {
        let reader = request.reader
        guard try reader.u16(at: 64) == 32 else { throw .invalidParameter }
        let flags = try reader.u16(at: 66)
        let outputLength = Int(try reader.u32(at: 68))
        let open = try open(request, at: 72)
        let filter = try reader.u32(at: 88)
        guard open.pipe == nil, open.isDirectory else { throw .invalidParameter }
        guard outputLength <= maxIOSize else { throw .invalidParameter }
        guard open.access & SMBAccess.readData != 0 else { throw .accessDenied }
        open.notifyFilter = filter
        open.notifyRecursive = flags & 0x1 != 0
        if !open.notifyWatching {
            open.notifyWatching = true
            server.notify.watch(open.handle, connection: self, openID: open.id)
        }
        if !open.notifyQueue.isEmpty || open.notifyOverflow {
            let changes = open.notifyQueue
            let overflow = open.notifyOverflow
            open.notifyQueue.removeAll()
            open.notifyOverflow = false
            let (status, body) = Self.encodeChanges(changes, overflow: overflow, outputLength: outputLength)
            respond(request, reply: reply, status: status, bodyCapacity: 8 + body.count) { writer in
                writer.u16(9)
                writer.u16(body.isEmpty ? 0 : 72)
                writer.u32(UInt32(body.count))
                writer.bytes(body)
            }
            return
        }
        // Going asynchronous in the middle of a compound is not allowed (Windows and Samba
        // answer INTERNAL_ERROR there).
        guard isLast else { throw .internalError }
        guard pendingNotifies.count < 256 else { throw .insufficientResources }
        nextAsyncID &+= 1
        let pending = SMBPendingNotify(asyncID: nextAsyncID, messageID: request.header.messageID, sessionID: request.session?.id ?? 0,
                                       treeID: request.tree?.id ?? 0, openID: open.id, outputLength: outputLength,
                                       signed: request.header.flags.contains(.signed), encrypted: request.encrypted)
        pendingNotifies[pending.asyncID] = pending
        open.pendingNotify = pending.asyncID
        respond(request, reply: reply, status: .pending, bodyCapacity: 9, asyncID: pending.asyncID) { writer in
            writer.u16(9)
            writer.u8(0)
            writer.u8(0)
            writer.u32(0)
            writer.u8(0)
        }
        // The interim reply leaves now: the final one (a change, CANCEL, a close) must never
        // overtake it.
        flushReply(reply)
        reply.reset()
    }

    /// FILE_NOTIFY_INFORMATION entries, or NOTIFY_ENUM_DIR when they do not fit.
    static func encodeChanges(_ changes: [SMBChange], overflow: Bool, outputLength: Int) -> (NTStatus, [UInt8]) {
        if overflow { return (.notifyEnumDir, []) }
        var out: [UInt8] = []
        var previous = -1
        for change in changes {
            while out.count % 4 != 0 { out.append(0) }
            if previous >= 0 {
                let next = UInt32(out.count - previous)
                for i in 0..<4 { out[previous + i] = UInt8(truncatingIfNeeded: next >> (8 * UInt32(i))) }
            }
            previous = out.count
            let name = Bytes.utf16(change.name)
            out += Bytes.le32(0) + Bytes.le32(change.action.rawValue) + Bytes.le32(UInt32(name.count)) + name
        }
        if out.count > outputLength { return (.notifyEnumDir, []) }
        return (.success, out)
    }

    /// A change in a directory this connection watches (on this connection's loop).
    func deliver(_ change: SMBChange, to openID: UInt64) {
        guard let open = opens[openID], open.notifyFilter & change.filter != 0 else { return }
        if let asyncID = open.pendingNotify, let pending = pendingNotifies[asyncID] {
            open.pendingNotify = nil
            pendingNotifies[asyncID] = nil
            let (status, body) = Self.encodeChanges([change], overflow: false, outputLength: pending.outputLength)
            sendAsyncReply(pending, status: status, body: body)
            return
        }
        if open.notifyQueue.count >= Self.maxQueuedChanges {
            open.notifyOverflow = true
        } else {
            open.notifyQueue.append(change)
        }
    }

    /// Ends the pending notify of a handle (closed: NOTIFY_CLEANUP) or a cancelled request.
    func finishNotify(asyncID: UInt64, status: NTStatus) {
        guard let pending = pendingNotifies.removeValue(forKey: asyncID) else { return }
        opens[pending.openID]?.pendingNotify = nil
        sendAsyncReply(pending, status: status, body: [])
    }

    /// CANCEL: by AsyncId for an async request, by MessageId otherwise; no reply of its own.
    /// Samba's client sometimes cancels with MessageId 0 and no AsyncId (seen on the wire when
    /// it cancels before the interim reply arrived); 0 is never a request's id after NEGOTIATE,
    /// so it means this session's latest pending request.
    func cancel(_ request: SMB2Request) {
        if !request.header.flags.contains(.async) && request.header.messageID == 0 {
            let sessionID = request.header.sessionID
            if let latest = pendingNotifies.values.filter({ $0.sessionID == sessionID }).max(by: { $0.asyncID < $1.asyncID }) {
                finishNotify(asyncID: latest.asyncID, status: .cancelled)
            } else if let (messageID, _) = blockedLocks.max(by: { $0.key < $1.key }) {
                _ = cancelBlockedLock(messageID: messageID)
            }
            return
        }
        if request.header.flags.contains(.async) {
            if cancelBlockedLock(asyncID: request.header.asyncID) { return }
        } else if cancelBlockedLock(messageID: request.header.messageID) {
            return
        }
        if request.header.flags.contains(.async) {
            finishNotify(asyncID: request.header.asyncID, status: .cancelled)
        } else if let pending = pendingNotifies.values.first(where: { $0.messageID == request.header.messageID }) {
            finishNotify(asyncID: pending.asyncID, status: .cancelled)
        }
    }

    /// The final reply of an asynchronous request, sent on its own.
    private func sendAsyncReply(_ pending: SMBPendingNotify, status: NTStatus, body: [UInt8]) {
        guard !connection.isClosing else { return }
        let session = sessions[pending.sessionID]
        let reply = SMBReply()
        if let session, pending.encrypted || session.encryptData, session.encryptor != nil { reply.encryptFor = session }
        var signer: SMBSigner?
        if reply.encryptFor == nil, let session, let sessionSigner = session.signer, pending.signed || session.signingRequired {
            signer = sessionSigner
        }
        reply.append(capacity: SMB2Header.size + 9 + body.count, signer: signer) { writer in
            SMB2Header.writeResponse(&writer, command: SMB2Command.changeNotify.rawValue, status: status, creditCharge: 0, credits: 0,
                                     flags: [], nextCommand: 0, messageID: pending.messageID, asyncID: pending.asyncID,
                                     treeID: pending.treeID, sessionID: pending.sessionID)
            if status.isError {
                writer.u16(9)
                writer.u8(0)
                writer.u8(0)
                writer.u32(0)
                writer.u8(0)
            } else {
                writer.u16(9)
                writer.u16(body.isEmpty ? 0 : 72)
                writer.u32(UInt32(body.count))
                writer.bytes(body)
            }
        }
        flushReply(reply)
    }

    /// Posts a change in `directory` (the parent of `name`) to whoever watches it.
    func postChange(in directory: FileHandle?, _ action: SMBChange.Action, name: String, isDirectory: Bool, filter: UInt32? = nil) {
        guard let directory, server.notify.watchers.load(ordering: .relaxed) > 0 else { return }
        let bits = filter ?? (isDirectory ? NotifyFilter.dirName : NotifyFilter.fileName)
        server.notify.post(directory, SMBChange(action: action, name: name, filter: bits))
    }
}
