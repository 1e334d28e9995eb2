import Glibc
import LoadClients
import Logging
import Runtime
import Synchronization

/// Runs a workload: opens the connections on the client's own loops, then runs each phase with
/// every connection's in-flight slots as tasks on that connection's loop, and merges the
/// per-loop statistics when the phase ends.
public final class Runner: @unchecked Sendable {
    public let workload: Workload
    public let targets: [Target]
    public let group: LoopGroup
    private var workers: [Worker] = []
    /// Each target's data set (the same unless the root names `{target}` or `{protocol}`).
    private let layouts: [DataSet.Layout]
    /// Called after each phase (the command prints it).
    public var onPhase: ((PhaseResult) -> Void)?
    /// Called about every `progressInterval` seconds while a warmup or measure phase runs.
    public var onProgress: ((Progress) -> Void)?
    public var progressInterval = 1.0

    /// Totals so far in the running phase, summed over the loops.
    public struct Progress: Sendable {
        public var phase: String
        public var elapsed: Double
        public var planned: Double?
        public var ops: UInt64
        public var errors: UInt64
        public var bytes: UInt64
    }

    public init(workload: Workload, targets: [Target], threads: Int) throws {
        self.workload = workload
        self.targets = targets
        var logger = Logger(label: "dmanoel.load")
        logger.logLevel = .warning
        group = try LoopGroup(LoopGroupSettings(threads: threads, delegationThreads: 1, pollMode: .never, pinThreads: false), logger: logger)
        layouts = targets.enumerated().map { workload.dataset.layout(seed: workload.seed, target: $0.offset, protocol: $0.element.kind.rawValue) }
    }

    /// Opens max(phase clients) connections per target, spread over the loops.
    public func connect() throws {
        let payloadSize = max(workload.dataset.fileSize.maximum, workload.phases.flatMap(\.mix).compactMap { $0.size?.maximum }.max() ?? 0, 1 << 20)
        let connections = workload.phases.map(\.clients).max() ?? 1
        let depth = workload.phases.map(\.inFlight).max() ?? 1
        workers = group.loops.map { Worker(loop: $0, targetCount: targets.count, payload: PayloadBuffer(size: min(payloadSize, 16 << 20))) }
        for (t, target) in targets.enumerated() {
            for c in 0..<connections {
                let worker = workers[(t * connections + c) % workers.count]
                let loop = worker.loop
                let client: UncheckedBox<LoadClient> = try runBlocking(on: loop) {
                    switch target.kind {
                    case .nfs3: UncheckedBox(try await NFS3Client.connect(target, loop: loop, payload: worker.payload))
                    case .nfs4: UncheckedBox(try await NFS4Client.connect(target, loop: loop, payload: worker.payload, depth: depth))
                    case .smb: UncheckedBox(try await SMBClient.connect(target, loop: loop, payload: worker.payload, depth: depth))
                    case .s3: UncheckedBox(try S3Client.connect(target, loop: loop, payload: worker.payload))
                    }
                }
                worker.clients.append(Worker.ClientSlot(target: t, index: c, client: client.value))
            }
        }
    }

    /// Set by `requestStop()` (SIGINT): the running phase ends at its next operation, later
    /// phases are skipped except cleanup, and what was measured is kept.
    static let stopFlag = Atomic<Bool>(false)

    /// Ends the run early; safe to call from a signal handler (one atomic store).
    public static func requestStop() { stopFlag.store(true, ordering: .relaxed) }
    public static var stopRequested: Bool { stopFlag.load(ordering: .relaxed) }

    public func run(durationOverride: Double? = nil) -> [PhaseResult] {
        var results: [PhaseResult] = []
        for (index, var phase) in workload.phases.enumerated() {
            if Self.stopRequested && phase.kind != .cleanup { continue }
            if phase.kind == .measure, let durationOverride {
                phase.duration = durationOverride
                phase.operations = nil
            }
            let stoppedBefore = Self.stopRequested
            var result = run(phase, index: index)
            result.interrupted = !stoppedBefore && Self.stopRequested
            results.append(result)
            onPhase?(result)
        }
        return results
    }

    public func shutdown() {
        for worker in workers {
            let w = worker
            _ = try? runBlocking(on: w.loop) { for slot in w.clients { slot.client.close() } }
        }
        group.shutdown()
    }

