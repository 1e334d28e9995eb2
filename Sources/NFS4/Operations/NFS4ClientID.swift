import ONCRPC
import Runtime
import VFS

extension NFS4Compound {
    // MARK: NFSv4.0 client ids

    /// SETCLIENTID (RFC 7530 §16.33): a new unconfirmed record for each call; the confirmed
    /// one it replaces goes at SETCLIENTID_CONFIRM.
    func setclientid() throws(NFS4Error) {
        let verifier = try fixed(8).loadUnaligned(as: UInt64.self)
        let ownerID = Array(try opaque(maximum: 1024))
        _ = try uint32()                       // cb_program
        _ = try opaque(maximum: 128)           // r_netid
        _ = try opaque(maximum: 128)           // r_addr
        _ = try uint32()                       // callback_ident
        let now = monotonicNanoseconds()
        let (clientid, confirm) = try state.withTables { t throws(NFS4Error) -> (UInt64, UInt64) in
            // Same client, same verifier, already confirmed: a callback update keeps the id.
            if let existing = t.clients.values.first(where: { $0.minor == 0 && $0.ownerID == ownerID && $0.verifier == verifier && $0.confirmed }) {
                existing.confirmVerifier = UInt64.random(in: 1...UInt64.max)
                existing.lastRenew = now
                return (existing.id, existing.confirmVerifier)
            }
            // Forget earlier unconfirmed records of this client.
            for (id, client) in t.clients where client.ownerID == ownerID && !client.confirmed && client.minor == 0 {
                t.clients[id] = nil
            }
            let client = NFS4Client(id: state.newClientID(&t), ownerID: ownerID, verifier: verifier, minor: 0, now: now)
            client.confirmVerifier = UInt64.random(in: 1...UInt64.max)
            t.clients[client.id] = client
            return (client.id, client.confirmVerifier)
        }
        out.uint32(NFS4Status.ok.rawValue)
        out.uint64(clientid)
        withUnsafeBytes(of: confirm) { out.fixedOpaque($0) }
    }

    func setclientidConfirm() throws(NFS4Error) {
        let clientid = try uint64()
        let verifier = try fixed(8).loadUnaligned(as: UInt64.self)
        var released: [OpenFile] = []
        try state.withTables { t throws(NFS4Error) in
            guard let client = t.clients[clientid], client.confirmVerifier == verifier else { throw .status(.staleClientid) }
            if !client.confirmed {
                // A rebooted client: its earlier confirmed record and state go.
                for (id, other) in t.clients where id != clientid && other.ownerID == client.ownerID && other.minor == 0 {
                    released += state.removeClient(&t, id)
                }
                client.confirmed = true
            }
            client.lastRenew = monotonicNanoseconds()
        }
        for open in released { open.close() }
        out.uint32(NFS4Status.ok.rawValue)
    }

    func renew() throws(NFS4Error) {
        let clientid = try uint64()
        try state.withTables { t throws(NFS4Error) in
            let client = try state.client(&t, clientid)
            guard client.confirmed else { throw .status(.staleClientid) }
        }
        out.uint32(NFS4Status.ok.rawValue)
    }

    /// RELEASE_LOCKOWNER (4.0): forgets a lock-owner's stateids; refused while it holds locks.
    func releaseLockowner() throws(NFS4Error) {
        let clientid = try uint64()
        let owner = Array(try opaque(maximum: 1024))
        try releaseLockOwner(clientid: clientid, owner: owner)
        out.uint32(NFS4Status.ok.rawValue)
    }

    func releaseLockOwner(clientid: UInt64, owner bytes: [UInt8]) throws(NFS4Error) {
        try state.withTables { t throws(NFS4Error) in
            _ = try state.client(&t, clientid)
            let key = NFS4State.OwnerKey(clientid: clientid, lock: true, bytes: bytes)
            guard let owner = t.owners[key] else { return }
            let entries = t.states.values.filter { $0.kind == .lock && $0.owner === owner }
            for entry in entries where entry.openFile.state.locks.contains(where: { $0.owner == owner.stateOwner }) {
                throw .status(.locksHeld)
            }
            for entry in entries { state.removeEntry(&t, entry) }
            t.owners[key] = nil
        }
    }

