import Glibc
import Runtime

/// One request and its response, as a responder sees them. The connection owns one exchange
/// and reuses it for each request it serves (one at a time, in order, which is what makes
/// pipelining correct).
public final class HTTPExchange: @unchecked Sendable {
    public let request = HTTPRequest()
    unowned let owner: HTTPConnection
    public var connection: Connection { owner.connection! }

    /// A body that arrived whole with the head (Content-Length up to `HTTPLimits.wholeBodyLimit`).
    var wholeBody: ByteSlice?
    var wholeBodyTaken = false
    /// Whether the head of the response has been written.
    public private(set) var responded = false
    /// The response asks the connection to close afterwards.
    var closeAfter = false
    /// Reusable space for encoding a response head.
    private var scratch: [UInt8] = []

    init(owner: HTTPConnection) {
        self.owner = owner
        scratch.reserveCapacity(1024)
    }

    func reset() {
        wholeBody = nil
        wholeBodyTaken = false
        responded = false
        closeAfter = false
    }

    // MARK: Request body

    /// Whether the request has a body at all (declared length > 0 or chunked).
    public var hasBody: Bool { request.isChunked || (request.contentLength ?? 0) > 0 }

    /// The next piece of the body, or nil at its end. The caller owns the returned slice and
    /// must `release()` it (on this loop) when done with it. Pieces are views of receive
    /// buffers: no copy.
    public func nextBodyChunk() async throws(HTTPBodyError) -> ByteSlice? {
        if let whole = wholeBody {
            if wholeBodyTaken { return nil }
            wholeBodyTaken = true
            whole.retain()
            return whole
        }
        return try await owner.nextBodyChunk()
    }

    /// The whole body copied into an array, refused past `limit` bytes (for XML documents).
    public func readBody(limit: Int) async throws(HTTPBodyError) -> [UInt8] {
        var bytes: [UInt8] = []
        while let chunk = try await nextBodyChunk() {
            defer { chunk.release() }
            if bytes.count + chunk.count > limit { throw .tooLarge }
            bytes.append(contentsOf: chunk.unsafeBytes)
        }
        return bytes
    }

    // MARK: Response

    /// Writes the response head. `contentLength` nil means no Content-Length (only for 1xx,
    /// 204 and 304). `headers` adds fields.
    public func respond(_ status: HTTPStatus, contentLength: UInt64?, headers: (inout HTTPHeaderWriter) -> Void = { _ in }) {
        precondition(!responded, "a response was already written")
        responded = true
        if !request.keepAlive { closeAfter = true }
        // The writer takes the scratch array over (a copy would make every append reallocate).
        var writer = HTTPHeaderWriter(bytes: [])
        swap(&writer.bytes, &scratch)
        writer.bytes.removeAll(keepingCapacity: true)
        writer.statusLine(status)
        owner.dateCache.appendField(to: &writer)
        writer.add("Server", "dmanoel-NAS")
        headers(&writer)
        if let contentLength { writer.add("Content-Length", contentLength) }
        if closeAfter { writer.add("Connection", "close") }
        writer.end()
        swap(&writer.bytes, &scratch)
        scratch.withUnsafeBytes { connection.write($0) }
    }

    /// A complete response with a small body (copied into the output arena).
    public func respond(_ status: HTTPStatus, body: String, headers: (inout HTTPHeaderWriter) -> Void = { _ in }) {
        var body = body
        body.withUTF8 { bytes in
            respond(status, contentLength: UInt64(bytes.count), headers: headers)
            if request.method != .head { connection.write(UnsafeRawBufferPointer(bytes)) }
        }
    }

    /// Asks the connection to close once this response is sent.
    public func closeAfterResponse() { closeAfter = true }

    /// Copies body bytes into the output.
    public func write(_ bytes: UnsafeRawBufferPointer) { connection.write(bytes) }

    /// Sends body bytes by reference; `owner` is kept alive until they are on the wire.
    public func send(_ bytes: UnsafeRawBufferPointer, keepingAlive owner: AnyObject) {
        connection.send(bytes, keepingAlive: owner)
    }

    /// Waits until at most `threshold` bytes of output are queued (streaming a large reply
    /// without holding all of it in memory). Returns false when the connection is closing.
    public func drain(below threshold: Int = 4 * 1024 * 1024) async -> Bool {
        let connection = self.connection
        if connection.queuedBytes <= threshold { return !connection.isClosing }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            connection.onDrain(below: threshold) { continuation.resume() }
        }
        return !connection.isClosing
    }
}

/// Encodes a response head into a byte array: the status line, then "Name: value" lines.
public struct HTTPHeaderWriter {
    var bytes: [UInt8]

    mutating func statusLine(_ status: HTTPStatus) {
        append("HTTP/1.1 ")
        appendDecimal(UInt64(status.code))
        bytes.append(0x20)
        append(status.reason)
        endLine()
    }

    public mutating func add(_ name: StaticString, _ value: String) {
        startField(name)
        var value = value
        value.withUTF8 { appendValue(UnsafeRawBufferPointer($0)) }
        endLine()
    }

    /// A field whose value is given as bytes (CR and LF in it become spaces).
    public mutating func add(_ name: StaticString, bytes value: UnsafeRawBufferPointer) {
        startField(name)
        appendValue(value)
        endLine()
    }

    /// A field whose value is `value` in double quotes (an ETag).
    public mutating func add(_ name: StaticString, quoted value: String) {
        startField(name)
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { appendValue(UnsafeRawBufferPointer($0)) }
        bytes.append(UInt8(ascii: "\""))
        endLine()
    }