    private func run(_ phase: Phase, index: Int) -> PhaseResult {
        let plan = Plan(phase: phase, phaseIndex: index, seed: workload.seed, layouts: layouts, targets: targets,
                        slotsPerTarget: phase.clients * phase.inFlight)
        let start = monotonicNanoseconds()
        if phase.kind == .prepare || phase.kind == .cleanup {
            // Directories in order on one connection per target (parents first, or deepest
            // first when cleaning up), the files over all slots.
            if phase.kind == .prepare { runSerial(plan, directories: true) }
            runParallel(plan)
            if phase.kind == .cleanup { runSerial(plan, directories: true) }
        } else {
            runParallel(plan)
        }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        closeFiles()
        var merged: [OpKey: OpStats] = [:]
        for worker in workers {
            for (key, stats) in worker.stats { merged[key, default: OpStats()].merge(stats) }
            worker.stats.removeAll()
        }
        return PhaseResult(name: phase.name, kind: phase.kind, seconds: seconds, clients: phase.clients, inFlight: phase.inFlight, ops: merged)
    }

    /// Files held open by the clients are closed between phases (unmeasured), so the next
    /// phase, cleanup above all, starts with none open.
    private func closeFiles() {
        for worker in workers {
            let w = worker
            _ = try? runBlocking(on: w.loop) { for slot in w.clients { await slot.client.closeFiles() } }
        }
    }

    private func runSerial(_ plan: Plan, directories: Bool) {
        for t in targets.indices where targets[t].kind.isFileProtocol {
            guard let worker = workers.first(where: { $0.clients.contains { $0.target == t && $0.index == 0 } }) else { continue }
            _ = try? runBlocking(on: worker.loop) { await worker.directories(plan, target: t) }
        }
    }

    private func runParallel(_ plan: Plan) {
        let done = workers.map { _ in OneShot<Bool>() }
        for worker in workers { worker.resetProgress() }
        let start = monotonicNanoseconds()
        for (w, worker) in workers.enumerated() {
            Task(executorPreference: worker.loop) {
                await worker.runPhase(plan)
                done[w].set(true)
            }
        }
        let reporting = onProgress != nil && plan.phase.kind != .prepare && plan.phase.kind != .cleanup
        for d in done {
            while d.wait(seconds: reporting ? progressInterval : nil) == nil {
                var sample = Progress(phase: plan.phase.name, elapsed: Double(monotonicNanoseconds() - start) / 1e9,
                                      planned: plan.phase.duration, ops: 0, errors: 0, bytes: 0)
                for worker in workers {
                    sample.ops += worker.progressOps.load(ordering: .relaxed)
                    sample.errors += worker.progressErrors.load(ordering: .relaxed)
                    sample.bytes += worker.progressBytes.load(ordering: .relaxed)
                }
                onProgress?(sample)
            }
        }
    }
}

/// What every slot of a phase needs to know (immutable, shared by the loops).
struct Plan: @unchecked Sendable {
    var phase: Phase
    var phaseIndex: Int
    var seed: UInt64
    var layouts: [DataSet.Layout]
    var targets: [Target]
    var slotsPerTarget: Int
    /// Cumulative mix percentages, for picking an entry with one random number.
    var cumulative: [Double]
    var deadline: UInt64?

    init(phase: Phase, phaseIndex: Int, seed: UInt64, layouts: [DataSet.Layout], targets: [Target], slotsPerTarget: Int) {
        self.phase = phase
        self.phaseIndex = phaseIndex
        self.seed = seed
        self.layouts = layouts
        self.targets = targets
        self.slotsPerTarget = slotsPerTarget
        var sum = 0.0
        cumulative = phase.mix.map { sum += $0.percent; return sum }
        deadline = phase.duration.map { monotonicNanoseconds() + UInt64($0 * 1e9) }
    }

    /// This slot's share of a fixed operation count (nil: run until the deadline).
    func budget(slot: Int) -> Int? {
        guard let total = phase.operations else { return nil }
        return total / slotsPerTarget + (slot < total % slotsPerTarget ? 1 : 0)
    }
}