    // MARK: NFSv4.1 client ids and sessions

    /// EXCHANGE_ID (RFC 8881 §18.35): SP4_NONE only, no pNFS.
    func exchangeID() throws(NFS4Error) {
        let verifier = try fixed(8).loadUnaligned(as: UInt64.self)
        let ownerID = Array(try opaque(maximum: 1024))
        _ = try uint32()  // flags
        let protect = try uint32()
        guard protect == 0 else { throw .status(.encrAlgUnsupp) }
        let implCount = try uint32()
        guard implCount <= 1 else { throw .status(.badxdr) }
        if implCount == 1 {
            _ = try opaque(maximum: 1024)
            _ = try opaque(maximum: 1024)
            _ = try uint64()
            _ = try uint32()
        }
        let now = monotonicNanoseconds()
        var released: [OpenFile] = []
        let client = state.tables.withLock { t -> NFS4Client in
            if let existing = t.clients.values.first(where: { $0.minor >= 1 && $0.ownerID == ownerID }) {
                if existing.verifier == verifier {
                    existing.lastRenew = now
                    return existing
                }
                // The client restarted: what it held is gone.
                released = state.removeClient(&t, existing.id)
            }
            let client = NFS4Client(id: state.newClientID(&t), ownerID: ownerID, verifier: verifier, minor: minor, now: now)
            t.clients[client.id] = client
            return client
        }
        for open in released { open.close() }
        out.uint32(NFS4Status.ok.rawValue)
        out.uint64(client.id)
        out.uint32(client.createSessionSeq)
        out.uint32(0x0001_0000 | (client.confirmed ? 0x8000_0000 : 0))  // USE_NON_PNFS, CONFIRMED_R
        out.uint32(0)  // SP4_NONE
        out.uint64(0)  // server_owner.so_minor_id
        out.opaque(state.serverOwner)
        out.opaque(state.serverOwner)  // server_scope
        out.uint32(0)  // no server_impl_id
    }

    struct ChannelAttributes {
        var headerPad: UInt32, maxRequest: UInt32, maxResponse: UInt32, maxResponseCached: UInt32, maxOperations: UInt32, maxRequests: UInt32

        func encode(_ w: inout XDRWriter) {
            w.uint32(headerPad)
            w.uint32(maxRequest)
            w.uint32(maxResponse)
            w.uint32(maxResponseCached)
            w.uint32(maxOperations)
            w.uint32(maxRequests)
            w.uint32(0)  // no rdma_ird
        }
    }

    func channelAttributes() throws(NFS4Error) -> ChannelAttributes {
        let value = ChannelAttributes(headerPad: try uint32(), maxRequest: try uint32(), maxResponse: try uint32(),
                                      maxResponseCached: try uint32(), maxOperations: try uint32(), maxRequests: try uint32())
        let ird = try uint32()
        guard ird <= 1 else { throw .status(.badxdr) }
        if ird == 1 { _ = try uint32() }
        return value
    }

    func skipCallbackSecurity() throws(NFS4Error) {
        let count = try uint32()
        guard count <= 16 else { throw .status(.badxdr) }
        for _ in 0..<count {
            switch try uint32() {
            case 0: break
            case 1:
                _ = try uint32()
                _ = try opaque(maximum: 255)
                _ = try uint32()
                _ = try uint32()
                let groups = try uint32()
                guard groups <= 16 else { throw .status(.badxdr) }
                for _ in 0..<groups { _ = try uint32() }
            case 6:
                _ = try uint32()
                _ = try opaque(maximum: 1024)
                _ = try opaque(maximum: 1024)
            default: throw .status(.badxdr)
            }
        }
    }

