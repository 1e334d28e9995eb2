import Glibc

/// What a protocol implements to serve a connection. A class, not a protocol existential:
/// the loop calls it through a vtable, and each connection holds exactly one.
open class ConnectionHandler {
    public init() {}

    /// Called on the loop thread with all received bytes not consumed so far. Returns how many
    /// leading bytes it consumed; the rest is offered again, with more data, on the next call.
    /// A handler that keeps a slice past this call must `retain()` it.
    open func received(_ bytes: ByteSlice, on connection: Connection) -> Int {
        bytes.count
    }

    /// The connection has closed: `error` is 0 after an orderly close, else an errno value.
    open func closed(_ connection: Connection, error: Int32) {}

    /// True while a request in progress still needs bytes from the peer (an HTTP body being
    /// streamed): a draining server keeps reading such connections and no others.
    open var needsInputToFinish: Bool { false }
}

/// Builds the handler for a new connection, on the loop that will serve it.
public typealias ConnectionFactory = @Sendable (Connection) -> ConnectionHandler

/// A TCP connection owned by one loop for its whole life.
///
/// Receiving: bytes land in a pooled buffer and reach the handler as a `ByteSlice` (no copy).
/// Sending: `write` encodes small replies into the loop's shared output arena and `send`
/// queues a slice by reference; everything queued in a pass goes out in one `sendmsg` with
/// gathered iovecs when the pass ends.
public final class Connection {
    public let fd: Int32
    public let peer: String
    public unowned let loop: EventLoop
    let slot: Int
    /// Counts this connection against the server's limits until it closes.
    var limiter: ConnectionLimiter?
    var handler: ConnectionHandler?

    // Receive side.
    private var receiveBuffer: IOBuffer?
    private var receiveStart = 0
    private var receiveEnd = 0
    private var wantedBytes = 0
    var receiveArmed = false
    private var readPaused = false
    /// Set by the handler (too much work in flight): no receive is armed until it resumes.
    private var handlerPaused = false
    /// How deep the handler is inside `received` (it may resume reading from there): a `close`
    /// it makes there must not release the receive buffer under it (it may still read the
    /// slice, or retain it for the next record); the close completes when the handler returns.
    private var delivering = 0

    // Send side.
    /// Queued output: a range of a pooled buffer (manually counted) or of memory kept alive by
    /// any other object (e.g. a memfs block, by ARC).
    private struct Segment {
        var buffer: IOBuffer?
        var object: AnyObject?
        var base: UnsafeRawPointer
        var start: Int
        var end: Int

        init(buffer: IOBuffer, start: Int, end: Int) {
            self.buffer = buffer
            self.object = nil
            self.base = UnsafeRawPointer(buffer.base)
            self.start = start
            self.end = end
        }

        init(bytes: UnsafeRawBufferPointer, owner: AnyObject) {
            self.buffer = nil
            self.object = owner
            self.base = bytes.baseAddress!
            self.start = 0
            self.end = bytes.count
        }

        /// Drops this segment's hold on its memory.
        func release() {
            buffer?.release()
        }
    }
    private var segments: [Segment] = []
    private var segmentHead = 0
    /// Bytes queued and not yet acknowledged by the kernel.
    public private(set) var queuedBytes = 0
    var sendArmed = false
    private var inDirtyList = false
    static let maxIOVecs = 64
    let iovecs: UnsafeMutablePointer<iovec>
    let message: UnsafeMutablePointer<msghdr>

    // epoll readiness (unused on io_uring): what the last edge said, and which armed
    // operation still waits for one (an armed operation whose completion is already queued
    // must not be performed twice).
    var readable = true
    var writable = true
    var epollReceiveWaiting = false
    var epollSendWaiting = false

    private var closeRequested = false
    /// Who waits for queued output to shrink (a responder streaming a large reply).
    private var drainWaiter: (threshold: Int, action: () -> Void)?
    private var closeError: Int32 = 0
    public private(set) var isClosed = false

