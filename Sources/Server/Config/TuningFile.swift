import Glibc
import Runtime

/// Writes live tuning back into a configuration file (the console's `w`): only the keys of the
/// `server` section that tuning changes are touched, the rest of the document keeps its
/// order; the result must load again before it replaces the file (written next to it, then
/// renamed, with the file's permissions).
enum TuningFile {
    static func update(path: String, pollMode: PollMode?, spinNanoseconds: Int?, delegationThreads: Int) throws(ServerError) -> String {
        guard let bytes = readFile(path) else { throw .startup("cannot read \(path)") }
        let document: JSONValue
        do {
            document = try JSONValue.parse(bytes: bytes)
        } catch {
            throw .startup("\(path) is no longer valid JSON (\(error)); not overwriting it")
        }
        guard var root = document.objectValue else { throw .startup("\(path) is not a JSON object; not overwriting it") }
        var server = root["server"]?.objectValue ?? JSONObject()
        var written: [String] = []
        if let pollMode {
            server["poll_mode"] = .string(pollMode.rawValue)
            written.append("poll_mode \(pollMode.rawValue)")
        }
        if let spinNanoseconds {
            server["spin_ns"] = .number(Double(spinNanoseconds))
            written.append("spin_ns \(spinNanoseconds)")
        }
        server["delegation_threads"] = .number(Double(delegationThreads))
        written.append("delegation_threads \(delegationThreads)")
        root["server"] = .object(server)
        let text = JSONValue.object(root).serialized(pretty: true) + "\n"
        do {
            _ = try Configuration.parse(text, source: path)
        } catch {
            throw .startup("the updated configuration would not load (\(error)); \(path) left as it was")
        }
        var info = stat()
        let mode = stat(path, &info) == 0 ? info.st_mode & 0o7777 : 0o600
        let temporary = path + ".tuning-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .startup("cannot write \(temporary): \(String(cString: strerror(errno)))") }
        let ok = text.utf8CString.withUnsafeBytes { raw -> Bool in
            let count = raw.count - 1
            var done = 0
            while done < count {
                let n = write(fd, raw.baseAddress! + done, count - done)
                if n <= 0 { return false }
                done += n
            }
            return fsync(fd) == 0
        }
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw .startup("cannot replace \(path): \(String(cString: strerror(errno)))")
        }
        return written.joined(separator: ", ")
    }

    private static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { return nil }
            if n == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > 16 << 20 { return nil }
        }
    }
}
