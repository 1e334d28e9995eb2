import Crypto
import Glibc
import Runtime
import VFS

/// One request element being served: its header, its bytes (offsets in SMB2 bodies count
/// from the header's start) and what it runs under.
struct SMB2Request {
    var header: SMB2Header
    /// This element's bytes, header first.
    let message: UnsafeMutableRawBufferPointer
    var session: SMBSession?
    var tree: SMBTree?
    /// Arrived inside a transform header.
    let encrypted: Bool
    /// The FileId of the previous element of a related compound.
    let relatedFileID: UInt64?
    /// Set by a handler whose reply must be signed whatever the request was (3.1.1's final
    /// SESSION_SETUP, VALIDATE_NEGOTIATE).
    var forceSign = false
    /// The FileId a CREATE produced (for related elements after it).
    var producedFileID: UInt64?
    /// The last element of its message (only that one may go asynchronous).
    var isLast = true
    /// Set once an interim reply went out: the final reply is asynchronous and grants no
    /// further credits.
    var asyncID: UInt64?

    var reader: SMBReader { SMBReader(UnsafeRawBufferPointer(message)) }

    /// A FileId at body `position`: the volatile half names the open; all ones in a related
    /// compound means "the file the previous element used".
    func fileID(at position: Int) throws(NTStatus) -> UInt64 {
        let persistent = try reader.u64(at: position)
        let volatile = try reader.u64(at: position + 8)
        if persistent == .max && volatile == .max {
            guard header.flags.contains(.related), let relatedFileID else { throw .fileClosed }
            return relatedFileID
        }
        return volatile
    }
}

/// Serves SMB2/SMB3 on one TCP connection: NetBIOS session framing (RFC 1002 direct TCP),
/// SMB1 negotiate upgrades, transform (encrypted) messages, compounds, sessions, trees and
/// opens, signing, credits, and one task per received message on the connection's loop.
///
/// Used only on its connection's loop (its tasks run there too), hence the unchecked
/// conformance.
final class SMBConnection: ConnectionHandler, @unchecked Sendable {
    let server: SMBServer
    /// Strong: tasks of this connection may still run after it closed. The cycle with
    /// `Connection.handler` ends when the connection drops its handler at close.
    let connection: Connection
    var vfs: VirtualFileSystem { server.vfs }

    // Negotiated state.
    var dialect: SMB2Dialect?
    var clientGUID: [UInt8] = []
    var clientCapabilities: UInt32 = 0
    var clientSecurityMode: UInt16 = 0
    var serverCapabilities: UInt32 = 0
    var serverSecurityMode: UInt16 = 0
    var cipher: SMB2Cipher?
    /// 3.1.1: the signing algorithm negotiated by context (AES-CMAC when none was).
    var signingAlgorithm: SMBSigner.Algorithm?
    /// 3.1.1: the connection's preauthentication hash after NEGOTIATE.
    var preauthHash: [UInt8] = []
    var maxIOSize = 65536

    var sessions: [UInt64: SMBSession] = [:]
    /// Requests answered asynchronously (CHANGE_NOTIFY), by AsyncId.
    var pendingNotifies: [UInt64: SMBPendingNotify] = [:]
    var nextAsyncID: UInt64 = 0
    /// LOCK requests blocked on a range, by MessageId (for CANCEL).
    var blockedLocks: [UInt64: BlockedLock] = [:]
    var opens: [UInt64: SMBOpen] = [:]
    var nextFileID: UInt64 = 1
    /// The second half of this connection's resume keys (FSCTL_SRV_REQUEST_RESUME_KEY): a key
    /// names an open of this connection only.
    let resumeKeyToken = Bytes.random(16)
    /// Credits the client holds.
    var credits = 1

    private var requestsInFlight = 0
    private var paused = false
    /// When the frame now arriving started to (0: none is partly here), and the timer that
    /// enforces `frameTimeout` on it.
    private var partialSince: UInt64 = 0
    private var frameTimer: TimerID?
    private var freeReplies: [SMBReply] = []
    private(set) var stats: ProtocolStats?