    init(fd: Int32, slot: Int, loop: EventLoop, peer: String) {
        self.fd = fd
        self.slot = slot
        self.loop = loop
        self.peer = peer
        iovecs = .allocate(capacity: Self.maxIOVecs)
        message = .allocate(capacity: 1)
        message.initialize(to: msghdr())
        message.pointee.msg_iov = iovecs
    }

    deinit {
        iovecs.deallocate()
        message.deallocate()
    }

    // MARK: Receiving

    /// Asks for the next receive to have room for at least `bytes` contiguous bytes after the
    /// unconsumed data: a parser that has read a record header calls this so a large record
    /// lands in one buffer.
    public func expect(bytes: Int) {
        wantedBytes = min(bytes, BufferPool.maxBlockSize)
    }

    func startReceiving() {
        armReceive()
    }

    /// The free space the next receive writes into.
    var receiveSpace: UnsafeMutableRawBufferPointer {
        let buffer = receiveBuffer!
        return UnsafeMutableRawBufferPointer(start: buffer.base + receiveEnd, count: buffer.capacity - receiveEnd)
    }

    private func armReceive() {
        guard !receiveArmed, !closeRequested, !readPaused, !handlerPaused else { return }
        if loop.draining, handler?.needsInputToFinish != true { return }
        prepareReceiveBuffer()
        receiveArmed = true
        let space = receiveSpace
        loop.armReceive(self, into: space.baseAddress!, count: space.count)
    }

    /// Makes sure the receive buffer has room: reuses it from the start when nobody else holds
    /// it, and moves a partial record to a bigger buffer when the wanted size does not fit.
    private func prepareReceiveBuffer() {
        let pool = loop.bufferPool!
        guard let buffer = receiveBuffer else {
            receiveBuffer = pool.take(minimumCapacity: max(BufferPool.chunkSize, wantedBytes))
            receiveStart = 0
            receiveEnd = 0
            return
        }
        let pending = receiveEnd - receiveStart
        if pending == 0 && buffer.references == 1 {
            receiveStart = 0
            receiveEnd = 0
        }
        let needed = max(wantedBytes, pending + 1)
        if buffer.capacity - receiveStart >= needed && receiveEnd < buffer.capacity { return }
        // Move the unconsumed tail (a partial record header, usually small) to a fresh buffer.
        let fresh = pool.take(minimumCapacity: max(BufferPool.chunkSize, needed))
        if pending > 0 { fresh.base.copyMemory(from: buffer.base + receiveStart, byteCount: pending) }
        buffer.release()
        receiveBuffer = fresh
        receiveStart = 0
        receiveEnd = pending
    }

    func receiveCompleted(_ result: Int32) {
        receiveArmed = false
        guard result > 0 else {
            // 0: the peer closed (or our own shutdown ended the receive).
            close(error: result == 0 || result == -ECANCELED ? 0 : -result)
            finishClose()
            return
        }
        receiveEnd += Int(result)
        loop.bytesIn &+= UInt64(result)
        if !closeRequested, let buffer = receiveBuffer, let handler {
            delivering += 1
            let consumed = handler.received(ByteSlice(buffer: buffer, range: receiveStart..<receiveEnd), on: self)
            delivering -= 1
            precondition(consumed >= 0 && consumed <= receiveEnd - receiveStart, "handler consumed more than it was given")
            receiveStart += consumed
            if receiveStart == receiveEnd { wantedBytes = 0 }
        }
        if closeRequested {
            finishClose()
        } else {
            armReceive()
        }
    }

    /// Stops reading from the peer (the handler has as much work in flight as it accepts).
    /// Bytes already received stay buffered.
    public func pauseReading() {
        handlerPaused = true
    }

