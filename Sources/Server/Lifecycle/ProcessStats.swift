import Glibc

/// CPU time and memory of this process, read from /proc.
public struct ProcessStats: Sendable, Equatable {
    /// Resident set size in bytes.
    public var residentBytes: Int
    /// User plus system CPU time in nanoseconds.
    public var cpuNanoseconds: UInt64
    public var threads: Int

    public init(residentBytes: Int, cpuNanoseconds: UInt64, threads: Int) {
        self.residentBytes = residentBytes
        self.cpuNanoseconds = cpuNanoseconds
        self.threads = threads
    }

    public static func current() -> ProcessStats {
        var stats = ProcessStats(residentBytes: 0, cpuNanoseconds: 0, threads: 0)
        if let status = readSmallFile("/proc/self/status") {
            for line in status.split(separator: "\n") {
                if line.hasPrefix("VmRSS:") {
                    stats.residentBytes = (Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0) * 1024
                } else if line.hasPrefix("Threads:") {
                    stats.threads = Int(line.split(separator: "\t").last?.trimmingSpaces ?? "") ?? 0
                }
            }
        }
        var usage = rusage()
        if getrusage(RUSAGE_SELF.rawValue, &usage) == 0 {
            let user = UInt64(usage.ru_utime.tv_sec) * 1_000_000_000 + UInt64(usage.ru_utime.tv_usec) * 1000
            let system = UInt64(usage.ru_stime.tv_sec) * 1_000_000_000 + UInt64(usage.ru_stime.tv_usec) * 1000
            stats.cpuNanoseconds = user + system
        }
        return stats
    }
}

/// Reads a small text file (under 64 KiB) such as those in /proc.
func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: 65536)
    var total = 0
    while total < bytes.count {
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
        if n <= 0 { break }
        total += n
    }
    return String(decoding: bytes[0..<total], as: UTF8.self)
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return s
    }
}
