import Glibc
import Runtime

/// Serves HTTP/1.1 on one connection: parses request heads, frames bodies (Content-Length or
/// chunked), runs the responder for one request at a time on the connection's loop, and
/// keeps the connection alive between requests. Pipelined requests wait in the receive buffer
/// (reading is paused meanwhile), so responses go out in order.
///
/// Bodies: up to `HTTPLimits.wholeBodyLimit` with a Content-Length are collected whole and
/// handed over as one slice; larger and chunked bodies are streamed, one receive at a time,
/// and reading pauses whenever the responder is not asking for more (back-pressure).
///
/// Used only on its connection's loop (tasks it starts run there too), hence the unchecked
/// conformance.
final class HTTPConnection: ConnectionHandler, @unchecked Sendable {
    private enum State {
        /// Waiting for (the rest of) a request head.
        case head
        /// A head is parsed; waiting until its whole body (this many head bytes + body) is buffered.
        case awaitingWholeBody(headLength: Int, total: Int)
        /// The responder runs.
        case busy
    }

    private enum Body {
        case none
        case length(remaining: UInt64)
        case chunkSize
        case chunkData(remaining: UInt64)
        case chunkDataEnd
        case trailers
        case done
        case failed(HTTPBodyError)
    }

    let responder: HTTPResponder
    let limits: HTTPLimits
    let dateCache: HTTPDateCache
    private(set) var connection: Connection?
    private lazy var exchange = HTTPExchange(owner: self)
    private var parser = HTTPHeadParser()
    private var state = State.head
    private var body = Body.none
    /// The request whose whole body is being collected is counted in progress on the loop.
    private var countedWhileCollecting = false

    override var needsInputToFinish: Bool {
        switch (state, body) {
        case (.awaitingWholeBody, _): true
        case (.busy, .length), (.busy, .chunkSize), (.busy, .chunkData), (.busy, .chunkDataEnd), (.busy, .trailers): true
        default: false
        }
    }
    private var waiter: CheckedContinuation<Result<BodyPiece, HTTPBodyError>, Never>?
    /// When the current head started arriving (0: no partial head) and when anything last moved.
    private var headStarted: UInt64 = 0
    private var lastProgress: UInt64 = 0
    private var timer: TimerID?

    init(responder: HTTPResponder, limits: HTTPLimits, dateCache: HTTPDateCache) {
        self.responder = responder
        self.limits = limits
        self.dateCache = dateCache
    }

    /// Called once, by the factory, before any byte arrives.
    func attach(_ connection: Connection) {
        self.connection = connection
        lastProgress = monotonicNanoseconds()
        scheduleTimeoutCheck()
    }

    override func received(_ bytes: ByteSlice, on connection: Connection) -> Int {
        let raw = bytes.unsafeBytes
        var consumed = 0
        lastProgress = monotonicNanoseconds()
        while true {
            switch state {
            case .head:
                guard consumed < raw.count else { return consumed }
                switch parser.parse(UnsafeRawBufferPointer(rebasing: raw[consumed...]), into: exchange.request, limits: limits) {
                case .incomplete:
                    if headStarted == 0 { headStarted = lastProgress }
                    return consumed
                case let .failure(status, message):
                    refuse(status, message, connection)
                    return raw.count
                case let .complete(headLength):
                    headStarted = 0
                    let request = exchange.request
                    request.peer = connection.peer
                    exchange.reset()
                    // Answered even for an empty body: botocore, having sent "Expect: 100-continue"
                    // with Content-Length 0, takes the final response as the interim one and then
                    // misreads the next response on the connection (a 120 s read timeout).
                    if request.expectsContinue {
                        connection.write(UnsafeRawBufferPointer(start: Self.continueLine.utf8Start, count: Self.continueLine.utf8CodeUnitCount))
                    }
                    if request.isChunked {
                        consumed += headLength
                        startStreaming(.chunkSize, connection)
                    } else if let length = request.contentLength, length > 0 {
                        if length <= UInt64(limits.wholeBodyLimit) {
                            state = .awaitingWholeBody(headLength: headLength, total: headLength + Int(length))
                            // In progress from its head on, so a draining server waits for the body.
                            connection.loop.requestStarted()
                            countedWhileCollecting = true
                            // Re-enter: the body may already be here.
                            continue
                        }
                        consumed += headLength
                        startStreaming(.length(remaining: length), connection)
                    } else {
                        consumed += headLength
                        body = .none
                        dispatch(connection)
                    }
                }
            case let .awaitingWholeBody(headLength, total):
                guard raw.count - consumed >= total else {
                    connection.expect(bytes: total)
                    return consumed
                }
                exchange.wholeBody = bytes.slice((consumed + headLength)..<(consumed + total))
                exchange.wholeBody!.retain()
                consumed += total
                body = .done
                dispatch(connection)
            case .busy:
                guard consumed < raw.count || isBodyFinishedAwaitingDelivery else {
                    if isStreamingBody { connection.expect(bytes: streamReceiveSize) }
                    return consumed
                }
                guard isStreamingBody, waiter != nil else {
                    // Nobody wants these bytes now: the next pipelined request, or body bytes
                    // ahead of the responder. Keep them buffered and stop reading.
                    connection.pauseReading()
                    return consumed
                }
                let used = deliverBody(bytes, from: consumed, connection)
                consumed += used
                // Nothing usable yet (a partial chunk line): wait for more bytes.
                if used == 0 && waiter != nil { return consumed }
            }
        }
    }