    /// CREATE_SESSION (RFC 8881 §18.36): confirms the client; the reply of the last one is
    /// kept for a retry with the same sequence id.
    func createSession() throws(NFS4Error) {
        let clientid = try uint64()
        let sequence = try uint32()
        _ = try uint32()  // flags: no persistence, no back channel
        let fore = try channelAttributes()
        let back = try channelAttributes()
        _ = try uint32()  // cb_program
        try skipCallbackSecurity()
        let result = try state.withTables { t throws(NFS4Error) -> [UInt8] in
            guard let client = t.clients[clientid], client.minor >= 1 else { throw .status(.staleClientid) }
            if sequence == client.createSessionSeq &- 1, let reply = client.createSessionReply { return reply }
            guard sequence == client.createSessionSeq else { throw .status(.seqMisordered) }
            let slots = Int(min(max(fore.maxRequests, 1), 64))
            let granted = ChannelAttributes(headerPad: 0, maxRequest: min(fore.maxRequest, 1_049_600),
                                            maxResponse: min(fore.maxResponse, 1_049_600),
                                            maxResponseCached: min(fore.maxResponseCached, 64 * 1024),
                                            maxOperations: min(max(fore.maxOperations, 1), UInt32(NFS4Compound.maxOperations)),
                                            maxRequests: UInt32(slots))
            let backGranted = ChannelAttributes(headerPad: 0, maxRequest: min(back.maxRequest, 4096), maxResponse: min(back.maxResponse, 4096),
                                                maxResponseCached: 0, maxOperations: min(back.maxOperations, 2), maxRequests: 1)
            t.nextID += 1
            let id = SessionID(high: clientid, low: t.nextID ^ (UInt64(state.boot) << 32))
            let session = NFS4Session(id: id, client: client, slotCount: slots, maxOperations: granted.maxOperations,
                                      maxRequestSize: granted.maxRequest, maxResponseSize: granted.maxResponse,
                                      maxResponseSizeCached: granted.maxResponseCached)
            state.insertSession(session)
            client.sessions.append(id)
            client.confirmed = true
            client.lastRenew = monotonicNanoseconds()
            var reply = XDRWriter()
            reply.uint32(NFS4Status.ok.rawValue)
            reply.uint64(id.high)
            reply.uint64(id.low)
            reply.uint32(sequence)
            reply.uint32(0)
            granted.encode(&reply)
            backGranted.encode(&reply)
            client.createSessionReply = reply.bytes
            client.createSessionSeq = sequence &+ 1
            return reply.bytes
        }
        out.append(result)
    }

