import Runtime
import Testing
@testable import NFS4

@Suite("NFSv4 leases")
struct NFS4LeaseTests {
    /// The sweep reads the clock before taking the tables' lock; a SEQUENCE on another loop
    /// can renew a lease after that. Such a client is alive, not 2^64 ns overdue (the load
    /// client's sessions went BADSESSION mid-run this way, with two loops and 4 connections).
    @Test func aLeaseRenewedAfterTheSweepReadTheClockIsKept() {
        let state = NFS4State(leaseSeconds: 90)
        let now = monotonicNanoseconds()
        state.tables.withLock { t in
            t.clients[1] = NFS4Client(id: 1, ownerID: [1], verifier: 0, minor: 1, now: now + 1_000)
            t.clients[2] = NFS4Client(id: 2, ownerID: [2], verifier: 0, minor: 1, now: now - 91_000_000_000)
            t.lastSweep = 0
            _ = state.sweep(&t, now: now)
            #expect(t.clients[1] != nil)
            #expect(t.clients[2] == nil)      // its lease did run out
        }
    }
}
