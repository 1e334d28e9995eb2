import Runtime

/// The server's status as JSON, for the admin API (`GET /api/v1/status`) and back again for
/// `dmanoel-nas console --connect`. Histograms travel as their non-empty buckets.
extension ServerStatus {
    public func jsonValue() -> JSONValue {
        var object = JSONObject()
        object["version"] = .string(version)
        object["config"] = .string(configSource)
        object["uptime_ns"] = number(uptimeNanoseconds)
        object["taken_at_ns"] = number(takenAt)
        object["io"] = .string(io.rawValue)
        object["rdma"] = .string(rdma)
        object["endpoints"] = .array(endpoints.map { ["service": .string($0.service), "address": .string($0.address), "served": .bool($0.served)] })
        object["process"] = ["rss_bytes": number(process.residentBytes), "cpu_ns": number(process.cpuNanoseconds), "threads": number(process.threads)]
        object["loops"] = .array(loops.map { loop in
            [
                "index": number(loop.index), "cpu": number(loop.cpu), "node": number(loop.node), "backend": .string(loop.backend.rawValue),
                "poll_mode": .string(loop.pollMode.rawValue), "spin_ns": number(loop.spinNanoseconds),
                "mode": .string(loop.mode == .poll ? "poll" : "event"), "passes": number(loop.passes), "completions": number(loop.completions),
                "wakeups": number(loop.wakeups), "tasks_run": number(loop.tasksRun), "poll_ns": number(loop.pollNanoseconds),
                "sleep_ns": number(loop.sleepNanoseconds), "in_flight": number(loop.inFlight), "submission_depth": number(loop.submissionDepth),
                "connections": number(loop.connections), "bytes_in": number(loop.bytesIn), "bytes_out": number(loop.bytesOut),
                "memory_policy": .string(loop.memoryPolicy), "buffers_outstanding": number(loop.buffersOutstanding),
                "buffer_bytes": number(loop.bufferBytes), "requests_in_progress": number(loop.requestsInProgress),
            ]
        })
        object["delegation"] = ["threads": number(delegation.threads), "busy": number(delegation.busy),
                                "queued": number(delegation.queued), "completed": number(delegation.completed)]
        object["protocols"] = .array(protocols.map { snapshot in
            [
                "name": .string(snapshot.protocolName),
                "operations": .array(zip(snapshot.operationNames, snapshot.operations).map { name, counters in
                    [
                        "name": .string(name), "count": number(counters.count), "errors": number(counters.errors), "bytes": number(counters.bytes),
                        "latency": [
                            "max_ns": number(counters.latency.maximum), "sum_ns": number(counters.latency.sum),
                            "buckets": .array(counters.latency.nonEmptyBuckets.map { [number($0.index), number($0.count)] }),
                        ],
                    ]
                }),
            ]
        })
        return .object(object)
    }

    /// Reads what ``jsonValue()`` wrote; nil if a required part is missing or mistyped.
    public init?(json: JSONValue) {
        func u64(_ value: JSONValue?) -> UInt64? { value?.doubleValue.flatMap { $0 >= 0 ? UInt64(exactly: $0.rounded()) : nil } }
        func int(_ value: JSONValue?) -> Int? { value?.intValue }
        guard let version = json["version"]?.stringValue, let config = json["config"]?.stringValue,
              let uptime = u64(json["uptime_ns"]), let takenAt = u64(json["taken_at_ns"]),
              let io = json["io"]?.stringValue.flatMap(IOBackendKind.init(rawValue:)),
              let endpointValues = json["endpoints"]?.arrayValue, let loopValues = json["loops"]?.arrayValue,
              let process = json["process"], let delegation = json["delegation"], let protocolValues = json["protocols"]?.arrayValue
        else { return nil }
        var endpoints: [Endpoint] = []
        for value in endpointValues {
            guard let service = value["service"]?.stringValue, let address = value["address"]?.stringValue else { return nil }
            endpoints.append(Endpoint(service: service, address: address, served: value["served"]?.boolValue ?? false))
        }
        var loops: [LoopSnapshot] = []
        for value in loopValues {
            guard let index = int(value["index"]), let backend = value["backend"]?.stringValue.flatMap(IOBackendKind.init(rawValue:)),
                  let pollMode = value["poll_mode"]?.stringValue.flatMap(PollMode.init(rawValue:))
            else { return nil }
            loops.append(LoopSnapshot(
                index: index, cpu: int(value["cpu"]) ?? -1, node: int(value["node"]) ?? 0, backend: backend, pollMode: pollMode,
                spinNanoseconds: int(value["spin_ns"]) ?? 0, mode: value["mode"]?.stringValue == "poll" ? .poll : .event,
                passes: u64(value["passes"]) ?? 0, completions: u64(value["completions"]) ?? 0, wakeups: u64(value["wakeups"]) ?? 0,
                tasksRun: u64(value["tasks_run"]) ?? 0, pollNanoseconds: u64(value["poll_ns"]) ?? 0, sleepNanoseconds: u64(value["sleep_ns"]) ?? 0,
                inFlight: int(value["in_flight"]) ?? 0, submissionDepth: int(value["submission_depth"]) ?? 0,
                connections: int(value["connections"]) ?? 0, bytesIn: u64(value["bytes_in"]) ?? 0, bytesOut: u64(value["bytes_out"]) ?? 0,
                memoryPolicy: value["memory_policy"]?.stringValue ?? "",
                buffersOutstanding: int(value["buffers_outstanding"]) ?? 0, bufferBytes: int(value["buffer_bytes"]) ?? 0,
                requestsInProgress: int(value["requests_in_progress"]) ?? 0))
        }
        var protocols: [ProtocolSnapshot] = []
        for value in protocolValues {
            guard let name = value["name"]?.stringValue, let operationValues = value["operations"]?.arrayValue else { return nil }
            var names: [String] = []
            var operations: [OperationCounters] = []
            for operation in operationValues {
                guard let opName = operation["name"]?.stringValue else { return nil }
                var counters = OperationCounters()
                counters.count = u64(operation["count"]) ?? 0
                counters.errors = u64(operation["errors"]) ?? 0
                counters.bytes = u64(operation["bytes"]) ?? 0
                let latency = operation["latency"]
                let buckets = (latency?["buckets"]?.arrayValue ?? []).compactMap { pair -> (index: Int, count: UInt64)? in
                    guard let index = int(pair[0]), let count = u64(pair[1]) else { return nil }
                    return (index, count)
                }
                counters.latency = LatencyHistogram(buckets: buckets, maximum: u64(latency?["max_ns"]) ?? 0, sum: u64(latency?["sum_ns"]) ?? 0)
                names.append(opName)
                operations.append(counters)
            }
            protocols.append(ProtocolSnapshot(protocolName: name, operationNames: names, operations: operations))
        }
        self.init(
            version: version, configSource: config, uptimeNanoseconds: uptime, takenAt: takenAt, io: io, endpoints: endpoints,
            process: ProcessStats(residentBytes: int(process["rss_bytes"]) ?? 0, cpuNanoseconds: u64(process["cpu_ns"]) ?? 0,
                                  threads: int(process["threads"]) ?? 0),
            loops: loops,
            delegation: DelegationSnapshot(threads: int(delegation["threads"]) ?? 0, busy: int(delegation["busy"]) ?? 0,
                                           queued: int(delegation["queued"]) ?? 0, completed: u64(delegation["completed"]) ?? 0),
            rdma: json["rdma"]?.stringValue ?? "", protocols: protocols)
    }
}