    /// Largest frame before any session is authenticated: NEGOTIATE and SESSION_SETUP are
    /// small, and nothing an unauthenticated peer sends may make the server allocate much.
    static let unauthenticatedFrameLimit = 64 * 1024
    /// Headroom over the largest READ/WRITE for headers, compounds and the transform header.
    static let frameSlack = 64 * 1024

    init(server: SMBServer, connection: Connection) {
        self.server = server
        self.connection = connection
    }

    private var anyValidSession: Bool { sessions.values.contains { $0.state == .valid } }

    // MARK: Framing

    override func received(_ bytes: ByteSlice, on connection: Connection) -> Int {
        let raw = bytes.unsafeBytes
        var consumed = 0
        while raw.count - consumed >= 4 {
            if requestsInFlight >= server.settings.maxRequestsInFlight || connection.queuedBytes > Self.maxQueuedReplyBytes {
                paused = true
                connection.pauseReading()
                resumeWhenAllowed()
                break
            }
            let type = raw[consumed]
            let length = Int(raw[consumed + 1]) << 16 | Int(raw[consumed + 2]) << 8 | Int(raw[consumed + 3])
            guard type == 0 else {
                if type == 0x85 && length == 0 {
                    // Session keepalive: nothing to answer.
                    consumed += 4
                    continue
                }
                connection.close(error: EPROTO)
                return raw.count
            }
            let limit = anyValidSession ? maxIOSize + Self.frameSlack : Self.unauthenticatedFrameLimit
            guard length <= limit else {
                // Larger than anything negotiated: the frame cannot be skipped safely.
                connection.close(error: EMSGSIZE)
                return raw.count
            }
            guard raw.count - consumed - 4 >= length else {
                connection.expect(bytes: length + 4)
                break
            }
            let frame = bytes.slice((consumed + 4)..<(consumed + 4 + length))
            consumed += 4 + length
            dispatch(frame)
            if connection.isClosing { return raw.count }
        }
        if !paused && raw.count > consumed {
            if partialSince == 0 {
                partialSince = monotonicNanoseconds()
                scheduleFrameCheck(connection)
            }
        } else {
            partialSince = 0
        }
        return consumed
    }

    /// Closes the connection if a frame has been arriving for longer than `frameTimeout`
    /// (a client that sends half a frame and stalls holds a connection and its buffer).
    private func scheduleFrameCheck(_ connection: Connection) {
        guard frameTimer == nil else { return }
        let timeout = server.settings.frameTimeout
        frameTimer = connection.loop.schedule(afterNanoseconds: UInt64(max(0.05, timeout / 4) * 1e9)) { [weak self, weak connection] in
            guard let self, let connection else { return }
            self.frameTimer = nil
            guard self.partialSince != 0, !connection.isClosing else { return }
            if Double(monotonicNanoseconds() &- self.partialSince) / 1e9 > timeout {
                connection.close(error: ETIMEDOUT)
            } else {
                self.scheduleFrameCheck(connection)
            }
        }
    }

    override func closed(_ connection: Connection, error: Int32) {
        if let frameTimer { connection.loop.cancel(frameTimer) }
        frameTimer = nil
        // Other clients may wait on these opens' oplocks and share modes; blocked LOCKs of
        // this connection end.
        for messageID in Array(blockedLocks.keys) { _ = cancelBlockedLock(messageID: messageID) }
        for id in Array(pendingNotifies.keys) { pendingNotifies[id] = nil }
        closeOpens { _ in true }
        for id in sessions.keys { server.unregister(id, connection: self) }
        freeReplies.removeAll()
    }

