import CURing
import Glibc

/// One io_uring, owned by one loop thread and created on it (`IORING_SETUP_SINGLE_ISSUER`
/// requires the creator to be the submitter). Submissions are queued during a pass and entered
/// into the kernel once at its end; completions are peeked without a system call.
final class URingBackend {
    let ring: UnsafeMutablePointer<io_uring>
    private let batch: UnsafeMutablePointer<UnsafeMutablePointer<io_uring_cqe>?>
    static let batchSize = 256
    /// Submissions handed to the kernel at the last `submit`.
    private(set) var lastSubmitted = 0

    init(entries: UInt32) throws(RuntimeError) {
        ring = .allocate(capacity: 1)
        ring.initialize(to: io_uring())
        batch = .allocate(capacity: Self.batchSize)
        // COOP_TASKRUN + TASKRUN_FLAG: the kernel does not interrupt a spinning loop (an IPI, which
        // costs a VM exit here) to run completion work; it raises a flag instead, and
        // io_uring_peek_batch_cqe enters the kernel only when the flag says work is pending.
        var params = io_uring_params()
        params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL
            | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG
        params.cq_entries = entries * 8
        var rc = io_uring_queue_init_params(entries, ring, &params)
        if rc == -EINVAL {
            // Older kernels without SINGLE_ISSUER: plain ring.
            params = io_uring_params()
            params.flags = IORING_SETUP_CQSIZE
            params.cq_entries = entries * 8
            rc = io_uring_queue_init_params(entries, ring, &params)
        }
        guard rc == 0 else {
            ring.deallocate()
            batch.deallocate()
            throw RuntimeError.system("io_uring_queue_init_params", -rc)
        }
    }

    deinit {
        io_uring_queue_exit(ring)
        ring.deallocate()
        batch.deallocate()
    }

    /// A free submission entry, flushing the queue to the kernel when it is full.
    @inline(__always)
    private func sqe(tag: UInt64) -> UnsafeMutablePointer<io_uring_sqe> {
        while true {
            if let entry = io_uring_get_sqe(ring) {
                entry.pointee.user_data = tag
                return entry
            }
            _ = io_uring_submit(ring)
        }
    }

    func recv(fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int, tag: UInt64) {
        let entry = sqe(tag: tag)
        io_uring_prep_recv(entry, fd, buffer, count, 0)
        entry.pointee.user_data = tag
    }

    func sendmsg(fd: Int32, message: UnsafeMutablePointer<msghdr>, tag: UInt64) {
        let entry = sqe(tag: tag)
        io_uring_prep_sendmsg(entry, fd, message, UInt32(MSG_NOSIGNAL))
        entry.pointee.user_data = tag
    }

    func accept(fd: Int32, tag: UInt64) {
        let entry = sqe(tag: tag)
        io_uring_prep_accept(entry, fd, nil, nil, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue))
        entry.pointee.user_data = tag
    }

    func read(fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int, offset: UInt64, tag: UInt64) {
        let entry = sqe(tag: tag)
        io_uring_prep_read(entry, fd, buffer, UInt32(clamping: count), offset)
        entry.pointee.user_data = tag
    }

    func write(fd: Int32, from buffer: UnsafeRawPointer, count: Int, offset: UInt64, tag: UInt64) {
        let entry = sqe(tag: tag)
        io_uring_prep_write(entry, fd, buffer, UInt32(clamping: count), offset)
        entry.pointee.user_data = tag
    }

    /// fsync (or fdatasync with `dataOnly`) run by the kernel's io-wq workers: many can be in
    /// flight at once, so concurrent syncs share journal commits.
    func fsync(fd: Int32, dataOnly: Bool, tag: UInt64) {
        let entry = sqe(tag: tag)
        io_uring_prep_fsync(entry, fd, dataOnly ? UInt32(IORING_FSYNC_DATASYNC) : 0)
        entry.pointee.user_data = tag
    }

    /// Submissions queued and not yet entered.
    var pendingSubmissions: Int { Int(dmanoel_uring_sq_ready(ring)) }

    /// Enters queued submissions into the kernel (no system call when there are none).
    func submit() {
        let ready = pendingSubmissions
        lastSubmitted = ready
        if ready > 0 { _ = io_uring_submit(ring) }
    }

    /// Calls `body(tag, result)` for each completion already posted; returns how many.
    @inline(__always)
    func reap(_ body: (UInt64, Int32) -> Void) -> Int {
        var total = 0
        while true {
            let n = Int(io_uring_peek_batch_cqe(ring, batch, UInt32(Self.batchSize)))
            if n == 0 { return total }
            for i in 0..<n {
                let cqe = batch[i]!
                body(cqe.pointee.user_data, cqe.pointee.res)
            }
            dmanoel_uring_cq_advance(ring, UInt32(n))
            total += n
            if n < Self.batchSize { return total }
        }
    }

    /// Submits what is queued and sleeps until a completion arrives or `timeout` passes.
    func wait(timeoutNanoseconds: UInt64?) {
        var cqe: UnsafeMutablePointer<io_uring_cqe>?
        lastSubmitted = pendingSubmissions
        if let timeout = timeoutNanoseconds {
            var ts = __kernel_timespec(tv_sec: Int64(timeout / 1_000_000_000), tv_nsec: Int64(timeout % 1_000_000_000))
            _ = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, nil)
        } else {
            _ = io_uring_submit_and_wait_timeout(ring, &cqe, 1, nil, nil)
        }
    }
}
