import Glibc
import Runtime
import Synchronization

/// A server reached through its admin API, seen through the same `ServerControl` interface as
/// the server in this process, so `dmanoel-nas console --connect` looks the same as `serve
/// --console`. Blocking HTTP/1.1 over one keep-alive connection (reopened when it drops);
/// meant for the console's thread.
public final class RemoteServer: ServerControl, Sendable {
    public let host: String
    public let port: Int
    private struct State {
        var socket: Int32 = -1
        var last: ServerStatus?
        var notes: [String] = []
    }
    private let state = Mutex(State())
    /// Seconds to wait for a connection or an answer.
    static let timeout = 5

    /// "HOST:PORT", "[v6]:PORT" or "HOST" (port 9870).
    public init(address: String) throws(ServerError) {
        var hostPart = address
        var portPart = "\(ServerSettings.defaultAdminPort)"
        if address.hasPrefix("["), let end = address.firstIndex(of: "]") {
            hostPart = String(address[address.index(after: address.startIndex)..<end])
            let rest = address[address.index(after: end)...]
            if rest.hasPrefix(":") { portPart = String(rest.dropFirst()) }
        } else if let colon = address.lastIndex(of: ":"), address.firstIndex(of: ":") == colon {
            hostPart = String(address[..<colon])
            portPart = String(address[address.index(after: colon)...])
        }
        guard let port = Int(portPart), (1...65535).contains(port), !hostPart.isEmpty else {
            throw .startup("\(address) is not HOST:PORT (e.g. 127.0.0.1:9870)")
        }
        host = hostPart
        self.port = port
    }

    deinit {
        state.withLock { if $0.socket >= 0 { close($0.socket) } }
    }

    /// The current status; throws when the server cannot be reached or answers nonsense.
    public func fetchStatus() throws(ServerError) -> ServerStatus {
        let (code, body) = try request("GET", "/api/v1/status", body: nil)
        guard code == 200 else { throw .startup("the admin API answered \(code): \(String(decoding: body, as: UTF8.self))") }
        guard let json = try? JSONValue.parse(bytes: body), let status = ServerStatus(json: json) else {
            throw .startup("the admin API's status is not what this console understands (another version?)")
        }
        state.withLock { $0.last = status }
        return status
    }

    public func status() -> ServerStatus {
        do {
            return try fetchStatus()
        } catch {
            return state.withLock { state in
                let note = "lost the admin API at \(host):\(port): \(error)"
                if state.notes.last != note { state.notes.append(note) }
                return state.last!
            }
        }
    }

    public func apply(_ change: TuningChange) -> Result<String, ServerError> {
        do {
            let (code, body) = try request("POST", "/api/v1/tuning", body: Array(change.jsonValue().serialized(pretty: false).utf8))
            let json = try? JSONValue.parse(bytes: body)
            if code == 200, let text = json?["applied"]?.stringValue { return .success(text) }
            return .failure(.startup(json?["error"]?.stringValue ?? "the admin API answered \(code)"))
        } catch {
            return .failure(error)
        }
    }

    public func saveTuning() -> Result<String, ServerError> {
        do {
            let (code, body) = try request("POST", "/api/v1/tuning/save", body: [])
            let json = try? JSONValue.parse(bytes: body)
            if code == 200, let text = json?["saved"]?.stringValue { return .success(text) }
            return .failure(.startup(json?["error"]?.stringValue ?? "the admin API answered \(code)"))
        } catch {
            return .failure(error)
        }
    }

    public func recentLogLines(_ count: Int) -> [String] {
        var lines: [String] = []
        if let (code, body) = try? request("GET", "/api/v1/log?lines=\(count)", body: nil), code == 200,
           let array = (try? JSONValue.parse(bytes: body))?.arrayValue {
            lines = array.compactMap(\.stringValue)
        }
        let notes = state.withLock { $0.notes }
        return Array((lines + notes).suffix(count))
    }

    // MARK: HTTP

    private func request(_ method: String, _ path: String, body: [UInt8]?) throws(ServerError) -> (Int, [UInt8]) {
        // One retry on a fresh connection: a keep-alive connection may have been closed.
        for attempt in 0..<2 {
            let socket = try connection()
            var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUser-Agent: dmanoel-nas-console\r\n"
            if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
            head += "\r\n"
            let out = Array(head.utf8) + (body ?? [])
            if sendAll(socket, out), let response = readResponse(socket) { return response }
            dropConnection()
            if attempt == 1 { break }
        }
        throw .startup("cannot reach the admin API at \(host):\(port)")
    }

    private func connection() throws(ServerError) -> Int32 {
        if let existing = state.withLock({ $0.socket >= 0 ? $0.socket : nil }) { return existing }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else {
            throw .startup("cannot resolve \(host)")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { throw .startup("socket: errno \(errno)") }
        var timeout = timeval(tv_sec: Self.timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let code = errno
            close(fd)
            throw .startup("cannot connect to the admin API at \(host):\(port): \(String(cString: strerror(code)))")
        }
        state.withLock { $0.socket = fd }
        return fd
    }

    private func dropConnection() {
        state.withLock { state in
            if state.socket >= 0 { close(state.socket) }
            state.socket = -1
        }
    }

    private func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    /// Reads one response with a Content-Length body (what the admin API sends).
    private func readResponse(_ fd: Int32) -> (Int, [UInt8])? {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var headEnd: Int?
        var contentLength = 0
        var code = 0
        while true {
            if let end = headEnd, buffer.count >= end + contentLength {
                return (code, Array(buffer[end..<(end + contentLength)]))
            }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            buffer.append(contentsOf: chunk[0..<n])
            if headEnd == nil, let end = findHeadEnd(buffer) {
                headEnd = end
                let head = String(decoding: buffer[0..<end], as: UTF8.self)
                let lines = head.split(separator: "\r\n")
                guard let status = lines.first?.split(separator: " "), status.count >= 2, let value = Int(status[1]) else { return nil }
                code = value
                for line in lines.dropFirst() {
                    let parts = line.split(separator: ":", maxSplits: 1)
                    if parts.count == 2, parts[0].lowercased() == "content-length" {
                        contentLength = Int(parts[1].trimmingPrefix(" ")) ?? 0
                    }
                }
                if contentLength > 64 << 20 { return nil }
            }
        }
    }

    private func findHeadEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i + 4
        }
        return nil
    }
}
