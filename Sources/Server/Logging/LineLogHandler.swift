import Glibc
import Logging
import Synchronization

/// A swift-log handler that writes one line per event — time, level, label, message and
/// metadata — with a single write(2), so lines from different threads never interleave.
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let sink: LogSink

    public init(label: String, level: Logger.Level, sink: LogSink) {
        self.label = label
        self.logLevel = level
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var text = "\(LineLogHandler.timestamp()) \(event.level.rawValue.uppercased()) [\(label)] \(event.message)"
        let merged = event.metadata.map { metadata.merging($0) { $1 } } ?? metadata
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) { text += " \(key)=\(value)" }
        if let error = event.error { text += " error=\(error)" }
        text += "\n"
        sink.write(text)
    }

    /// UTC time with milliseconds, ISO 8601.
    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var tm = tm()
        var seconds = ts.tv_sec
        gmtime_r(&seconds, &tm)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(tm.tm_year + 1900)-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }
}

/// Where log lines go: standard error or an append-only file. While the console owns the
/// terminal, lines to standard error are held back and can be shown in the console instead.
public final class LogSink: Sendable {
    private let fd: Int32
    private let ownsFD: Bool
    private let held = Mutex<(holding: Bool, lines: [String])>((false, []))
    /// Keeps the last lines for the console's log view.
    private let recent = Mutex<[String]>([])
    static let recentLimit = 200

    public static let standardError = LogSink(fd: 2, owns: false)

    private init(fd: Int32, owns: Bool) {
        self.fd = fd
        self.ownsFD = owns
    }

    /// Opens `path` for appending (created 0640 if missing).
    public static func file(_ path: String) throws(ServerError) -> LogSink {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw ServerError.startup("cannot open log file \(path): \(String(cString: strerror(errno)))") }
        return LogSink(fd: fd, owns: true)
    }

    deinit { if ownsFD { close(fd) } }

    public func write(_ line: String) {
        recent.withLock {
            $0.append(line)
            if $0.count > Self.recentLimit { $0.removeFirst($0.count - Self.recentLimit) }
        }
        let hold = held.withLock { state -> Bool in
            if state.holding { state.lines.append(line) }
            return state.holding
        }
        guard !hold else { return }
        var bytes = Array(line.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { break }
            offset += n
        }
        bytes.removeAll()
    }

    /// Holds lines back while a full-screen console owns the terminal (only for stderr).
    public func hold(_ on: Bool) {
        guard !ownsFD else { return }
        let flushed: [String] = held.withLock { state in
            state.holding = on
            defer { if !on { state.lines.removeAll() } }
            return on ? [] : state.lines
        }
        for line in flushed { write(line) }
    }

    /// The most recent lines, oldest first.
    public func recentLines(_ count: Int) -> [String] {
        recent.withLock { Array($0.suffix(count)) }
    }
}

/// Installs the process-wide logging backend once.
public enum LogSetup {
    private static let installed = Mutex<LogSink?>(nil)

    /// Routes swift-log to `sink` at `level`. Later calls only return the sink already installed.
    @discardableResult
    public static func bootstrap(level: Logger.Level, sink: LogSink = .standardError) -> LogSink {
        installed.withLock { current in
            if let current { return current }
            LoggingSystem.bootstrap { label in LineLogHandler(label: label, level: level, sink: sink) }
            current = sink
            return sink
        }
    }
}