/// One loop's side of a run: its connections, its statistics, the names it created.
final class Worker: @unchecked Sendable {
    struct ClientSlot {
        var target: Int
        var index: Int
        var client: LoadClient
    }
    let loop: EventLoop
    let payload: PayloadBuffer
    var clients: [ClientSlot] = []
    var stats: [OpKey: OpStats] = [:]
    /// Phase totals for the progress line: written by this loop only (plain stores), read by
    /// the runner's thread once per interval.
    let progressOps = Atomic<UInt64>(0)
    let progressErrors = Atomic<UInt64>(0)
    let progressBytes = Atomic<UInt64>(0)
    private var ops: UInt64 = 0
    private var errors: UInt64 = 0
    private var bytes: UInt64 = 0

    func resetProgress() {
        ops = 0; errors = 0; bytes = 0
        progressOps.store(0, ordering: .relaxed)
        progressErrors.store(0, ordering: .relaxed)
        progressBytes.store(0, ordering: .relaxed)
    }
    /// Files and directories made by create/mkdir operations, per target (removed by remove,
    /// rmdir and cleanup).
    var createdFiles: [[String]]
    var createdDirectories: [[String]]
    private var serial = 0

    init(loop: EventLoop, targetCount: Int, payload: PayloadBuffer) {
        self.loop = loop
        self.payload = payload
        createdFiles = Array(repeating: [], count: targetCount)
        createdDirectories = Array(repeating: [], count: targetCount)
    }

    func record(_ target: Int, _ op: OpKind, _ result: OpResult) {
        let key = OpKey(target: target, op: op.rawValue)
        var entry = stats[key] ?? OpStats()
        entry.count += 1
        if result.status.isOK {
            entry.bytes += UInt64(result.bytes)
        } else {
            entry.errors += 1
            entry.errorCodes[result.status.code, default: 0] += 1
        }
        entry.latency.record(result.end &- result.start)
        entry.firstByte.record(result.firstByte &- result.start)
        stats[key] = entry
        ops &+= 1
        progressOps.store(ops, ordering: .relaxed)
        if result.status.isOK {
            bytes &+= UInt64(result.bytes)
            progressBytes.store(bytes, ordering: .relaxed)
        } else {
            errors &+= 1
            progressErrors.store(errors, ordering: .relaxed)
        }
    }

    /// Prepare: mkdir the data set's directories, parents first. Cleanup: rmdir them, deepest
    /// first (after the files are gone). "Already exists" is fine when preparing.
    func directories(_ plan: Plan, target: Int) async {
        guard let slot = clients.first(where: { $0.target == target && $0.index == 0 }) else { return }
        let layout = plan.layouts[target]
        if plan.phase.kind == .prepare {
            for dir in layout.directories {
                var result = await slot.client.perform(Operation(kind: .mkdir, path: dir))
                if result.status.isExists { result.status = .ok }   // already there: reuse
                record(target, .mkdir, result)
            }
        } else {
            for dir in createdDirectories[target].reversed() {
                record(target, .rmdir, await slot.client.perform(Operation(kind: .rmdir, path: dir)))
            }
            createdDirectories[target].removeAll()
            for (i, dir) in layout.directories.enumerated().reversed() {
                var result = await slot.client.perform(Operation(kind: .rmdir, path: dir))
                // The root's ancestors may still hold another target's tree: leave them then.
                if i < layout.ancestors && result.status.code == 66 { result.status = .ok }
                record(target, .rmdir, result)
            }
        }
    }

    private var reportedLost: Set<Int> = []

