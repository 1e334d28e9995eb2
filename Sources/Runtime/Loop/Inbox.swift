import Synchronization

/// Work a loop runs on its own thread. Closures that arrive from other threads are `@Sendable`
/// (see `EventLoop.execute`); local ones never leave the loop, hence the unchecked conformance.
enum LoopJob: @unchecked Sendable {
    case closure(() -> Void)
    /// A job of a task that prefers this loop as its task executor.
    case task(UnownedJob)
    /// A job of an actor whose serial executor is this loop's.
    case isolated(UnownedJob)
}

/// The queue other threads use to hand work to a loop. Producers append under a mutex and
/// then raise `pending`; the loop checks `pending` with one relaxed load per pass and takes the
/// whole batch at once, so the mutex is touched only when there is cross-thread work.
///
/// Wake-ups are never lost: a loop about to sleep sets `sleeping` and then re-checks
/// `pending` (both sequentially consistent); a producer raises `pending` and then swaps
/// `sleeping` back to false, ringing the doorbell only if it was set. At least one side sees
/// the other's store.
final class Inbox: @unchecked Sendable {
    private let queue = Mutex<[LoopJob]>([])
    let pending = Atomic<Bool>(false)
    let sleeping = Atomic<Bool>(false)

    /// Appends a job; returns true when the loop was asleep and its doorbell must be rung.
    func push(_ job: LoopJob) -> Bool {
        queue.withLock { $0.append(job) }
        pending.store(true, ordering: .sequentiallyConsistent)
        return sleeping.exchange(false, ordering: .sequentiallyConsistent)
    }

    /// Takes everything queued so far (loop thread only).
    func drain(into batch: inout [LoopJob]) {
        guard pending.load(ordering: .relaxed) else { return }
        pending.store(false, ordering: .sequentiallyConsistent)
        queue.withLock { swap(&$0, &batch) }
    }

    /// Announces the loop is about to sleep. Returns false if work arrived meanwhile, in which
    /// case the loop must not sleep.
    func prepareToSleep() -> Bool {
        sleeping.store(true, ordering: .sequentiallyConsistent)
        if pending.load(ordering: .sequentiallyConsistent) {
            sleeping.store(false, ordering: .relaxed)
            return false
        }
        return true
    }

    func didWake() {
        sleeping.store(false, ordering: .relaxed)
    }
}