    func sessionID() throws(NFS4Error) -> SessionID {
        let raw = try fixed(16)
        return SessionID(high: UInt64(bigEndian: raw.loadUnaligned(as: UInt64.self)),
                         low: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
    }

    func destroySession() throws(NFS4Error) {
        let id = try sessionID()
        guard let session = state.removeSession(id) else { throw .status(.badsession) }
        state.tables.withLock { t in t.clients[session.clientid]?.sessions.removeAll { $0 == id } }
        if self.session?.id == id { self.session = nil }
        out.uint32(NFS4Status.ok.rawValue)
    }

    func destroyClientid() throws(NFS4Error) {
        let clientid = try uint64()
        var released: [OpenFile] = []
        try state.withTables { t throws(NFS4Error) in
            guard let client = t.clients[clientid] else { throw .status(.staleClientid) }
            guard client.sessions.isEmpty else { throw .status(.clientidBusy) }
            released = state.removeClient(&t, clientid)
        }
        for open in released { open.close() }
        out.uint32(NFS4Status.ok.rawValue)
    }

    /// SEQUENCE (RFC 8881 §18.46): the slot decides between running the compound, answering
    /// a retry from the slot's cached reply, and refusing.
    func sequence() throws(NFS4Error) {
        let id = try sessionID()
        let seqid = try uint32()
        let slotID = try uint32()
        _ = try uint32()  // highest_slotid
        let cache = try bool()
        guard let session = state.session(id) else { throw .status(.badsession) }
        // The whole COMPOUND's arguments against the size the session agreed to.
        if args.bytes.count > Int(session.maxRequestSize) { throw .status(.reqTooBig) }
        switch session.begin(slot: Int(slotID), seqid: seqid) {
        case let .error(status):
            throw .status(status)
        case let .replay(reply):
            replayed = reply
            throw .written(.ok)
        case .execute:
            break
        }
        self.session = session
        slot = Int(slotID)
        cacheThis = cache
        // The lease is renewed through the session's own client reference: no shared lock.
        let client = session.client
        client.lastRenew = monotonicNanoseconds()
        guard !client.gone.load(ordering: .relaxed) else {
            session.finish(slot: slot, reply: nil)
            self.session = nil
            throw .status(.badsession)
        }
        out.uint32(NFS4Status.ok.rawValue)
        out.uint64(id.high)
        out.uint64(id.low)
        out.uint32(seqid)
        out.uint32(slotID)
        out.uint32(UInt32(session.slotCount - 1))
        out.uint32(UInt32(session.slotCount - 1))
        out.uint32(0)  // status flags
    }

    /// BIND_CONN_TO_SESSION: the fore channel only (no back channel is offered).
    func bindConnToSession() throws(NFS4Error) {
        let id = try sessionID()
        _ = try uint32()
        _ = try bool()
        guard state.session(id) != nil else { throw .status(.badsession) }
        out.uint32(NFS4Status.ok.rawValue)
        out.uint64(id.high)
        out.uint64(id.low)
        out.uint32(1)  // CDFS4_FORE
        out.bool(false)
    }

    /// BACKCHANNEL_CTL: this server never calls back, so there is no back channel to control.
    func backchannelCtl() throws(NFS4Error) {
        throw .status(.notsupp)
    }

    func reclaimComplete() throws(NFS4Error) {
        _ = try bool()
        guard let session else { throw .status(.opNotInSession) }
        try state.withTables { t throws(NFS4Error) in
            guard let client = t.clients[session.clientid] else { throw .status(.staleClientid) }
            if client.reclaimComplete { throw .status(.completeAlready) }
            client.reclaimComplete = true
        }
        out.uint32(NFS4Status.ok.rawValue)
    }

    /// TEST_STATEID: each stateid's own status.
    func testStateid() throws(NFS4Error) {
        let count = try uint32()
        guard count <= 1024 else { throw .status(.badxdr) }
        var ids: [Stateid] = []
        for _ in 0..<count {
            ids.append(Stateid(seqid: try uint32(), boot: try uint32(), id: try uint64()))
        }
        let statuses = state.tables.withLock { t -> [NFS4Status] in
            ids.map { stateid in
                do throws(NFS4Error) {
                    _ = try state.entry(&t, stateid, file: nil, minor: minor)
                    return .ok
                } catch {
                    if case let .status(status) = error { return status }
                    return .badStateid
                }
            }
        }
        out.uint32(NFS4Status.ok.rawValue)
        out.uint32(UInt32(statuses.count))
        for status in statuses { out.uint32(status.rawValue) }
    }

    /// FREE_STATEID: lock stateids without locks go; open stateids must be closed instead.
    func freeStateid() throws(NFS4Error) {
        let stateid = try self.stateid()
        try state.withTables { t throws(NFS4Error) in
            let entry = try state.entry(&t, stateid, file: nil, minor: minor)
            if entry.kind == .open { throw .status(.locksHeld) }
            if entry.openFile.state.locks.contains(where: { $0.owner == entry.owner.stateOwner }) { throw .status(.locksHeld) }
            state.removeEntry(&t, entry)
        }
        out.uint32(NFS4Status.ok.rawValue)
    }
}
