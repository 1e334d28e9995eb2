import CRuntimeShims
import Glibc
import Runtime
import Synchronization
import Testing

@Suite("Poll/event modes, live knobs and placement", .serialized)
struct ModeTests {
    /// Keeps one ping-pong connection busy from a background thread until `stop` is set.
    final class Load: @unchecked Sendable {
        let stop = Atomic<Bool>(false)
        let roundTrips = Atomic<Int>(0)
        let failures = Atomic<Int>(0)
        var thread: Thread?

        init(port: Int) {
            thread = Thread { [self] in
                let client = TestClient(port: port)
                let message: [UInt8] = Array(repeating: 1, count: 64)
                while !stop.load(ordering: .relaxed) {
                    client.send(message)
                    if client.receive(64) == message { roundTrips.add(1, ordering: .relaxed) } else { failures.add(1, ordering: .relaxed) }
                }
            }
        }

        func finish() {
            stop.store(true, ordering: .relaxed)
            thread?.join()
        }
    }

    @Test("auto mode polls under load and sleeps when idle", arguments: IOBackendKind.allCases)
    func modeFollowsLoad(io: IOBackendKind) async throws {
        let group = try makeGroup(io: io, pollMode: .auto, spin: 2_000_000)
        defer { group.shutdown() }
        let loop = group.loops[0]
        #expect(eventually { loop.snapshot().mode == .event }, "an idle loop should be asleep")
        let listener = try group.listen(host: "127.0.0.1", port: 0) { _ in EchoHandler() }
        let load = Load(port: listener.port)
        // Under steady traffic the loop spends its time awake, in POLL mode.
        #expect(eventually { load.roundTrips.load(ordering: .relaxed) > 2_000 })
        var pollSamples = 0
        for _ in 0..<50 {
            if loop.snapshot().mode == .poll { pollSamples += 1 }
            usleep(2_000)
        }
        load.finish()
        #expect(pollSamples > 35, "only \(pollSamples)/50 samples saw POLL under load")
        #expect(load.failures.load(ordering: .relaxed) == 0)
        #expect(eventually { loop.snapshot().mode == .event }, "after the load stops the loop should sleep again")
    }

    @Test("poll mode and spin time change while traffic flows, without errors", arguments: IOBackendKind.allCases)
    func knobsUnderLoad(io: IOBackendKind) async throws {
        let group = try makeGroup(io: io, threads: 2, pollMode: .never)
        defer { group.shutdown() }
        let listener = try group.listen(host: "127.0.0.1", port: 0) { _ in EchoHandler() }
        let loads = (0..<2).map { _ in Load(port: listener.port) }
        func progress() -> Int { loads.map { $0.roundTrips.load(ordering: .relaxed) }.reduce(0, +) }
        for setting in [PollMode.always, .never, .auto, .always, .auto] {
            group.setPollMode(setting)
            group.setSpinNanoseconds(Int.random(in: 0...500_000))
            let before = progress()
            #expect(eventually { progress() > before + 200 }, "traffic stalled after switching to \(setting)")
            #expect(group.snapshot().allSatisfy { $0.pollMode == setting })
        }
        // One loop alone can be changed.
        group.setPollMode(.never, loop: 1)
        #expect(group.snapshot().map(\.pollMode) == [.auto, .never])
        loads.forEach { $0.finish() }
        #expect(loads.allSatisfy { $0.failures.load(ordering: .relaxed) == 0 })
        // always: an idle loop keeps spinning and never sleeps.
        group.setPollMode(.always)
        usleep(50_000)
        let wakeups = group.loops[0].snapshot().wakeups
        usleep(100_000)
        #expect(group.loops[0].snapshot().wakeups == wakeups)
        #expect(group.loops[0].snapshot().mode == .poll)
        // never: the loop is asleep whenever idle.
        group.setPollMode(.never)
        #expect(eventually { group.snapshot().allSatisfy { $0.mode == .event } })
    }

    @Test("loops are pinned and placed node by node on a simulated two-node topology")
    func placement() async throws {
        let cpus = Topology.affinityCPUs()
        try #require(cpus.count >= 2, "needs two CPUs")
        let topology = try Topology.parse("0:\(cpus[0]);1:\(cpus[1])")
        #expect(topology.simulated)
        let group = try makeGroup(io: .ioUring, threads: 2, pollMode: .never, topology: topology, pin: true)
        defer { group.shutdown() }
        let snapshots = group.snapshot()
        #expect(snapshots.map(\.cpu) == [cpus[0], cpus[1]])
        #expect(snapshots.map(\.node) == [0, 1])
        for loop in group.loops {
            let running = await loop.submit { Int(dmanoel_current_cpu()) }
            #expect(running == loop.cpu)
        }
        // Node 0 exists here, so loop 0's buffers come from it; node 1 is simulated and falls
        // back to the default policy.
        #expect(snapshots[0].memoryPolicy == "numa node 0")
        #expect(snapshots[1].memoryPolicy == "default")
    }

    @Test("placement fills one node before the next and wraps around")
    func placementOrder() throws {
        let topology = try Topology.parse("0:0-1;1:2-3")
        let placed = topology.placement(loops: 6)
        #expect(placed.map(\.cpu) == [0, 1, 2, 3, 0, 1])
        #expect(placed.map(\.node) == [0, 0, 1, 1, 0, 0])
        #expect(throws: Topology.ParseError.self) { try Topology.parse("0:3-1") }
        #expect(throws: Topology.ParseError.self) { try Topology.parse("zero:1") }
    }
}
