import Crypto
import VFS

/// SESSION_SETUP and LOGOFF (MS-SMB2 §3.3.5.5, §3.3.5.6): SPNEGO-wrapped (or raw) NTLMSSP,
/// NTLMv2 against the configured users, anonymous sessions for guest shares, key
/// derivation per dialect, and the 3.1.1 preauthentication hash over the exchange.
extension SMBConnection {
    enum SessionFlag {
        static let guest: UInt16 = 0x1
        static let null: UInt16 = 0x2
        static let encryptData: UInt16 = 0x4
    }

    /// Sessions being set up at once on one connection, at most: each holds a little state
    /// before anyone has authenticated.
    static let maxPendingSessions = 4

    func sessionSetup(_ request: inout SMB2Request, reply: SMBReply) throws(NTStatus) {
        let reader = request.reader
        guard try reader.u16(at: 64) == 25 else { throw .invalidParameter }
        let flags = try reader.u8(at: 66)
        let securityMode = try reader.u8(at: 67)
        let bufferOffset = Int(try reader.u16(at: 76))
        let bufferLength = Int(try reader.u16(at: 78))
        let previousSessionID = try reader.u64(at: 80)
        let token = Array(try reader.slice(at: bufferOffset, count: bufferLength))
        guard flags & 0x1 == 0 else { throw .requestNotAccepted }  // no multichannel binding
        guard let dialect else { throw .invalidParameter }

        let session: SMBSession
        if let existing = request.session {
            session = existing
            // A valid session being set up again is re-authentication: its keys stay.
        } else {
            guard sessions.values.filter({ $0.state == .inProgress }).count < Self.maxPendingSessions else { throw .insufficientResources }
            var id: UInt64 = 0
            while id == 0 || id == .max || sessions[id] != nil { id = UInt64.random(in: 1...(UInt64.max - 1)) }
            session = SMBSession(id: id)
            session.preauthHash = preauthHash
            sessions[id] = session
            request.session = session
        }
        if dialect == .smb311 { preauthUpdate(&session.preauthHash, UnsafeRawBufferPointer(request.message)) }

        let parsed: SPNEGO.ClientToken
        do throws(NTStatus) {
            parsed = try SPNEGO.parse(token)
        } catch {
            fail(session)
            throw .invalidParameter
        }
        session.spnego = parsed.wrapped
        guard parsed.offersNTLM else {
            fail(session)
            throw .logonFailure
        }
        guard let mechToken = parsed.mechToken else {
            // SPNEGO without an NTLMSSP token yet: name the mechanism and ask for one.
            continueSetup(request, session: session, token: SPNEGO.response(.acceptIncomplete, token: nil, includeMechanism: true), reply: reply)
            return
        }
        switch NTLMServer.messageType(mechToken) {
        case 1:
            var ntlm = NTLMServer(netbiosName: server.settings.serverName, domain: server.settings.domain)
            let challenge: [UInt8]
            do throws(NTStatus) {
                challenge = try ntlm.challenge(for: mechToken)
            } catch {
                fail(session)
                throw error
            }
            session.ntlm = ntlm
            let blob = parsed.wrapped ? SPNEGO.response(.acceptIncomplete, token: challenge, includeMechanism: true) : challenge
            continueSetup(request, session: session, token: blob, reply: reply)
        case 3:
            guard let ntlm = session.ntlm else {
                fail(session)
                throw .invalidParameter
            }
            let identity: NTLMIdentity
            do throws(NTStatus) {
                identity = try ntlm.authenticate(mechToken) { self.server.user(named: $0) }
            } catch {
                fail(session)
                throw .logonFailure
            }
            session.ntlm = nil
            var sessionFlags: UInt16 = 0
            switch identity {
            case let .user(user, sessionKey):
                let reauthentication = session.state == .valid
                session.user = user
                session.anonymous = false
                session.credentials = Credentials(uid: user.uid, gid: user.gid, groups: user.groups)
                if !reauthentication {
                    session.sessionKey = sessionKey
                    session.signingRequired = server.settings.signingRequired || securityMode & UInt8(SecurityMode.signingRequired) != 0
                    session.deriveKeys(dialect: dialect, cipher: cipher, signing: signingAlgorithm)
                    if previousSessionID != 0 && previousSessionID != session.id {
                        server.expire(previousSessionID, user: user.name)
                    }
                    server.register(session.id, connection: self, user: user.name)
                }
            case .anonymous:
                session.user = nil
                session.anonymous = true
                session.credentials = Credentials(uid: 65534, gid: 65534)
                sessionFlags = SessionFlag.null
            }
            session.state = .valid
            request.forceSign = session.signer != nil && (dialect == .smb311 || session.signingRequired)
            let blob = session.spnego ? SPNEGO.response(.acceptCompleted, token: nil, includeMechanism: false) : []
            respond(request, reply: reply, bodyCapacity: 8 + blob.count) { writer in
                writer.u16(9)
                writer.u16(sessionFlags)
                writer.u16(blob.isEmpty ? 0 : 72)
                writer.u16(UInt16(blob.count))
                writer.bytes(blob)
            }
        default:
            fail(session)
            throw .invalidParameter
        }
    }

    /// A STATUS_MORE_PROCESSING_REQUIRED reply with the next token, folded into the 3.1.1
    /// preauthentication hash.
    private func continueSetup(_ request: SMB2Request, session: SMBSession, token: [UInt8], reply: SMBReply) {
        let index = reply.elements.count
        respond(request, reply: reply, status: .moreProcessingRequired, bodyCapacity: 8 + token.count, sessionID: session.id) { writer in
            writer.u16(9)
            writer.u16(0)
            writer.u16(72)
            writer.u16(UInt16(token.count))
            writer.bytes(token)
        }
        if dialect == .smb311 {
            let element = reply.elements[index]
            preauthUpdate(&session.preauthHash, UnsafeRawBufferPointer(start: reply.base + element.start, count: element.end - element.start))
        }
    }

    /// A failed setup ends the session (a re-authentication failure too).
    private func fail(_ session: SMBSession) {
        removeSession(session)
    }

    func removeSession(_ session: SMBSession) {
        server.unregister(session.id, connection: self)
        closeOpens { $0.sessionID == session.id }
        sessions[session.id] = nil
        session.trees.removeAll()
    }

    func logoff(_ request: inout SMB2Request, reply: SMBReply) throws(NTStatus) {
        guard try request.reader.u16(at: 64) == 4, let session = request.session else { throw .invalidParameter }
        respond(request, reply: reply, bodyCapacity: 4) { writer in
            writer.u16(4)
            writer.u16(0)
        }
        removeSession(session)
    }
}
