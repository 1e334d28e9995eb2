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
        scratch.removeAll(keepingCapacity: true)
        var writer = HTTPHeaderWriter(bytes: scratch)
        writer.statusLine(status)
        writer.add("Date", owner.dateCache.current())
        writer.add("Server", "dmanoel-NAS")
        headers(&writer)
        if let contentLength { writer.add("Content-Length", contentLength) }
        if closeAfter { writer.add("Connection", "close") }
        writer.end()
        scratch = writer.bytes
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
        bytes.append(contentsOf: "HTTP/1.1 ".utf8)
        appendDecimal(UInt64(status.code))
        bytes.append(0x20)
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: status.reason.utf8Start, count: status.reason.utf8CodeUnitCount))
        bytes.append(contentsOf: [0x0D, 0x0A])
    }

    public mutating func add(_ name: StaticString, _ value: String) {
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        bytes.append(contentsOf: [0x3A, 0x20])
        appendValue(value)
        bytes.append(contentsOf: [0x0D, 0x0A])
    }

    /// Never lets a value break the head: CR and LF become spaces.
    private mutating func appendValue(_ value: String) {
        if value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A }) {
            for b in value.utf8 { bytes.append(b == 0x0D || b == 0x0A ? 0x20 : b) }
        } else {
            bytes.append(contentsOf: value.utf8)
        }
    }

    public mutating func add(_ name: StaticString, _ value: UInt64) {
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        bytes.append(contentsOf: [0x3A, 0x20])
        appendDecimal(value)
        bytes.append(contentsOf: [0x0D, 0x0A])
    }

    /// A field whose name is only known at run time (x-amz-meta-*); the name must be a token.
    public mutating func add(name: String, _ value: String) {
        for b in name.utf8 where HTTPHeadParser.isTokenByte(b) { bytes.append(b) }
        bytes.append(contentsOf: [0x3A, 0x20])
        appendValue(value)
        bytes.append(contentsOf: [0x0D, 0x0A])
    }

    mutating func end() { bytes.append(contentsOf: [0x0D, 0x0A]) }

    private mutating func appendDecimal(_ value: UInt64) {
        if value == 0 { bytes.append(0x30); return }
        var digits: (UInt64, Int) = (value, 0)
        var tmp = [UInt8](repeating: 0, count: 20)
        while digits.0 > 0 {
            tmp[digits.1] = UInt8(digits.0 % 10) + 0x30
            digits.0 /= 10
            digits.1 += 1
        }
        for i in stride(from: digits.1 - 1, through: 0, by: -1) { bytes.append(tmp[i]) }
    }
}

/// The IMF-fixdate of the current second (RFC 9110 §5.6.7), formatted once per second.
final class HTTPDateCache {
    private var second: Int = -1
    private var text = ""

    func current() -> String {
        let now = time(nil)
        if now != second {
            second = now
            text = HTTPDate.format(seconds: Int64(now))
        }
        return text
    }
}

/// Formats and parses HTTP dates (IMF-fixdate, e.g. "Tue, 24 Nov 2026 23:41:00 GMT").
public enum HTTPDate {
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    public static func format(seconds: Int64) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
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
