/// Identifies a scheduled timer so it can be cancelled.
public struct TimerID: Hashable, Sendable {
    let value: UInt64
}

/// A binary min-heap of deadlines, owned by one loop. Cancelled timers stay in the heap and
/// are skipped when they come due (cancellation is O(1)).
struct TimerQueue {
    private struct Entry {
        var deadline: UInt64
        var id: UInt64
        var action: () -> Void
    }

    private var heap: [Entry] = []
    private var cancelled: Set<UInt64> = []
    private var nextID: UInt64 = 1

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count - cancelled.count }

    /// The earliest deadline, cancelled or not (a spurious early wake-up is harmless).
    var nextDeadline: UInt64? { heap.first?.deadline }

    mutating func schedule(at deadline: UInt64, _ action: @escaping () -> Void) -> TimerID {
        let id = nextID
        nextID &+= 1
        heap.append(Entry(deadline: deadline, id: id, action: action))
        siftUp(heap.count - 1)
        return TimerID(value: id)
    }

    mutating func cancel(_ timer: TimerID) {
        if heap.contains(where: { $0.id == timer.value }) { cancelled.insert(timer.value) }
    }

    /// Removes and returns the actions due at `now`, earliest first.
    mutating func popDue(now: UInt64, into due: inout [() -> Void]) {
        while let first = heap.first, first.deadline <= now {
            let entry = removeFirst()
            if cancelled.remove(entry.id) == nil { due.append(entry.action) }
        }
    }

    private mutating func removeFirst() -> Entry {
        let first = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
        return first
    }

    private mutating func siftUp(_ index: Int) {
        var child = index
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].deadline < heap[parent].deadline else { return }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ index: Int) {
        var parent = index
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { return }
            var smallest = left
            if left + 1 < heap.count, heap[left + 1].deadline < heap[left].deadline { smallest = left + 1 }
            guard heap[smallest].deadline < heap[parent].deadline else { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