    /// A body piece crossing a continuation; it never leaves the loop thread.
    struct BodyPiece: @unchecked Sendable {
        var slice: ByteSlice?
    }

    private static let continueLine: StaticString = "HTTP/1.1 100 Continue\r\n\r\n"

    /// Receives during a streamed body are at least this large (fewer, larger VFS writes).
    private var streamReceiveSize: Int {
        if case let .length(remaining) = body { return Int(min(remaining, 1 << 20)) }
        return 1 << 20
    }

    private var isStreamingBody: Bool {
        switch body {
        case .length, .chunkSize, .chunkData, .chunkDataEnd, .trailers: return true
        case .done: return waiter != nil
        case .none, .failed: return false
        }
    }

    private var isBodyFinishedAwaitingDelivery: Bool {
        if case .done = body, waiter != nil { return true }
        return false
    }

    private func startStreaming(_ initial: Body, _ connection: Connection) {
        body = initial
        dispatch(connection)
    }

    /// Parses body framing at `from` and hands the waiting responder one piece (or the end, or
    /// an error). Returns the bytes consumed.
    private func deliverBody(_ bytes: ByteSlice, from start: Int, _ connection: Connection) -> Int {
        let raw = bytes.unsafeBytes
        var position = start
        while true {
            let available = raw.count - position
            switch body {
            case let .length(remaining):
                let count = Int(min(UInt64(available), remaining))
                guard count > 0 else { return position - start }
                let left = remaining - UInt64(count)
                body = left == 0 ? .done : .length(remaining: left)
                hand(bytes.slice(position..<(position + count)))
                return position + count - start
            case .chunkSize:
                guard let lf = memchrIndex(raw, from: position, limit: limits.maxChunkLine) else {
                    if available > limits.maxChunkLine { fail(.malformed, connection) }
                    return position - start
                }
                guard let size = Self.chunkSize(UnsafeRawBufferPointer(rebasing: raw[position..<lf])) else {
                    fail(.malformed, connection)
                    return raw.count - start
                }
                position = lf + 1
                body = size == 0 ? .trailers : .chunkData(remaining: size)
            case let .chunkData(remaining):
                let count = Int(min(UInt64(available), remaining))
                guard count > 0 else { return position - start }
                let left = remaining - UInt64(count)
                body = left == 0 ? .chunkDataEnd : .chunkData(remaining: left)
                hand(bytes.slice(position..<(position + count)))
                return position + count - start
            case .chunkDataEnd:
                if available >= 1 && raw[position] == 0x0A {
                    position += 1
                } else if available >= 2 && raw[position] == 0x0D && raw[position + 1] == 0x0A {
                    position += 2
                } else if available >= 2 || (available == 1 && raw[position] != 0x0D) {
                    fail(.malformed, connection)
                    return raw.count - start
                } else {
                    return position - start
                }
                body = .chunkSize
            case .trailers:
                guard let lf = memchrIndex(raw, from: position, limit: limits.maxChunkLine) else {
                    if available > limits.maxChunkLine { fail(.malformed, connection) }
                    return position - start
                }
                let empty = lf == position || (lf == position + 1 && raw[position] == 0x0D)
                position = lf + 1
                if empty { body = .done }
            case .done:
                hand(nil)
                return position - start
            case .none, .failed:
                return position - start
            }
        }
    }

    private func memchrIndex(_ raw: UnsafeRawBufferPointer, from: Int, limit: Int) -> Int? {
        guard from < raw.count, let base = raw.baseAddress else { return nil }
        let span = min(raw.count - from, limit + 1)
        guard let hit = memchr(base + from, 0x0A, span) else { return nil }
        return UnsafeRawPointer(hit) - base
    }

    /// "1a2b" or "1a2b;ext=value" (RFC 9112 §7.1), with an optional CR before the LF.
    static func chunkSize(_ line: UnsafeRawBufferPointer) -> UInt64? {
        var value: UInt64 = 0
        var digits = 0
        for b in line {
            let digit: UInt64
            switch b {
            case 0x30...0x39: digit = UInt64(b - 0x30)
            case 0x41...0x46: digit = UInt64(b - 0x41 + 10)
            case 0x61...0x66: digit = UInt64(b - 0x61 + 10)
            case UInt8(ascii: ";"), 0x0D, 0x20, 0x09: return digits > 0 ? value : nil
            default: return nil
            }
            digits += 1
            if digits > 15 { return nil }
            value = value << 4 | digit
        }
        return digits > 0 ? value : nil
    }