private func number(_ value: some BinaryInteger) -> JSONValue { .number(Double(value)) }

extension TuningChange {
    /// `{"poll_mode": "always", "loop": 0}`, `{"spin_ns": 20000}` or `{"delegation_threads": 8}`.
    public func jsonValue() -> JSONValue {
        switch self {
        case let .pollMode(mode, loop):
            var object: JSONObject = ["poll_mode": .string(mode.rawValue)]
            if let loop { object["loop"] = .number(Double(loop)) }
            return .object(object)
        case let .spinNanoseconds(value, loop):
            var object: JSONObject = ["spin_ns": .number(Double(value))]
            if let loop { object["loop"] = .number(Double(loop)) }
            return .object(object)
        case let .delegationThreads(count):
            return ["delegation_threads": .number(Double(count))]
        case let .loopThreads(count):
            return ["threads": .number(Double(count))]
        }
    }

    /// Reads a change; the error names what is wrong.
    public init(json: JSONValue) throws(ServerError) {
        guard let object = json.objectValue else { throw .startup("a tuning change is a JSON object") }
        let loop = object["loop"].flatMap { $0.isNull ? nil : $0 }
        var loopIndex: Int?
        if let loop {
            guard let index = loop.intValue, index >= 0 else { throw .startup("\"loop\" must be a loop index (0, 1, ...)") }
            loopIndex = index
        }
        let known = ["poll_mode", "spin_ns", "delegation_threads", "threads"].filter { object.contains(key: $0) }
        guard known.count == 1 else {
            throw .startup("give exactly one of \"poll_mode\", \"spin_ns\", \"delegation_threads\" or \"threads\" (with an optional \"loop\")")
        }
        for key in object.keys where !["poll_mode", "spin_ns", "delegation_threads", "threads", "loop"].contains(key) {
            throw .startup("unknown key \"\(key)\"; a tuning change has \"poll_mode\", \"spin_ns\" or \"delegation_threads\", and \"loop\"")
        }
        switch known[0] {
        case "poll_mode":
            guard let mode = object["poll_mode"]?.stringValue.flatMap(PollMode.init(rawValue:)) else {
                throw .startup("\"poll_mode\" must be \"auto\", \"always\" or \"never\"")
            }
            self = .pollMode(mode, loop: loopIndex)
        case "spin_ns":
            guard let value = object["spin_ns"]?.intValue, (0...1_000_000_000).contains(value) else {
                throw .startup("\"spin_ns\" must be an integer from 0 to 1000000000")
            }
            self = .spinNanoseconds(value, loop: loopIndex)
        case "threads":
            guard let value = object["threads"]?.intValue, (1...1024).contains(value), loopIndex == nil else {
                throw .startup("\"threads\" must be an integer from 1 to 1024, for the whole server")
            }
            self = .loopThreads(value)
        default:
            guard let value = object["delegation_threads"]?.intValue, (1...1024).contains(value) else {
                throw .startup("\"delegation_threads\" must be an integer from 1 to 1024")
            }
            guard loopIndex == nil else { throw .startup("\"delegation_threads\" is for the whole server; drop \"loop\"") }
            self = .delegationThreads(value)
        }
    }
}