    private func dispatch(_ frame: ByteSlice) {
        guard frame.count >= 4 else {
            connection.close(error: EPROTO)
            return
        }
        let raw = UnsafeMutableRawBufferPointer(mutating: frame.unsafeBytes)
        let protocolID = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        switch protocolID {
        case SMB2Header.protocolID:
            guard raw.count >= SMB2Header.size else {
                connection.close(error: EPROTO)
                return
            }
            start(raw, owner: frame, decryptedFor: nil)
        case 0x424D_53FF:
            negotiateSMB1(UnsafeRawBufferPointer(raw))
        case SMB2Transform.protocolID:
            guard let (message, session) = SMB2Transform.open(raw, sessions: sessions) else {
                // Undecryptable: nothing can be answered under a key we do not have.
                connection.close(error: EACCES)
                return
            }
            guard message.count >= SMB2Header.size,
                  UInt32(littleEndian: message.loadUnaligned(fromByteOffset: 0, as: UInt32.self)) == SMB2Header.protocolID
            else {
                connection.close(error: EPROTO)
                return
            }
            start(message, owner: frame, decryptedFor: session)
        default:
            // Compressed messages (0xFC) are not negotiated; anything else is not SMB.
            connection.close(error: EPROTO)
        }
    }

    private func start(_ message: UnsafeMutableRawBufferPointer, owner: ByteSlice, decryptedFor: SMBSession?) {
        if stats == nil { stats = connection.loop.protocolStats("SMB", operations: SMB2Command.names) }
        owner.retain()
        requestsInFlight += 1
        let frame = ReceivedFrame(message: message, owner: owner, session: decryptedFor)
        let loop = connection.loop
        loop.requestStarted()
        Task(executorPreference: loop) {
            await self.process(frame.message, decryptedFor: frame.session)
            frame.owner.release()
            self.requestFinished()
            loop.requestFinished()
        }
    }

    /// A received message handed to its task; used only on the connection's loop.
    private struct ReceivedFrame: @unchecked Sendable {
        let message: UnsafeMutableRawBufferPointer
        let owner: ByteSlice
        let session: SMBSession?
    }

    private func requestFinished() {
        requestsInFlight -= 1
        resumeWhenAllowed()
    }

    /// Reply bytes queued for a client that does not read them, past which no further request
    /// is started until they have drained to half (so pipelined READs to a slow reader cannot
    /// grow memory; a connection holds at most this plus its requests in flight).
    static let maxQueuedReplyBytes = 4 << 20

    /// Resumes a paused connection once half its requests have finished and its queued replies
    /// have drained to half the limit (waiting for the drain when that is what is missing).
    private func resumeWhenAllowed() {
        guard paused, requestsInFlight <= server.settings.maxRequestsInFlight / 2, !connection.isClosing else { return }
        guard connection.queuedBytes <= Self.maxQueuedReplyBytes / 2 else {
            connection.onDrain(below: Self.maxQueuedReplyBytes / 2) { [weak self] in
                guard let self, self.paused, !self.connection.isClosing,
                      self.connection.queuedBytes <= Self.maxQueuedReplyBytes / 2 else { return }
                self.resumeWhenAllowed()
            }
            return
        }
        paused = false
        connection.resumeReading()
    }

    // MARK: Requests

    private func takeReply() -> SMBReply {
        freeReplies.popLast() ?? SMBReply()
    }