    /// A field whose value is an HTTP date (IMF-fixdate) of `seconds` since the epoch.
    public mutating func add(_ name: StaticString, date seconds: Int64) {
        startField(name)
        HTTPDate.append(seconds: seconds, to: &bytes)
        endLine()
    }

    public mutating func add(_ name: StaticString, _ value: UInt64) {
        startField(name)
        appendDecimal(value)
        endLine()
    }

    /// A field whose name is only known at run time (x-amz-meta-*); the name must be a token.
    public mutating func add(name: String, _ value: String) {
        for b in name.utf8 where HTTPHeadParser.isTokenByte(b) { bytes.append(b) }
        bytes.append(0x3A)
        bytes.append(0x20)
        var value = value
        value.withUTF8 { appendValue(UnsafeRawBufferPointer($0)) }
        endLine()
    }

    mutating func end() { endLine() }

    @inline(__always)
    private mutating func append(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    @inline(__always)
    private mutating func startField(_ name: StaticString) {
        append(name)
        bytes.append(0x3A)
        bytes.append(0x20)
    }

    @inline(__always)
    private mutating func endLine() {
        bytes.append(0x0D)
        bytes.append(0x0A)
    }

    /// Never lets a value break the head: CR and LF become spaces.
    private mutating func appendValue(_ value: UnsafeRawBufferPointer) {
        var clean = true
        for b in value where b == 0x0D || b == 0x0A { clean = false; break }
        if clean {
            bytes.append(contentsOf: value)
        } else {
            for b in value { bytes.append(b == 0x0D || b == 0x0A ? 0x20 : b) }
        }
    }

    mutating func appendDecimal(_ value: UInt64) {
        HTTPDate.appendDecimal(value, to: &bytes)
    }
}

/// The IMF-fixdate of the current second (RFC 9110 §5.6.7), formatted once per second.
final class HTTPDateCache {
    private var second: Int = -1
    private var text: [UInt8] = []

    private func refresh() {
        let now = time(nil)
        if now != second {
            second = now
            text.removeAll(keepingCapacity: true)
            HTTPDate.append(seconds: Int64(now), to: &text)
        }
    }

    func current() -> String {
        refresh()
        return String(decoding: text, as: UTF8.self)
    }

    /// Adds the "Date" field of a response.
    func appendField(to writer: inout HTTPHeaderWriter) {
        refresh()
        text.withUnsafeBytes { writer.add("Date", bytes: $0) }
    }
}

/// Formats and parses HTTP dates (IMF-fixdate, e.g. "Tue, 24 Nov 2026 23:41:00 GMT").
public enum HTTPDate {
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    private static let dayBytes: [UInt8] = Array("SunMonTueWedThuFriSat".utf8)
    private static let monthBytes: [UInt8] = Array("JanFebMarAprMayJunJulAugSepOctNovDec".utf8)

    public static func format(seconds: Int64) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(29)
        append(seconds: seconds, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the IMF-fixdate of `seconds` ("Tue, 24 Nov 2026 23:41:00 GMT", 29 bytes).
    public static func append(seconds: Int64, to bytes: inout [UInt8]) {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        let day = Int(parts.tm_wday) * 3, month = Int(parts.tm_mon) * 3
        bytes.append(contentsOf: dayBytes[day..<(day + 3)])
        bytes.append(UInt8(ascii: ","))
        bytes.append(0x20)
        twoDigits(parts.tm_mday, &bytes)
        bytes.append(0x20)
        bytes.append(contentsOf: monthBytes[month..<(month + 3)])
        bytes.append(0x20)
        appendDecimal(UInt64(max(0, parts.tm_year + 1900)), to: &bytes)
        bytes.append(0x20)
        twoDigits(parts.tm_hour, &bytes)
        bytes.append(UInt8(ascii: ":"))
        twoDigits(parts.tm_min, &bytes)
        bytes.append(UInt8(ascii: ":"))
        twoDigits(parts.tm_sec, &bytes)
        bytes.append(contentsOf: " GMT".utf8)
    }

    @inline(__always)
    private static func twoDigits(_ value: Int32, _ bytes: inout [UInt8]) {
        bytes.append(UInt8(truncatingIfNeeded: value / 10 % 10) + 0x30)
        bytes.append(UInt8(truncatingIfNeeded: value % 10) + 0x30)
    }

    /// Appends `value` in decimal without building a string.
    static func appendDecimal(_ value: UInt64, to bytes: inout [UInt8]) {
        if value == 0 { bytes.append(0x30); return }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { scratch in
            while rest > 0 {
                scratch[count] = UInt8(rest % 10) + 0x30
                rest /= 10
                count += 1
            }
            for i in stride(from: count - 1, through: 0, by: -1) { bytes.append(scratch[i]) }
        }
    }

    /// Parses an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"); nil for anything else.
    public static func parse(_ text: String) -> Int64? {
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[0].hasSuffix(","), parts[5] == "GMT",
              let day = Int32(parts[1]), let monthIndex = months.firstIndex(of: String(parts[2])), let year = Int32(parts[3])
        else { return nil }
        let clock = parts[4].split(separator: ":")
        guard clock.count == 3, let hour = Int32(clock[0]), let minute = Int32(clock[1]), let second = Int32(clock[2]),
              (1...31).contains(day), (0...23).contains(hour), (0...59).contains(minute), (0...60).contains(second)
        else { return nil }
        var value = tm()
        value.tm_year = year - 1900
        value.tm_mon = Int32(monthIndex)
        value.tm_mday = day
        value.tm_hour = hour
        value.tm_min = minute
        value.tm_sec = second
        return Int64(timegm(&value))
    }
}
