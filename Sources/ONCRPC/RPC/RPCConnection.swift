import Runtime

/// Limits of the RPC transport.
public struct RPCLimits: Sendable {
    /// Largest record accepted (all fragments together); larger ones close the connection.
    public var maxRecordSize: Int
    /// Calls one connection may have running at once; past it the connection stops reading
    /// (the client's TCP window fills) until calls finish, so memory stays bounded.
    public var maxCallsInFlight: Int
    /// Seconds a started record may take to arrive in full; a client that sends half a record
    /// and stalls (slowloris) has its connection closed after this.
    public var recordTimeout: Double
    /// Reply bytes a connection may have queued for a client that does not read them; past it
    /// no further call is started (pipelined ones wait in the receive buffer) until the queue
    /// has drained to half. A connection's memory is then bounded by this plus its calls in
    /// flight, whatever the client pipelines.
    public var maxQueuedReplyBytes: Int

    public init(maxRecordSize: Int = 4 * 1024 * 1024, maxCallsInFlight: Int = 128, recordTimeout: Double = 30,
                maxQueuedReplyBytes: Int = 4 * 1024 * 1024) {
        self.maxRecordSize = maxRecordSize
        self.maxCallsInFlight = maxCallsInFlight
        self.recordTimeout = recordTimeout
        self.maxQueuedReplyBytes = maxQueuedReplyBytes
    }
}

/// Serves ONC RPC over one TCP connection: record marking (RFC 5531 §11), call header
/// decoding, credentials, and dispatch to the programs registered on this port. Each call runs
/// as a task on the connection's loop; the record's receive buffer is retained until the call
/// has been answered, so arguments (a WRITE's data) are used in place.
///
/// Used only on its connection's loop (the tasks it starts run there too), hence the unchecked
/// conformance.
public final class RPCConnection: ConnectionHandler, @unchecked Sendable {
    private let programs: [RPCProgram]
    private let limits: RPCLimits
    private let cache: DuplicateRequestCache?
    /// Fragments of a multi-fragment record collected so far (rare: clients send one fragment).
    private var fragments: [UInt8] = []
    /// Each program's counters on this connection's loop, looked up once.
    private var stats: [ProtocolStats?] = []
    /// Calls started and not yet finished, and whether reading is paused because of them.
    private var callsInFlight = 0
    private var paused = false
    /// When the record now partly received began to arrive (0: none pending).
    private var partialSince: UInt64 = 0
    private var timer: TimerID?

    public init(programs: [RPCProgram], limits: RPCLimits, cache: DuplicateRequestCache? = nil) {
        self.programs = programs
        self.limits = limits
        self.cache = cache
    }

