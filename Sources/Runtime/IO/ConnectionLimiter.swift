import Synchronization

/// Caps connections server-wide and per client address (issue 10: one client must not take
/// every descriptor). Consulted once when a connection is accepted and once when it closes —
/// never per request — so its lock is off the hot path.
public final class ConnectionLimiter: Sendable {
    public let maxTotal: Int
    public let maxPerClient: Int
    private struct State {
        var total = 0
        var perClient: [String: Int] = [:]
        var refused: UInt64 = 0
    }
    private let state = Mutex(State())

    public init(maxTotal: Int, maxPerClient: Int) {
        self.maxTotal = maxTotal
        self.maxPerClient = maxPerClient
    }

    /// Counts a new connection from `host` (an address without port), or refuses it.
    func admit(_ host: String) -> Bool {
        state.withLock { state in
            let current = state.perClient[host, default: 0]
            guard state.total < maxTotal, current < maxPerClient else {
                state.refused &+= 1
                return false
            }
            state.total += 1
            state.perClient[host] = current + 1
            return true
        }
    }

    /// A connection admitted for `host` has closed.
    func release(_ host: String) {
        state.withLock { state in
            state.total -= 1
            if let current = state.perClient[host] {
                if current <= 1 { state.perClient[host] = nil } else { state.perClient[host] = current - 1 }
            }
        }
    }

    /// Connections open now, and refused since start.
    public var counts: (open: Int, refused: UInt64) { state.withLock { ($0.total, $0.refused) } }

    /// "10.0.0.1:5000" → "10.0.0.1", "[::1]:5000" → "::1".
    static func host(of peer: String) -> String {
        if peer.hasPrefix("["), let end = peer.firstIndex(of: "]") { return String(peer[peer.index(after: peer.startIndex)..<end]) }
        guard let colon = peer.lastIndex(of: ":") else { return peer }
        return String(peer[..<colon])
    }
}