    /// Resumes reading: first offers the handler what is still buffered, then arms a receive.
    public func resumeReading() {
        guard handlerPaused else { return }
        handlerPaused = false
        if !closeRequested, let buffer = receiveBuffer, let handler, receiveStart < receiveEnd {
            delivering += 1
            let consumed = handler.received(ByteSlice(buffer: buffer, range: receiveStart..<receiveEnd), on: self)
            delivering -= 1
            precondition(consumed >= 0 && consumed <= receiveEnd - receiveStart, "handler consumed more than it was given")
            receiveStart += consumed
        }
        if closeRequested {
            if delivering == 0 { finishClose() }
            return
        }
        armReceive()
    }

    // MARK: Sending

    /// Copies `bytes` into the loop's output arena and queues them.
    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        write(capacity: bytes.count) { out in
            out.copyMemory(from: bytes)
            return bytes.count
        }
    }

    /// Lets `body` encode up to `capacity` bytes straight into the output arena; it returns how
    /// many it wrote. Consecutive writes coalesce into one iovec.
    public func write(capacity: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int) {
        precondition(capacity <= BufferPool.maxBlockSize, "write larger than the largest buffer")
        let pool = loop.bufferPool!
        if loop.outputArena == nil || loop.outputArena!.capacity - loop.outputArenaUsed < capacity {
            loop.outputArena?.release()
            loop.outputArena = pool.take(minimumCapacity: max(BufferPool.chunkSize * 4, capacity))
            loop.outputArenaUsed = 0
        }
        let arena = loop.outputArena!
        let start = loop.outputArenaUsed
        let written = body(UnsafeMutableRawBufferPointer(start: arena.base + start, count: capacity))
        precondition(written >= 0 && written <= capacity, "wrote outside the reserved output space")
        guard written > 0 else { return }
        loop.outputArenaUsed += written
        if segments.count > segmentHead, segments[segments.count - 1].buffer === arena, segments[segments.count - 1].end == start, !closeRequested {
            segments[segments.count - 1].end += written
            queuedBytes += written
            markDirty()
        } else {
            arena.retain()
            enqueue(Segment(buffer: arena, start: start, end: start + written))
        }
    }

    /// Queues a slice by reference (zero copy); the connection holds a reference until sent.
    public func send(_ slice: ByteSlice) {
        guard !slice.isEmpty else { return }
        slice.retain()
        enqueue(Segment(buffer: slice.buffer, start: slice.range.lowerBound, end: slice.range.upperBound))
    }

    /// Queues bytes owned by `owner` by reference: the connection keeps `owner` alive until the
    /// kernel has sent them (zero copy for memory the VFS hands out).
    public func send(_ bytes: UnsafeRawBufferPointer, keepingAlive owner: AnyObject) {
        guard !bytes.isEmpty else { return }
        enqueue(Segment(bytes: bytes, owner: owner))
    }

    private func enqueue(_ segment: Segment) {
        if closeRequested {
            segment.release()
            return
        }
        segments.append(segment)
        queuedBytes += segment.end - segment.start
        if queuedBytes > loop.sendQueueLimit { readPaused = true }
        markDirty()
    }

    private func markDirty() {
        if !inDirtyList && !sendArmed {
            inDirtyList = true
            loop.markDirty(self)
        }
    }

    /// Called once per pass for connections with new output.
    func flush() {
        inDirtyList = false
        guard !sendArmed, segmentHead < segments.count, !isClosed, closeError == 0 else { return }
        var count = 0
        var index = segmentHead
        while index < segments.count && count < Self.maxIOVecs {
            let segment = segments[index]
            iovecs[count] = iovec(iov_base: UnsafeMutableRawPointer(mutating: segment.base + segment.start), iov_len: segment.end - segment.start)
            count += 1
            index += 1
        }
        message.pointee.msg_iovlen = count
        sendArmed = true
        loop.armSend(self)
    }

    func sendCompleted(_ result: Int32) {
        sendArmed = false
        guard result >= 0 else {
            close(error: -result)
            dropUnsentOutput()
            finishClose()
            return
        }
        var sent = Int(result)
        loop.bytesOut &+= UInt64(sent)
        queuedBytes -= sent
        while sent > 0 {
            let length = segments[segmentHead].end - segments[segmentHead].start
            if sent >= length {
                segments[segmentHead].release()
                segments[segmentHead].object = nil
                segmentHead += 1
                sent -= length
            } else {
                segments[segmentHead].start += sent
                sent = 0
            }
        }
        if segmentHead == segments.count {
            segments.removeAll(keepingCapacity: segments.capacity <= 256)
            segmentHead = 0
        } else if segmentHead > 64 {
            segments.removeFirst(segmentHead)
            segmentHead = 0
        }
        if let waiter = drainWaiter, queuedBytes <= waiter.threshold {
            drainWaiter = nil
            waiter.action()
        }
        if readPaused && queuedBytes <= loop.sendQueueLimit / 2 {
            readPaused = false
            armReceive()
        }
        if closeRequested && (closeError != 0 || segmentHead == segments.count) {
            finishClose()
        } else if segmentHead < segments.count {
            flush()
        }
    }

    /// Calls `action` once queued output is at most `threshold` bytes, or the connection is
    /// closing (check `isClosing`). At once if that is already so. One waiter at a time: a
    /// second call replaces the first, which is called first.
    public func onDrain(below threshold: Int, _ action: @escaping () -> Void) {
        if queuedBytes <= threshold || closeRequested {
            action()
            return
        }
        if let previous = drainWaiter {
            drainWaiter = nil
            previous.action()
        }
        drainWaiter = (threshold, action)
    }

    /// Whether `close` has been called (output may still be draining).
    public var isClosing: Bool { closeRequested }

    // MARK: Closing

    /// Closes the connection. With `error` 0 queued output is still sent first; with an error
    /// it is dropped. A pending receive is ended with `shutdown(SHUT_RD)`, and the handler hears
    /// `closed` exactly once, after the kernel has finished with every buffer.
    public func close(error: Int32 = 0) {
        guard !closeRequested else { return }
        closeRequested = true
        closeError = error
        if error != 0 {
            dropUnsentOutput()
            if sendArmed { Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
        }
        if receiveArmed {
            if loop.epoll != nil && epollReceiveWaiting {
                // An epoll receive still waiting for data is only a flag: nothing to wait for.
                receiveArmed = false
                epollReceiveWaiting = false
                loop.inFlight -= 1
            } else if loop.uring != nil {
                Glibc.shutdown(fd, Int32(SHUT_RD))
            }
        }
        if delivering == 0 { finishClose() }
    }

    /// Completes a close once no operation is in flight and no output is left to send.
    private func finishClose() {
        if closeRequested, let waiter = drainWaiter {
            drainWaiter = nil
            waiter.action()
        }
        guard closeRequested, !isClosed, !receiveArmed, !sendArmed else { return }
        if closeError == 0 && segmentHead < segments.count {
            flush()
            return
        }
        isClosed = true
        releaseBuffers()
        loop.remove(self)
        Glibc.close(fd)
        let handler = self.handler
        self.handler = nil
        handler?.closed(self, error: closeError)
    }

    /// Releases queued segments the kernel does not hold (everything, when no send is armed).
    private func dropUnsentOutput() {
        guard !sendArmed else { return }
        for index in segmentHead..<segments.count { segments[index].release() }
        segments.removeAll()
        segmentHead = 0
        queuedBytes = 0
    }

    private func releaseBuffers() {
        receiveBuffer?.release()
        receiveBuffer = nil
        for index in segmentHead..<segments.count { segments[index].release() }
        segments.removeAll()
        segmentHead = 0
        queuedBytes = 0
    }

    /// Loop shutdown: drop everything without waiting for the kernel (the ring goes away too).
    func abandon() {
        guard !isClosed else { return }
        isClosed = true
        closeRequested = true
        releaseBuffers()
        Glibc.close(fd)
        handler?.closed(self, error: ECANCELED)
        handler = nil
    }
}