    public override func received(_ bytes: ByteSlice, on connection: Connection) -> Int {
        var consumed = 0
        var incomplete = false
        let raw = bytes.unsafeBytes
        while raw.count - consumed >= 4 {
            if callsInFlight >= limits.maxCallsInFlight || connection.queuedBytes > limits.maxQueuedReplyBytes {
                // Leave the rest buffered; it is offered again when calls finish and the
                // replies have drained.
                paused = true
                connection.pauseReading()
                resumeWhenAllowed(connection)
                break
            }
            let mark = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: consumed, as: UInt32.self))
            let last = mark & 0x8000_0000 != 0
            let length = Int(mark & 0x7FFF_FFFF)
            guard length + fragments.count <= limits.maxRecordSize else {
                // An oversized record cannot be skipped safely: drop the connection.
                connection.close(error: 90)  // EMSGSIZE
                return raw.count
            }
            guard raw.count - consumed - 4 >= length else {
                connection.expect(bytes: length + 4)
                incomplete = true
                break
            }
            let start = consumed + 4
            consumed = start + length
            if !last || !fragments.isEmpty {
                fragments.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)]))
                if !last { continue }
                let record = fragments
                fragments = []
                dispatchCopied(record, connection: connection)
            } else {
                dispatch(bytes.slice(start..<(start + length)), connection: connection)
            }
            // A record that was not a call closed the connection: nothing after it is served.
            if connection.isClosing { return raw.count }
        }
        if incomplete || (!paused && raw.count - consumed > 0 && raw.count - consumed < 4) {
            if partialSince == 0 {
                partialSince = monotonicNanoseconds()
                scheduleRecordCheck(connection)
            }
        } else {
            partialSince = 0
        }
        return consumed
    }

    /// Closes the connection if a record has been arriving for longer than the timeout.
    private func scheduleRecordCheck(_ connection: Connection) {
        guard timer == nil else { return }
        let interval = UInt64(max(0.05, limits.recordTimeout / 4) * 1e9)
        timer = connection.loop.schedule(afterNanoseconds: interval) { [weak self, weak connection] in
            guard let self, let connection else { return }
            self.timer = nil
            guard self.partialSince != 0, !connection.isClosing else { return }
            if Double(monotonicNanoseconds() &- self.partialSince) / 1e9 > self.limits.recordTimeout {
                connection.close(error: 110)  // ETIMEDOUT
            } else {
                self.scheduleRecordCheck(connection)
            }
        }
    }

    public override func closed(_ connection: Connection, error: Int32) {
        if let timer { connection.loop.cancel(timer) }
        timer = nil
    }


    private func dispatchCopied(_ record: [UInt8], connection: Connection) {
        let block = HeapRecord(record)
        dispatch(UnsafeRawBufferPointer(start: block.base, count: record.count), owner: .heap(block), connection: connection)
    }

    private func dispatch(_ slice: ByteSlice, connection: Connection) {
        dispatch(slice.unsafeBytes, owner: .pooled(slice), connection: connection)
    }

    /// Keeps a call's record alive; used only on the connection's loop.
    private enum RecordOwner: @unchecked Sendable {
        case pooled(ByteSlice)
        case heap(HeapRecord)
    }

    private func dispatch(_ record: UnsafeRawBufferPointer, owner: RecordOwner, connection: Connection) {
        var decoder = XDRDecoder(record)
        guard let xid = try? decoder.uint32() else { return }
        guard (try? decoder.uint32()) == RPC.MessageType.call.rawValue else {
            // Not a call: nothing sensible to answer on a server connection.
            connection.close(error: 71)  // EPROTO
            return
        }
        let call: RPCCall
        do throws(XDRError) {
            let rpcVersion = try decoder.uint32()
            let program = try decoder.uint32()
            let version = try decoder.uint32()
            let procedure = try decoder.uint32()
            if rpcVersion != RPC.version {
                RPCContext.writeDenied(connection, xid: xid, auth: nil)
                return
            }
            let auth: RPCAuth
            switch try readCredentials(&decoder) {
            case let .success(value): auth = value
            case let .failure(status):
                RPCContext.writeDenied(connection, xid: xid, auth: status)
                return
            }
            // Verifier: any flavor, bounded body, ignored.
            _ = try decoder.uint32()
            _ = try decoder.opaque(maximum: RPC.maxAuthBody)
            call = RPCCall(xid: xid, program: program, version: version, procedure: procedure, auth: auth)
        } catch {
            RPCContext.writeAccepted(connection, xid: xid, status: .garbageArguments)
            return
        }
        // Programs are matched by (number, version): NFSv3 and NFSv4 are both program 100003
        // on this port, served by different RPCProgram instances.
        guard let program = programs.first(where: { $0.number == call.program && $0.versions.contains(call.version) }) else {
            let sameNumber = programs.filter { $0.number == call.program }
            if sameNumber.isEmpty {
                RPCContext.writeAccepted(connection, xid: xid, status: .programUnavailable)
            } else {
                let low = sameNumber.map(\.versions.lowerBound).min()!
                let high = sameNumber.map(\.versions.upperBound).max()!
                RPCContext.writeAccepted(connection, xid: xid, status: .programMismatch, low: low, high: high)
            }
            return
        }
        guard program.hasProcedure(call.procedure, version: call.version) else {
            RPCContext.writeAccepted(connection, xid: xid, status: .procedureUnavailable)
            return
        }
        var cached: (DuplicateRequestCache, DuplicateRequestCache.Key)?
        if let cache, program.isNonIdempotent(call.procedure, version: call.version) {
            let key = DuplicateRequestCache.Key(host: Self.host(of: connection.peer), xid: xid, program: call.program,
                                                version: call.version, procedure: call.procedure, length: record.count,
                                                checksum: DuplicateRequestCache.checksum(record))
            switch cache.begin(key) {
            case .execute:
                cached = (cache, key)
            case .inProgress:
                return
            case let .replay(reply):
                if !reply.isEmpty { reply.withUnsafeBytes { connection.write($0) } }
                return
            }
        }
        let programIndex = programs.firstIndex { $0 === program }!
        if stats.isEmpty { stats = programs.map { connection.loop.protocolStats($0.name, operations: $0.procedureNames) } }
        let context = RPCContext(connection: connection, call: call, cache: cached, stats: stats[programIndex])
        if call.procedure == 0 {
            // NULL: answered at once, no task.
            context.reply(capacity: 0) { _ in }
            return
        }
        if case let .pooled(slice) = owner { slice.retain() }
        let arguments = decoder
        callsInFlight += 1
        let loop = connection.loop
        loop.requestStarted()
        Task(executorPreference: loop) {
            await program.serve(call, arguments: arguments, context: context)
            if case let .pooled(slice) = owner { slice.release() }
            withExtendedLifetime(owner) {}
            self.callFinished(context.connection)
            loop.requestFinished()
        }
    }

    private func callFinished(_ connection: Connection) {
        callsInFlight -= 1
        resumeWhenAllowed(connection)
    }

    /// Resumes a paused connection once half its calls have finished and its queued replies
    /// have drained to half the limit (waiting for the drain when that is what is missing).
    private func resumeWhenAllowed(_ connection: Connection) {
        guard paused, callsInFlight <= limits.maxCallsInFlight / 2, !connection.isClosing else { return }
        guard connection.queuedBytes <= limits.maxQueuedReplyBytes / 2 else {
            connection.onDrain(below: limits.maxQueuedReplyBytes / 2) { [weak self, weak connection] in
                guard let self, let connection, self.paused, !connection.isClosing,
                      connection.queuedBytes <= self.limits.maxQueuedReplyBytes / 2 else { return }
                self.resumeWhenAllowed(connection)
            }
            return
        }
        paused = false
        connection.resumeReading()
    }

    /// The address without the port: retransmissions may come from a new connection.
    static func host(of peer: String) -> String {
        guard let colon = peer.lastIndex(of: ":") else { return peer }
        return String(peer[..<colon])
    }

    /// AUTH_NONE or AUTH_SYS (RFC 5531 appendix A); anything else is rejected as too weak.
    private func readCredentials(_ decoder: inout XDRDecoder) throws(XDRError) -> Result<RPCAuth, RPC.AuthStatus> {
        let flavor = try decoder.uint32()
        let body = try decoder.opaque(maximum: RPC.maxAuthBody)
        switch flavor {
        case RPC.AuthFlavor.none.rawValue:
            return .success(.none)
        case RPC.AuthFlavor.sys.rawValue:
            var sys = XDRDecoder(body)
            do throws(XDRError) {
                _ = try sys.uint32()  // stamp
                let machine = try sys.string(maximum: 255)
                let uid = try sys.uint32()
                let gid = try sys.uint32()
                let count = Int(try sys.uint32())
                guard count <= 16 else { return .failure(.badCredentials) }
                var groups: [UInt32] = []
                groups.reserveCapacity(count)
                for _ in 0..<count { groups.append(try sys.uint32()) }
                return .success(.sys(uid: uid, gid: gid, groups: groups, machine: machine))
            } catch {
                return .failure(.badCredentials)
            }
        default:
            return .failure(.tooWeak)
        }
    }
}

/// A record assembled from several fragments, kept alive while its call runs.
final class HeapRecord: @unchecked Sendable {
    let base: UnsafeMutableRawPointer

    init(_ bytes: [UInt8]) {
        base = .allocate(byteCount: max(bytes.count, 1), alignment: 8)
        bytes.withUnsafeBytes { if !$0.isEmpty { base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
    }

    deinit { base.deallocate() }
}