    /// Serves one message: a single request or a compound chain, answered in one frame.
    private func process(_ frame: UnsafeMutableRawBufferPointer, decryptedFor: SMBSession?) async {
        let reply = takeReply()
        reply.encryptFor = decryptedFor
        var offset = 0
        var relatedSession: SMBSession?
        var relatedTree: SMBTree?
        var relatedFileID: UInt64?
        var relatedStatus = NTStatus.success
        while frame.count - offset >= SMB2Header.size {
            let rest = UnsafeMutableRawBufferPointer(rebasing: frame[offset...])
            guard var header = try? SMB2Header(SMBReader(UnsafeRawBufferPointer(rest))) else { break }
            var length = rest.count
            var malformedChain = false
            if header.nextCommand != 0 {
                let next = Int(header.nextCommand)
                if next % 8 != 0 || next < SMB2Header.size || next > rest.count {
                    malformedChain = true
                    header.nextCommand = 0
                } else {
                    length = next
                }
            }
            let started = monotonicNanoseconds()
            var request = SMB2Request(header: header, message: UnsafeMutableRawBufferPointer(rebasing: rest[0..<length]),
                                      session: nil, tree: nil, encrypted: decryptedFor != nil, relatedFileID: relatedFileID)
            request.isLast = header.nextCommand == 0
            let related = header.flags.contains(.related) && offset > 0
            var status = NTStatus.success
            var bytes = 0
            var inherited = false
            do throws(NTStatus) {
                if malformedChain { throw .invalidParameter }
                // A chain cannot start related, and a related element inherits the failure of
                // the element that should have given it its file, session or tree.
                if header.flags.contains(.related) && offset == 0 { throw .invalidParameter }
                if related && relatedStatus.isError {
                    inherited = true
                    throw relatedStatus
                }
                try authorize(&request, relatedSession: related ? relatedSession : nil, relatedTree: related ? relatedTree : nil)
                bytes = try await serve(&request, reply: reply)
            } catch {
                status = error
                respondError(request, reply: reply, status: error)
            }
            stats?.record(Int(header.command), nanoseconds: monotonicNanoseconds() &- started, bytes: bytes, error: status != .success)
            if inherited {
                // The chain stays broken with the same status.
            } else {
                relatedSession = request.session
                relatedTree = request.tree
                // Only a failed CREATE (no FileId), a chain error, or a failure to find the
                // session is inherited: a failed WRITE does not stop a related READ after it.
                if status.isError && (header.command == SMB2Command.create.rawValue || request.session == nil
                                      || (header.flags.contains(.related) && offset == 0)) {
                    relatedStatus = request.session == nil ? .invalidParameter : status
                } else {
                    relatedStatus = .success
                }
                if let produced = request.producedFileID {
                    relatedFileID = produced
                } else if request.header.command != SMB2Command.create.rawValue {
                    // The next related element uses the file this one used; none if it had none.
                    relatedFileID = length >= SMB2Header.size + 24 ? Self.fileIDField(request) : nil
                }
            }
            if header.nextCommand == 0 { break }
            offset += length
        }
        flush(reply)
        reply.reset()
        if freeReplies.count < 8 { freeReplies.append(reply) }
    }

    /// The FileId a request named (for related compounds), where its command carries one.
    private static func fileIDField(_ request: SMB2Request) -> UInt64? {
        let position: Int
        switch SMB2Command(rawValue: request.header.command) {
        case .close, .flush: position = 64 + 8
        case .read: position = 64 + 16
        case .write: position = 64 + 16
        case .queryDirectory: position = 64 + 8
        case .queryInfo: position = 64 + 24
        case .setInfo: position = 64 + 16
        case .ioctl: position = 64 + 8
        case .lock: position = 64 + 8
        case .changeNotify: position = 64 + 8
        default: return nil
        }
        return try? request.fileID(at: position)
    }

