import Glibc
import Synchronization

/// Threads that run blocking system calls for the loops. A loop hands over work and carries
/// on; the result comes back to the task on its own loop (the task resumes through the loop's
/// executor), so nothing blocks a loop thread.
public final class DelegationPool: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var queue: [@Sendable () -> Void] = []
    private var queueHead = 0
    private var threads: [pthread_t] = []
    private var stopping = false
    private var idleWanted = 0
    private let busy = Atomic<Int>(0)
    private let completed = Atomic<UInt64>(0)
    private let size = Atomic<Int>(0)

    public init(threads count: Int) throws(RuntimeError) {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
        try resize(to: count)
    }

    deinit {
        pthread_mutex_destroy(&mutex)
        pthread_cond_destroy(&condition)
    }

    public var threadCount: Int { size.load(ordering: .relaxed) }

    /// Changes the number of threads while running: new ones start at once, surplus ones exit
    /// after their current job.
    public func resize(to count: Int) throws(RuntimeError) {
        guard count >= 1 else { throw RuntimeError.invalidSetting("delegation_threads must be at least 1 (got \(count))") }
        pthread_mutex_lock(&mutex)
        let current = size.load(ordering: .relaxed)
        if count < current {
            idleWanted += current - count
            size.store(count, ordering: .relaxed)
            pthread_cond_broadcast(&condition)
            pthread_mutex_unlock(&mutex)
            return
        }
        pthread_mutex_unlock(&mutex)
        for _ in current..<count {
            let box = Unmanaged.passRetained(self)
            var tid = pthread_t()
            let rc = pthread_create(&tid, nil, { raw in
                let pool = Unmanaged<DelegationPool>.fromOpaque(raw!).takeRetainedValue()
                pool.worker()
                return nil
            }, box.toOpaque())
            guard rc == 0 else {
                box.release()
                throw RuntimeError.system("pthread_create", rc)
            }
            pthread_detach(tid)
            size.add(1, ordering: .relaxed)
        }
    }

    /// Queues `work` on a pool thread (fire and forget).
    public func enqueue(_ work: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(&mutex)
        queue.append(work)
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    /// Runs blocking `work` on a pool thread and returns its result to the awaiting task, which
    /// resumes on its own executor (its loop, for tasks started on a loop).
    public func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<T, Never>) in
            enqueue { continuation.resume(returning: work()) }
        }
    }

    /// Stops all threads after the queued work has run.
    public func shutdown() {
        pthread_mutex_lock(&mutex)
        stopping = true
        pthread_cond_broadcast(&condition)
        pthread_mutex_unlock(&mutex)
    }

    public func snapshot() -> DelegationSnapshot {
        pthread_mutex_lock(&mutex)
        let queued = queue.count - queueHead
        pthread_mutex_unlock(&mutex)
        return DelegationSnapshot(threads: threadCount, busy: busy.load(ordering: .relaxed), queued: queued,
                                  completed: completed.load(ordering: .relaxed))
    }

    private func worker() {
        dmanoelSetThreadName("nas-delegate")
        while true {
            pthread_mutex_lock(&mutex)
            while queueHead == queue.count && !stopping && idleWanted == 0 {
                pthread_cond_wait(&condition, &mutex)
            }
            if idleWanted > 0 {
                idleWanted -= 1
                pthread_mutex_unlock(&mutex)
                return
            }
            if queueHead == queue.count && stopping {
                pthread_mutex_unlock(&mutex)
                size.subtract(1, ordering: .relaxed)
                return
            }
            let work = queue[queueHead]
            queueHead += 1
            if queueHead == queue.count {
                queue.removeAll(keepingCapacity: true)
                queueHead = 0
            }
            pthread_mutex_unlock(&mutex)
            busy.add(1, ordering: .relaxed)
            work()
            busy.subtract(1, ordering: .relaxed)
            completed.add(1, ordering: .relaxed)
        }
    }
}
