import CRuntimeShims
import Glibc
import Runtime
import Synchronization
import Testing

@Suite("Event loop: timers, doorbells, executors, delegation")
struct LoopTests {
    @Test("timers fire in deadline order, not before their deadline, and cancelled ones never", arguments: IOBackendKind.allCases)
    func timers(io: IOBackendKind) async throws {
        let group = try makeGroup(io: io, pollMode: .never)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let fired = Locked<[(Int, UInt64)]>([])
        let start = monotonicNanoseconds()
        let done = await withCheckedContinuation { (continuation: CheckedContinuation<[(Int, UInt64)], Never>) in
            loop.execute {
                for (label, ms) in [(3, 30), (1, 10), (2, 20)] {
                    loop.schedule(afterNanoseconds: UInt64(ms) * 1_000_000) {
                        fired.withLock { $0.append((label, monotonicNanoseconds() - start)) }
                    }
                }
                let cancelled = loop.schedule(afterNanoseconds: 15_000_000) { fired.withLock { $0.append((99, 0)) } }
                loop.cancel(cancelled)
                loop.schedule(afterNanoseconds: 50_000_000) { continuation.resume(returning: fired.withLock { $0 }) }
            }
        }
        #expect(done.map(\.0) == [1, 2, 3])
        for (label, elapsed) in done { #expect(elapsed >= UInt64(label) * 10_000_000) }
    }

    @Test("a sleeping loop wakes for work from other threads, and no wake-up is lost", arguments: IOBackendKind.allCases)
    func doorbells(io: IOBackendKind) async throws {
        let group = try makeGroup(io: io, pollMode: .never)
        defer { group.shutdown() }
        let loop = group.loops[0]
        #expect(eventually { loop.snapshot().mode == .event })
        let wakeupsBefore = loop.snapshot().wakeups
        let counter = Locked<Int>(0)
        let producers = 4, perProducer = 2_000
        await withTaskGroup(of: Void.self) { tasks in
            for _ in 0..<producers {
                tasks.addTask {
                    for i in 0..<perProducer {
                        loop.execute { counter.withLock { $0 += 1 } }
                        if i % 100 == 0 { usleep(200) }  // let the loop fall asleep between bursts
                    }
                }
            }
        }
        #expect(eventually { counter.withLock { $0 } == producers * perProducer })
        #expect(loop.snapshot().wakeups > wakeupsBefore)
        // One more after a quiet spell: a single doorbell must wake the sleeping loop.
        usleep(20_000)
        let start = monotonicNanoseconds()
        let ranOn = await loop.submit { loop.inLoop }
        #expect(ranOn)
        #expect(monotonicNanoseconds() - start < 1_000_000_000)
    }

    @Test("async code started on a loop stays on it across awaits", arguments: IOBackendKind.allCases)
    func executor(io: IOBackendKind) async throws {
        let group = try makeGroup(io: io)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let observations = await Task(executorPreference: loop) { () -> [Bool] in
            var seen = [loop.inLoop]
            await loop.sleep(nanoseconds: 2_000_000)
            seen.append(loop.inLoop)
            let tid = await group.delegation.run { dmanoel_gettid() }
            seen.append(tid != dmanoel_gettid())  // ran on a delegation thread...
            seen.append(loop.inLoop)                 // ...and came back to the loop
            return seen
        }.value
        #expect(observations == [true, true, true, true])
    }

    @Test("an actor whose executor is a loop runs on that loop")
    func actorOnLoop() async throws {
        let group = try makeGroup(io: .ioUring)
        defer { group.shutdown() }
        let counter = LoopBoundCounter(loop: group.loops[0])
        for _ in 0..<100 { await counter.increment() }
        #expect(await counter.value == 100)
        #expect(await counter.onLoopEveryTime)
    }

    @Test("delegation round trips complete back on the originating loop, and the pool resizes")
    func delegation() async throws {
        let group = try makeGroup(io: .ioUring, threads: 2)
        defer { group.shutdown() }
        for loop in group.loops {
            let results = await Task(executorPreference: loop) { () -> [Bool] in
                await withTaskGroup(of: Bool.self) { tasks in
                    for i in 0..<50 {
                        tasks.addTask(executorPreference: loop) {
                            let value = await group.delegation.run { () -> Int in usleep(100); return i * 2 }
                            return value == i * 2 && loop.inLoop
                        }
                    }
                    var all: [Bool] = []
                    for await result in tasks { all.append(result) }
                    return all
                }
            }.value
            #expect(results.count == 50 && results.allSatisfy { $0 })
        }
        try group.delegation.resize(to: 5)
        #expect(group.delegation.threadCount == 5)
        try group.delegation.resize(to: 1)
        #expect(group.delegation.threadCount == 1)
        let after = await group.delegation.run { 42 }
        #expect(after == 42)
        // A job counts as completed just after it hands back its result: give the last one a moment.
        var completed = group.delegation.snapshot().completed
        for _ in 0..<200 where completed < 101 {
            usleep(5_000)
            completed = group.delegation.snapshot().completed
        }
        #expect(completed >= 101)
        #expect(throws: RuntimeError.self) { try group.delegation.resize(to: 0) }
    }

    @Test("file reads and writes go through the loop's backend", arguments: IOBackendKind.allCases)
    func fileIO(io: IOBackendKind) async throws {
        let group = try makeGroup(io: io)
        defer { group.shutdown() }
        let loop = group.loops[0]
        var template = Array("/tmp/dmanoel-fileio-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        #expect(fd >= 0)
        defer { close(fd); unlink(template) }
        let payload = randomBytes(100_000, seed: 7)
        let ok = await Task(executorPreference: loop) { () -> Bool in
            let out = UnsafeMutableRawBufferPointer.allocate(byteCount: payload.count, alignment: 64)
            let back = UnsafeMutableRawBufferPointer.allocate(byteCount: payload.count, alignment: 64)
            defer { out.deallocate(); back.deallocate() }
            out.copyBytes(from: payload)
            let written = await loop.write(fd: fd, from: UnsafeRawBufferPointer(out), offset: 4096)
            let read = await loop.read(fd: fd, into: back, offset: 4096)
            let pastEnd = await loop.read(fd: fd, into: back, offset: 1 << 30)
            return written == payload.count && read == payload.count && Array(back) == payload && pastEnd == 0
        }.value
        #expect(ok)
        let badFD = await Task(executorPreference: loop) { () -> Int in
            let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 8)
            defer { scratch.deallocate() }
            return await loop.read(fd: -1, into: scratch, offset: 0)
        }.value
        #expect(badFD == -Int(EBADF))
    }
}

actor LoopBoundCounter {
    let loop: EventLoop
    var value = 0
    var onLoopEveryTime = true
    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.serialExecutor.asUnownedSerialExecutor() }

    init(loop: EventLoop) { self.loop = loop }

    func increment() {
        value += 1
        onLoopEveryTime = onLoopEveryTime && loop.inLoop
    }
}

@Suite("EventLoop.current")
struct CurrentLoopTests {
    @Test("names the calling loop on loop threads and nothing elsewhere")
    func current() async throws {
        let group = try makeGroup(io: .ioUring, threads: 2)
        defer { group.shutdown() }
        for loop in group.loops {
            let same = await loop.submit { EventLoop.current === loop }
            #expect(same)
        }
        #expect(EventLoop.current == nil)
        let onDelegate = await group.delegation.run { EventLoop.current == nil }
        #expect(onDelegate)
    }
}