    private func hand(_ slice: ByteSlice?) {
        guard let waiter else { return }
        self.waiter = nil
        slice?.retain()
        waiter.resume(returning: .success(BodyPiece(slice: slice)))
    }

    private func fail(_ error: HTTPBodyError, _ connection: Connection) {
        body = .failed(error)
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: .failure(error))
        }
        exchange.closeAfterResponse()
    }

    /// The responder asks for the next body piece.
    func nextBodyChunk() async throws(HTTPBodyError) -> ByteSlice? {
        switch body {
        case .none, .done: return nil
        case let .failed(error): throw error
        default: break
        }
        guard let connection, !connection.isClosing else { throw .truncated }
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<BodyPiece, HTTPBodyError>, Never>) in
            waiter = continuation
            lastProgress = monotonicNanoseconds()
            // Offers what is buffered (which may answer at once) and reads on.
            connection.pauseReading()
            connection.resumeReading()
        }
        return try result.get().slice
    }

    private func dispatch(_ connection: Connection) {
        state = .busy
        let exchange = self.exchange
        let responder = self.responder
        let loop = connection.loop
        if countedWhileCollecting {
            countedWhileCollecting = false
        } else {
            loop.requestStarted()
        }
        Task(executorPreference: loop) {
            await responder.serve(exchange)
            if let connection = self.connection { self.finished(connection) }
            loop.requestFinished()
        }
    }

    private func finished(_ connection: Connection) {
        exchange.wholeBody?.release()
        exchange.wholeBody = nil
        if !exchange.responded {
            exchange.respond(.internalServerError, body: "")
        }
        let bodyComplete: Bool
        switch body {
        case .none, .done: bodyComplete = true
        default: bodyComplete = false
        }
        state = .head
        body = .none
        if exchange.closeAfter || !bodyComplete || connection.isClosing {
            // Unread body bytes cannot be told from the next request: close.
            connection.close()
            return
        }
        lastProgress = monotonicNanoseconds()
        // Serve what is already buffered (pipelined requests), then read on.
        connection.pauseReading()
        connection.resumeReading()
    }

    /// Answers a malformed request and closes the connection (the byte stream cannot be trusted).
    private func refuse(_ status: HTTPStatus, _ message: String, _ connection: Connection) {
        let text = "\(message)\n"
        let head = "HTTP/1.1 \(status.code) \(status.reason)\r\nDate: \(dateCache.current())\r\nServer: dmanoel-NAS\r\nContent-Type: text/plain\r\nContent-Length: \(text.utf8.count)\r\nConnection: close\r\n\r\n"
        var response = head + text
        response.withUTF8 { connection.write(UnsafeRawBufferPointer($0)) }
        connection.close()
    }

    override func closed(_ connection: Connection, error: Int32) {
        if let timer { connection.loop.cancel(timer) }
        timer = nil
        switch body {
        case .none, .done, .failed: break
        default: body = .failed(.truncated)
        }
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: .failure(.truncated))
        }
        if case .awaitingWholeBody = state { state = .head }
        if countedWhileCollecting {
            countedWhileCollecting = false
            connection.loop.requestFinished()
        }
    }

    // MARK: Timeouts

    private var checkInterval: UInt64 {
        let shortest = min(limits.headTimeout, limits.bodyTimeout, limits.idleTimeout)
        return UInt64(max(0.05, min(5, shortest / 4)) * 1e9)
    }

    private func scheduleTimeoutCheck() {
        guard let connection else { return }
        timer = connection.loop.schedule(afterNanoseconds: checkInterval) { [weak self] in
            self?.checkTimeouts()
        }
    }

    /// Closes connections that stall: a head that does not finish (slowloris), a body that
    /// stops arriving while the responder waits for it, a keep-alive connection left idle.
    private func checkTimeouts() {
        timer = nil
        guard let connection, !connection.isClosing else { return }
        let now = monotonicNanoseconds()
        func elapsed(_ since: UInt64) -> Double { Double(now &- since) / 1e9 }
        switch state {
        case .head, .awaitingWholeBody:
            if headStarted != 0 && elapsed(headStarted) > limits.headTimeout {
                refuse(.requestTimeout, "the request was not completed within \(Int(limits.headTimeout)) s", connection)
                return
            }
            if case .awaitingWholeBody = state, elapsed(lastProgress) > limits.bodyTimeout {
                refuse(.requestTimeout, "the request body stopped arriving", connection)
                return
            }
            if headStarted == 0, elapsed(lastProgress) > limits.idleTimeout {
                connection.close()
                return
            }
        case .busy:
            if waiter != nil && elapsed(lastProgress) > limits.bodyTimeout {
                fail(.timedOut, connection)
            }
        }
        scheduleTimeoutCheck()
    }
}
