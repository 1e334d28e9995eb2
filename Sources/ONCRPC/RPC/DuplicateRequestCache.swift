import Synchronization

/// Replies to non-idempotent calls, kept so that a retransmission (same client host, xid,
/// program, version, procedure, record length and checksum of the record's first 256 bytes —
/// possibly on a new connection) gets the original reply instead of being executed again: a retried REMOVE must not answer NOENT after
/// the first one succeeded (lessons.md). While the first execution is still running, a
/// retransmission is dropped; the client retries again and then gets the cached reply.
///
/// Shared by every loop, behind one mutex: only non-idempotent calls touch it.
public final class DuplicateRequestCache: Sendable {
    struct Key: Hashable {
        var host: String
        var xid: UInt32
        var program: UInt32
        var version: UInt32
        var procedure: UInt32
        var length: Int
        /// Guards against clients that reuse xids for different calls (as knfsd does).
        var checksum: UInt64
    }

    /// FNV-1a over the first 256 bytes of a record.
    static func checksum(_ record: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in record.prefix(256) {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return hash
    }

    enum Entry {
        case inProgress
        case done([UInt8])
    }

    public enum Lookup: Equatable {
        case execute
        case inProgress
        case replay([UInt8])
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var order: [Key] = []
        var head = 0
    }

    private let state = Mutex(State())
    public let capacity: Int

    public init(capacity: Int = 8192) {
        self.capacity = capacity
    }

    /// Looks a call up and, when it is new, records it as in progress.
    func begin(_ key: Key) -> Lookup {
        state.withLock { state in
            switch state.entries[key] {
            case .inProgress?: return .inProgress
            case let .done(reply)?: return .replay(reply)
            case nil:
                state.entries[key] = .inProgress
                state.order.append(key)
                if state.order.count - state.head > capacity {
                    let oldest = state.order[state.head]
                    state.head += 1
                    if case .done? = state.entries[oldest] { state.entries[oldest] = nil }
                    if state.head > capacity {
                        state.order.removeFirst(state.head)
                        state.head = 0
                    }
                }
                return .execute
            }
        }
    }

    func finish(_ key: Key, reply: [UInt8]) {
        state.withLock { $0.entries[key] = .done(reply) }
    }

    /// Entries held now (tests and stats).
    public var count: Int { state.withLock { $0.entries.count } }
}