    /// Says once per connection, on standard error, that it was lost and why.
    private func reportLost(_ slot: ClientSlot, _ plan: Plan) {
        let id = slot.target << 20 | slot.index
        guard !reportedLost.contains(id) else { return }
        reportedLost.insert(id)
        let why = slot.client.closeError.map { $0 == 0 ? "closed by the server" : "error: \(String(cString: strerror($0))) (errno \($0))" } ?? "closing"
        let line = "dmanoel-nas run: connection \(slot.index) to \(plan.targets[slot.target]) lost in phase \(plan.phase.name) (\(why))\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }

    func runPhase(_ plan: Plan) async {
        await withTaskGroup(of: Void.self) { group in
            for slot in clients where slot.index < plan.phase.clients {
                for f in 0..<plan.phase.inFlight {
                    let number = slot.index * plan.phase.inFlight + f
                    group.addTask { await self.runSlot(plan, client: slot, slot: number) }
                }
            }
        }
    }

    /// Replays the phase's trace in order on this connection; an operation counts as an
    /// error when its outcome is not the one the trace expects (code -5 for "succeeded where
    /// the trace expected it to fail").
    private func replay(_ plan: Plan, client: ClientSlot, layout: DataSet.Layout) async {
        let t = client.target
        let root = layout.directories[layout.ancestors]
        let start = monotonicNanoseconds()
        for entry in plan.phase.trace {
            if Runner.stopRequested { break }
            if let deadline = plan.deadline, monotonicNanoseconds() >= deadline { break }
            if plan.phase.recordedTiming, let time = entry.time {
                let due = start + UInt64(time * 1e9)
                let now = monotonicNanoseconds()
                if due > now { await loop.sleep(nanoseconds: due - now) }
            }
            let path = entry.path.isEmpty ? root : root + "/" + entry.path
            var result = await client.client.perform(Operation(kind: entry.op, path: path, offset: entry.offset, length: entry.length))
            let notFound = result.status.isNotFound
            switch entry.expect {
            case .ok: break
            case .any: if result.status != .connectionLost { result.status = .ok }
            case .noent: result.status = notFound ? .ok : (result.status.isOK ? OpStatus(-5) : result.status)
            }
            if entry.op == .mkdir && result.status.isExists { result.status = .ok }
            record(t, entry.op, result)
            if result.status == .connectionLost {
                reportLost(client, plan)
                break
            }
        }
    }

    /// One in-flight slot: issues the next operation as soon as the previous one ends.
    private func runSlot(_ plan: Plan, client: ClientSlot, slot: Int) async {
        let t = client.target
        let layout = plan.layouts[t]
        let isS3 = plan.targets[t].kind == .s3
        let slots = plan.slotsPerTarget
        switch plan.phase.kind {
        case .prepare:
            var i = slot
            while i < layout.files.count {
                let (path, size) = layout.files[i]
                if isS3 {
                    record(t, .put, await client.client.perform(Operation(kind: .put, path: path, length: min(size, payload.bytes.count))))
                } else {
                    record(t, .create, await client.client.perform(Operation(kind: .create, path: path)))
                    var offset = 0
                    while offset < size {
                        let length = min(1 << 20, size - offset)
                        record(t, .write, await client.client.perform(Operation(kind: .write, path: path, offset: UInt64(offset), length: length)))
                        offset += length
                    }
                }
                i += slots
            }
            return
        case .cleanup:
            var i = slot
            while i < layout.files.count {
                record(t, isS3 ? .delete : .remove, await client.client.perform(Operation(kind: .remove, path: layout.files[i].path)))
                i += slots
            }
            if slot == 0 {
                while let path = createdFiles[t].popLast() {
                    record(t, isS3 ? .delete : .remove, await client.client.perform(Operation(kind: .remove, path: path)))
                }
            }
            return
        case .replay:
            guard slot == 0 else { return }
            await replay(plan, client: client, layout: layout)
            return
        case .warmup, .measure:
            break
        }
        var rng = SplitMix64(seed: plan.seed &+ UInt64(plan.phaseIndex) &* 0x1000_0001 &+ UInt64(t) &* 0x10001 &+ UInt64(slot))
        var budget = plan.budget(slot: slot)
        var cursorFile = slot % max(layout.files.count, 1)
        var cursorOffset = 0
        let interval: UInt64? = plan.phase.rate.flatMap { $0 > 0 ? UInt64(Double(slots * plan.targets.count) / $0 * 1e9) : nil }
        var next = monotonicNanoseconds()
        var putCounter = 0
        var multipartCounter = 0
        while true {
            let now = monotonicNanoseconds()
            if let deadline = plan.deadline, now >= deadline { break }
            if Runner.stopRequested { break }
            if let left = budget {
                if left <= 0 { break }
                budget = left - 1
            }
            if let interval {
                if next > now { await loop.sleep(nanoseconds: next - now) }
                next += interval
            }
            let pick = rng.unit() * plan.cumulative.last!
            let entry = plan.phase.mix[plan.cumulative.firstIndex { pick < $0 } ?? plan.cumulative.count - 1]
            var op = entry.op
            var operation = Operation(kind: op, path: "")
            let file: (path: String, size: Int) = layout.files.isEmpty ? ("", 0) : layout.files[Int(rng.next() % UInt64(layout.files.count))]
            switch op.fileEquivalent {
            case .read, .write:
                if isS3 && op.fileEquivalent == .write {
                    // PUTs go to keys of their own (eight per slot, rewritten in turn) rather
                    // than over the objects GETs read: a GET racing an overwrite of the same
                    // key measures the race, not the server (and our server then cuts the
                    // GET short; see the README).
                    let dir = layout.leafDirectories[slot % layout.leafDirectories.count]
                    operation.path = "\(dir)/p\(loop.index)_\(t)_\(slot)_\(putCounter % 8)"
                    if putCounter < 8 { createdFiles[t].append(operation.path) }
                    putCounter += 1
                    operation.length = entry.size.map { $0.sample(&rng) } ?? file.size
                    break
                }
                var length = entry.size.map { $0.sample(&rng) } ?? 0
                if entry.access == .sequential {
                    let current = layout.files[cursorFile]
                    if length == 0 { length = current.size }
                    if cursorOffset + length > current.size && cursorOffset > 0 {
                        cursorFile = (cursorFile + slots) % layout.files.count
                        cursorOffset = 0
                    }
                    operation.path = layout.files[cursorFile].path
                    operation.offset = UInt64(cursorOffset)
                    cursorOffset += length
                } else {
                    operation.path = file.path
                    if length == 0 || length >= file.size {
                        length = isS3 ? 0 : max(file.size, 1)
                    } else {
                        let blocks = file.size / length
                        operation.offset = UInt64(Int(rng.next() % UInt64(max(blocks, 1))) * length)
                    }
                }
                operation.length = length
            case .create:
                serial += 1
                let dir = layout.leafDirectories[Int(rng.next() % UInt64(layout.leafDirectories.count))]
                operation.path = "\(dir)/c\(loop.index)_\(slot)_\(serial)"
                operation.length = entry.size.map { $0.sample(&rng) } ?? 0
                if isS3 { operation.kind = .put }
            case .remove:
                if let path = createdFiles[t].popLast() {
                    operation.path = path
                } else {
                    op = .stat                                   // nothing of ours to remove yet
                    operation.kind = .stat
                    operation.path = file.path
                }
            case .mkdir:
                serial += 1
                let dir = layout.leafDirectories[Int(rng.next() % UInt64(layout.leafDirectories.count))]
                operation.path = "\(dir)/m\(loop.index)_\(slot)_\(serial)"
            case .rmdir:
                if let path = createdDirectories[t].popLast() {
                    operation.path = path
                } else {
                    op = .stat
                    operation.kind = .stat
                    operation.path = file.path
                }
            case .readdir:
                operation.path = layout.leafDirectories[Int(rng.next() % UInt64(layout.leafDirectories.count))]
            case .rename:
                // A file this run created gets a new name (kept for cleanup); none yet: a stat.
                if let path = createdFiles[t].popLast() {
                    serial += 1
                    operation.path = path
                    operation.newPath = "\(splitDirectory(path))/r\(loop.index)_\(slot)_\(serial)"
                } else {
                    op = .stat
                    operation.kind = .stat
                    operation.path = file.path
                }
            case .lock:
                // Each slot its own byte range, so slots never wait on each other, from 1 GiB
                // up (where SQLite keeps its lock bytes), clear of the data reads and writes touch.
                operation.path = file.path
                operation.length = entry.size.map { $0.sample(&rng) } ?? 1
                operation.offset = (1 << 30) + UInt64(slot) * UInt64(operation.length)
            case .multipart:
                let dir = layout.leafDirectories[slot % layout.leafDirectories.count]
                operation.path = "\(dir)/u\(loop.index)_\(t)_\(slot)_\(multipartCounter % 8)"
                if multipartCounter < 8 { createdFiles[t].append(operation.path) }
                multipartCounter += 1
                operation.length = entry.size.map { $0.sample(&rng) } ?? file.size
            default:
                operation.path = file.path
            }
            let result = await client.client.perform(operation)
            record(t, op, result)
            // Only what exists may be removed: remember creations once they have succeeded.
            if op == .rename { createdFiles[t].append(result.status.isOK ? operation.newPath : operation.path) }
            if result.status.isOK {
                if op.fileEquivalent == .create { createdFiles[t].append(operation.path) }
                if op == .mkdir { createdDirectories[t].append(operation.path) }
            }
            // A lost connection fails every later call at once: stop this slot instead of
            // filling the histograms with instant failures.
            if result.status == .connectionLost {
                reportLost(client, plan)
                break
            }
        }
    }
}

/// "a/b/c" → "a/b".
private func splitDirectory(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "" }
    return String(path[..<slash])
}