    /// Finds the session and tree a request runs under and enforces signing and encryption.
    private func authorize(_ request: inout SMB2Request, relatedSession: SMBSession?, relatedTree: SMBTree?) throws(NTStatus) {
        guard let command = SMB2Command(rawValue: request.header.command) else { throw .invalidParameter }
        if command == .negotiate { return }
        guard dialect != nil else { throw .invalidParameter }
        if command == .echo || command == .cancel {
            request.session = sessions[request.header.sessionID] ?? relatedSession
            if let session = request.session, session.state != .valid { request.session = nil }
            return
        }
        if command == .sessionSetup {
            if request.header.sessionID != 0 {
                guard let session = sessions[request.header.sessionID] else { throw .userSessionDeleted }
                request.session = session
            }
            return
        }
        let session: SMBSession
        if request.header.flags.contains(.related) && request.header.sessionID == .max {
            // A related element whose predecessor had no session has nothing to relate to.
            guard let relatedSession else { throw .invalidParameter }
            session = relatedSession
        } else {
            guard let found = sessions[request.header.sessionID] else { throw .userSessionDeleted }
            session = found
        }
        guard session.state == .valid else { throw .userSessionDeleted }
        request.session = session
        try checkIntegrity(&request, session: session)
        switch command {
        case .logoff, .treeConnect:
            return
        default:
            break
        }
        let tree: SMBTree
        if request.header.flags.contains(.related) && request.header.treeID == .max {
            guard let relatedTree else { throw .invalidParameter }
            tree = relatedTree
        } else {
            guard let found = session.trees[request.header.treeID] else { throw .networkNameDeleted }
            tree = found
        }
        if tree.share?.encrypt == true && !request.encrypted { throw .accessDenied }
        request.tree = tree
    }

    /// Signed requests are verified; an unsigned request where signing is required, or a
    /// plain one where encryption is, is refused.
    private func checkIntegrity(_ request: inout SMB2Request, session: SMBSession) throws(NTStatus) {
        if request.encrypted { return }
        if session.encryptData { throw .accessDenied }
        guard let signer = session.signer else { return }
        if request.header.flags.contains(.signed) {
            guard signer.verify(request.message) else { throw .accessDenied }
        } else if session.signingRequired {
            throw .accessDenied
        }
    }

    /// Runs one command; returns the payload bytes moved (for the statistics).
    private func serve(_ request: inout SMB2Request, reply: SMBReply) async throws(NTStatus) -> Int {
        switch SMB2Command(rawValue: request.header.command)! {
        case .negotiate: try negotiate(&request, reply: reply)
        case .sessionSetup: try sessionSetup(&request, reply: reply)
        case .logoff: try logoff(&request, reply: reply)
        case .treeConnect: try await treeConnect(&request, reply: reply)
        case .treeDisconnect: try treeDisconnect(&request, reply: reply)
        case .create: try await create(&request, reply: reply)
        case .close: try await close(&request, reply: reply)
        case .flush: try await flush(&request, reply: reply)
        case .read: return try await read(&request, reply: reply)
        case .write: return try await write(&request, reply: reply)
        case .echo: respond(request, reply: reply, bodyCapacity: 4) { $0.u16(4); $0.u16(0) }
        case .ioctl: try await ioctl(&request, reply: reply)
        case .queryDirectory: try await queryDirectory(&request, reply: reply)
        case .queryInfo: try await queryInfo(&request, reply: reply)
        case .setInfo: try await setInfo(&request, reply: reply)
        case .cancel:
            // CANCEL has no reply of its own; the cancelled request answers CANCELLED.
            cancel(request)
        case .oplockBreak: try oplockBreakAck(&request, reply: reply)
        case .changeNotify: try changeNotify(&request, reply: reply, isLast: request.isLast)
        case .lock: try await lock(&request, reply: reply)
        }
        return 0
    }

    // MARK: Responses

    /// Credits granted with a response: what the client asked for, within the connection's
    /// budget, and never leaving it with none.
    private func grantCredits(_ header: SMB2Header) -> UInt16 {
        let charge = max(1, Int(header.creditCharge))
        credits = max(0, credits - charge)
        let requested = max(1, Int(header.creditRequest))
        var grant = min(requested, max(0, server.settings.maxCredits - credits))
        if credits + grant == 0 { grant = 1 }
        credits += grant
        return UInt16(grant)
    }

