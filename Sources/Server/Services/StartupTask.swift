import Glibc
import Runtime

/// Runs async setup work (resolving export paths, mounting backends) as a task on `loop` and
/// waits for it on the calling thread. For start-up only: never call it from a loop thread.
func runOnLoop<T: Sendable>(_ loop: EventLoop, _ body: @escaping @Sendable () async throws -> T) throws -> T {
    precondition(!loop.inLoop, "runOnLoop would deadlock on the loop's own thread")
    let box = StartupResult<T>()
    Task(executorPreference: loop) {
        do { box.set(.success(try await body())) } catch { box.set(.failure(error)) }
    }
    return try box.wait().get()
}

private final class StartupResult<T>: @unchecked Sendable {
    private var value: Result<T, Error>?
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()

    init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }

    deinit {
        pthread_mutex_destroy(&mutex)
        pthread_cond_destroy(&condition)
    }

    func set(_ result: Result<T, Error>) {
        pthread_mutex_lock(&mutex)
        value = result
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    func wait() -> Result<T, Error> {
        pthread_mutex_lock(&mutex)
        while value == nil { pthread_cond_wait(&condition, &mutex) }
        let result = value!
        pthread_mutex_unlock(&mutex)
        return result
    }
}
