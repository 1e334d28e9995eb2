// ThreadSanitizer probe for Synchronization.Mutex (issue 10; Reports/tsan.md).
//   swiftc -O -sanitize=thread scripts/tsan-mutex-probe.swift -o /tmp/probe
//   /tmp/probe mutex     # Synchronization.Mutex.withLock: TSan reports a "Swift access race"
//   /tmp/probe pthread   # the same loop under pthread_mutex_t: no report
// Both print 200000: the counter is never torn, the lock works; only TSan does not see it.
import Glibc
import Synchronization

/// Two threads add to a counter behind a lock; correct code, so any ThreadSanitizer report is
/// about the lock itself. Argument "mutex": Synchronization.Mutex; "pthread": pthread_mutex_t.
final class Box: @unchecked Sendable {
    var value = 0
    let mutex = Mutex<Int>(0)
    var plain = pthread_mutex_t()
    init() { pthread_mutex_init(&plain, nil) }
}
let box = Box()
let usePthread = CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "pthread"
func work() {
    for _ in 0..<100_000 {
        if usePthread {
            pthread_mutex_lock(&box.plain); box.value += 1; pthread_mutex_unlock(&box.plain)
        } else {
            box.mutex.withLock { $0 += 1 }
        }
    }
}
var threads: [pthread_t] = []
for _ in 0..<2 {
    var thread = pthread_t()
    pthread_create(&thread, nil, { _ in work(); return nil }, nil)
    threads.append(thread)
}
for t in threads { pthread_join(t, nil) }
print(usePthread ? box.value : box.mutex.withLock { $0 })
