import Synchronization

/// Someone parked until a file's state changes: an open waiting for a lease break to be
/// answered, a blocking lock waiting for a range to be released. The file registers the
/// waiter in the same critical section that found the conflict, so no release can slip in
/// between the check and the wait; `wake` may come before or after `wait` and only the first
/// counts. A waiter is used for one wait.
public final class StateWaiter: Sendable {
    private struct Slot {
        var woken = false
        var continuation: CheckedContinuation<Void, Never>?
    }

    private let slot = Mutex(Slot())

    public init() {}

    /// Returns once `wake` was called (at once if it already was).
    public func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = slot.withLock { slot -> Bool in
                if slot.woken { return true }
                slot.continuation = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Ends the wait (the state changed, the request was cancelled or timed out).
    public func wake() {
        let continuation = slot.withLock { slot -> CheckedContinuation<Void, Never>? in
            slot.woken = true
            defer { slot.continuation = nil }
            return slot.continuation
        }
        continuation?.resume()
    }

    public var isWoken: Bool { slot.withLock { $0.woken } }
}