    /// Appends a response element: the header, then `body` (at most `bodyCapacity` bytes),
    /// then `data` by reference.
    func respond(_ request: SMB2Request, reply: SMBReply, status: NTStatus = .success, bodyCapacity: Int,
                 sessionID: UInt64? = nil, asyncID: UInt64? = nil, data: [DataSegment] = [], dataCount: Int = 0, _ body: (inout SMBWriter) -> Void) {
        let header = request.header
        let session = request.session
        if reply.encryptFor == nil, let session, session.encryptData || request.encrypted { reply.encryptFor = session }
        var signer: SMBSigner?
        if reply.encryptFor == nil, let session, let sessionSigner = session.signer, session.state == .valid || request.forceSign,
           header.flags.contains(.signed) || session.signingRequired || request.forceSign {
            signer = sessionSigner
        }
        // A failed SESSION_SETUP, or an error for an unknown session, is not signed.
        if status.isError && status != .moreProcessingRequired && header.command == SMB2Command.sessionSetup.rawValue { signer = nil }
        let credits = request.asyncID != nil && asyncID == nil ? 0 : grantCredits(header)
        let asyncID = asyncID ?? request.asyncID
        let related = header.flags.contains(.related) ? SMB2Header.Flags.related : []
        reply.append(capacity: SMB2Header.size + bodyCapacity, signer: signer, data: data, dataCount: dataCount) { writer in
            SMB2Header.writeResponse(&writer, command: header.command, status: status, creditCharge: header.creditCharge, credits: credits,
                                     flags: related, nextCommand: 0, messageID: header.messageID, asyncID: asyncID,
                                     treeID: header.treeID, sessionID: sessionID ?? session?.id ?? header.sessionID)
            body(&writer)
        }
    }

    /// The error response (MS-SMB2 §2.2.2): nine bytes of body, no error data.
    func respondError(_ request: SMB2Request, reply: SMBReply, status: NTStatus) {
        if request.header.command == SMB2Command.cancel.rawValue { return }
        respond(request, reply: reply, status: status, bodyCapacity: 9) { writer in
            writer.u16(9)
            writer.u8(0)
            writer.u8(0)
            writer.u32(0)
            writer.u8(0)
        }
    }

    /// Sends what `reply` holds as one frame (encrypted when it must be).
    func flushReply(_ reply: SMBReply) {
        flush(reply)
    }

    private func flush(_ reply: SMBReply) {
        guard !reply.elements.isEmpty, !connection.isClosing else { return }
        reply.finish()
        if let session = reply.encryptFor, let encryptor = session.encryptor {
            let plain = reply.bytes
            connection.write(capacity: 4 + SMB2Transform.headerSize + plain.count) { out in
                let length = SMB2Transform.seal(plain, session: session, encryptor: encryptor, into: out.baseAddress! + 4)
                out.storeBytes(of: UInt32(length).bigEndian, toByteOffset: 0, as: UInt32.self)
                return 4 + length
            }
            return
        }
        let total = reply.messageLength
        var prefix = UInt32(total).bigEndian
        withUnsafeBytes(of: &prefix) { connection.write($0) }
        for element in reply.elements {
            connection.write(UnsafeRawBufferPointer(start: reply.base + element.start, count: element.end - element.start))
            for segment in reply.segments[element.segmentStart..<element.segmentEnd] {
                connection.send(segment.bytes, keepingAlive: segment.owner)
            }
            if element.padAfter > 0 {
                let zeros: UInt64 = 0
                withUnsafeBytes(of: zeros) { connection.write(UnsafeRawBufferPointer(rebasing: $0[0..<element.padAfter])) }
            }
        }
    }

    /// Another connection of the same user replaced this session (reconnect): it ends, and
    /// its handles with it. Runs on this connection's loop.
    func expireSession(_ id: UInt64) {
        guard let session = sessions[id] else { return }
        removeSession(session)
    }

    // MARK: Opens

    func allocateFileID() -> UInt64 {
        defer { nextFileID &+= 1 }
        return nextFileID
    }

    /// The open a request names, checked to belong to its session and tree.
    func open(_ request: SMB2Request, at position: Int) throws(NTStatus) -> SMBOpen {
        let id = try request.fileID(at: position)
        guard let open = opens[id], open.sessionID == request.session?.id, open.treeID == request.tree?.id else { throw .fileClosed }
        return open
    }
}
