import CRuntimeShims
import Glibc

/// epoll readiness for sockets, with the loop performing the system calls itself: the fallback
/// where io_uring is unavailable or not wanted. Sockets are registered edge-triggered once; the
/// loop keeps per-connection "readable"/"writable" flags and tries an armed operation as soon as
/// its flag allows, so the connection code sees the same completion-style interface as on
/// io_uring.
final class EpollBackend {
    let epfd: Int32
    let events: UnsafeMutablePointer<epoll_event>
    static let eventCapacity = 256

    init() throws(RuntimeError) {
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epfd >= 0 else { throw RuntimeError.system("epoll_create1", errno) }
        events = .allocate(capacity: Self.eventCapacity)
    }

    deinit {
        Glibc.close(epfd)
        events.deallocate()
    }

    func add(fd: Int32, events mask: UInt32, tag: UInt64) throws(RuntimeError) {
        var event = epoll_event()
        event.events = mask
        event.data.u64 = tag
        guard epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) == 0 else { throw RuntimeError.system("epoll_ctl(ADD)", errno) }
    }

    func remove(fd: Int32) {
        var event = epoll_event()
        _ = epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &event)
    }

    /// Waits up to `timeoutNanoseconds` (nil: forever, 0: not at all); calls `body(tag, events)`.
    @inline(__always)
    func poll(timeoutNanoseconds: UInt64?, _ body: (UInt64, UInt32) -> Void) -> Int {
        let timeoutMs: Int32
        switch timeoutNanoseconds {
        case nil: timeoutMs = -1
        case 0?: timeoutMs = 0
        case let ns?: timeoutMs = Int32(clamping: (ns + 999_999) / 1_000_000)
        }
        let n = epoll_wait(epfd, events, Int32(Self.eventCapacity), timeoutMs)
        guard n > 0 else { return 0 }
        for i in 0..<Int(n) { body(events[i].data.u64, events[i].events) }
        return Int(n)
    }
}

/// Errors the runtime reports when it cannot start or serve.
public enum RuntimeError: Error, CustomStringConvertible, Equatable {
    case system(String, Int32)
    case invalidSetting(String)

    public var description: String {
        switch self {
        case let .system(call, code): return "\(call) failed: \(String(cString: strerror(code))) (errno \(code))"
        case let .invalidSetting(text): return text
        }
    }
}
