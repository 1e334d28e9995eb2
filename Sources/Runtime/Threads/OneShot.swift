import Glibc

/// A value handed once from one thread (usually a loop) to another that waits for it, with an
/// optional timeout. For start-up, snapshots and tools — never for a loop waiting on itself.
public final class OneShot<Value: Sendable>: @unchecked Sendable {
    private var value: Value?
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()

    public init() {
        pthread_mutex_init(&mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_mutex_destroy(&mutex)
        pthread_cond_destroy(&condition)
    }

    public func set(_ newValue: Value) {
        pthread_mutex_lock(&mutex)
        value = newValue
        pthread_cond_broadcast(&condition)
        pthread_mutex_unlock(&mutex)
    }

    /// Waits for the value; nil if `seconds` pass first (nil `seconds`: wait forever).
    public func wait(seconds: Double? = nil) -> Value? {
        var deadline = timespec()
        if let seconds {
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            let nanoseconds = Int(deadline.tv_nsec) + Int(seconds * 1e9)
            deadline.tv_sec += nanoseconds / 1_000_000_000
            deadline.tv_nsec = nanoseconds % 1_000_000_000
        }
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while value == nil {
            if seconds == nil {
                pthread_cond_wait(&condition, &mutex)
            } else if pthread_cond_timedwait(&condition, &mutex, &deadline) == ETIMEDOUT {
                break
            }
        }
        return value
    }
}

/// Runs `body` as a task on `loop` and waits for its result on the calling thread (start-up
/// work, tools and benchmarks). Calling it on `loop`'s own thread would deadlock.
public func runBlocking<T: Sendable>(on loop: EventLoop, _ body: @escaping @Sendable () async throws -> T) throws -> T {
    precondition(!loop.inLoop, "runBlocking would deadlock on the loop's own thread")
    let result = OneShot<Result<T, Error>>()
    Task(executorPreference: loop) {
        do { result.set(.success(try await body())) } catch { result.set(.failure(error)) }
    }
    return try result.wait()!.get()
}
