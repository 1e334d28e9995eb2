import HTTP
import Runtime

/// Prometheus metrics on `server.metrics_port` (`GET /metrics`, text exposition format 0.0.4):
/// process, loop, delegation and per-protocol, per-operation counters and latency histograms,
/// from the same per-thread numbers the console shows.
final class MetricsExporter: HTTPResponder, @unchecked Sendable {
    private let control: any ServerControl
    private let delegation: DelegationPool

    /// Histogram bucket bounds in seconds: 1 µs to 10 s, 1-2-5 steps.
    static let bounds: [Double] = [1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3,
                                   1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1, 2, 5, 10]

    init(control: any ServerControl, delegation: DelegationPool) {
        self.control = control
        self.delegation = delegation
    }

    override func serve(_ exchange: HTTPExchange) async {
        let path = String(exchange.request.targetString.prefix { $0 != "?" })
        guard path == "/metrics" else {
            exchange.respond(.notFound, body: "metrics are at /metrics\n") { $0.add("Content-Type", "text/plain") }
            return
        }
        let control = self.control
        let status = await delegation.run { control.status() }
        exchange.respond(.ok, body: Self.render(status)) { $0.add("Content-Type", "text/plain; version=0.0.4; charset=utf-8") }
    }

    static func render(_ status: ServerStatus) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func sample(_ name: String, _ labels: String = "", _ value: String) {
            out += labels.isEmpty ? "\(name) \(value)\n" : "\(name){\(labels)} \(value)\n"
        }
        func seconds(_ ns: UInt64) -> String { String(Double(ns) / 1e9) }

        family("dmanoel_build_info", "gauge", "Version of the running server.")
        sample("dmanoel_build_info", "version=\"\(escape(status.version))\",io=\"\(status.io.rawValue)\"", "1")
        family("dmanoel_uptime_seconds", "gauge", "Seconds since the server started.")
        sample("dmanoel_uptime_seconds", "", seconds(status.uptimeNanoseconds))
        family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
        sample("process_resident_memory_bytes", "", "\(status.process.residentBytes)")
        family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
        sample("process_cpu_seconds_total", "", seconds(status.process.cpuNanoseconds))
        family("dmanoel_connections", "gauge", "Open client connections.")
        sample("dmanoel_connections", "", "\(status.connections)")

        let loopCounters: [(String, String, String, (LoopSnapshot) -> String)] = [
            ("dmanoel_loop_passes_total", "counter", "Event-loop passes.", { "\($0.passes)" }),
            ("dmanoel_loop_completions_total", "counter", "I/O completions reaped.", { "\($0.completions)" }),
            ("dmanoel_loop_wakeups_total", "counter", "Wake-ups from sleeping in the kernel.", { "\($0.wakeups)" }),
            ("dmanoel_loop_awake_seconds_total", "counter", "Time spent awake (working or polling).", { seconds($0.pollNanoseconds) }),
            ("dmanoel_loop_asleep_seconds_total", "counter", "Time spent asleep in the kernel.", { seconds($0.sleepNanoseconds) }),
            ("dmanoel_loop_polling", "gauge", "1 while the loop busy-polls, 0 while it sleeps on events.", { $0.mode == .poll ? "1" : "0" }),
            ("dmanoel_loop_in_flight", "gauge", "Operations submitted to the kernel and not completed.", { "\($0.inFlight)" }),
            ("dmanoel_loop_connections", "gauge", "Connections served by the loop.", { "\($0.connections)" }),
            ("dmanoel_loop_receive_bytes_total", "counter", "Bytes received.", { "\($0.bytesIn)" }),
            ("dmanoel_loop_send_bytes_total", "counter", "Bytes sent.", { "\($0.bytesOut)" }),
        ]
        for (name, type, help, value) in loopCounters {
            family(name, type, help)
            for loop in status.loops { sample(name, "loop=\"\(loop.index)\",cpu=\"\(loop.cpu)\"", value(loop)) }
        }
        family("dmanoel_delegation_threads", "gauge", "Threads running blocking system calls.")
        sample("dmanoel_delegation_threads", "", "\(status.delegation.threads)")
        family("dmanoel_delegation_busy", "gauge", "Delegation threads busy now.")
        sample("dmanoel_delegation_busy", "", "\(status.delegation.busy)")
        family("dmanoel_delegation_queued", "gauge", "Blocking calls waiting for a thread.")
        sample("dmanoel_delegation_queued", "", "\(status.delegation.queued)")

        family("dmanoel_operations_total", "counter", "Operations served, by protocol and operation.")
        for p in status.protocols {
            for (name, counters) in zip(p.operationNames, p.operations) where counters.count > 0 {
                sample("dmanoel_operations_total", labels(p.protocolName, name), "\(counters.count)")
            }
        }
        family("dmanoel_operation_errors_total", "counter", "Operations answered with an error status.")
        for p in status.protocols {
            for (name, counters) in zip(p.operationNames, p.operations) where counters.count > 0 {
                sample("dmanoel_operation_errors_total", labels(p.protocolName, name), "\(counters.errors)")
            }
        }
        family("dmanoel_operation_bytes_total", "counter", "Payload bytes moved by operations.")
        for p in status.protocols {
            for (name, counters) in zip(p.operationNames, p.operations) where counters.count > 0 {
                sample("dmanoel_operation_bytes_total", labels(p.protocolName, name), "\(counters.bytes)")
            }
        }
        family("dmanoel_operation_latency_seconds", "histogram", "Time from request received to reply queued.")
        for p in status.protocols {
            for (name, counters) in zip(p.operationNames, p.operations) where counters.count > 0 {
                let base = labels(p.protocolName, name)
                let cumulative = counters.latency.cumulativeBuckets()
                var index = 0
                var seen: UInt64 = 0
                for bound in bounds {
                    let limit = UInt64(bound * 1e9)
                    while index < cumulative.count && cumulative[index].upperBound <= limit {
                        seen = cumulative[index].count
                        index += 1
                    }
                    sample("dmanoel_operation_latency_seconds_bucket", base + ",le=\"\(bound)\"", "\(seen)")
                }
                sample("dmanoel_operation_latency_seconds_bucket", base + ",le=\"+Inf\"", "\(counters.latency.total)")
                sample("dmanoel_operation_latency_seconds_sum", base, seconds(counters.latency.sum))
                sample("dmanoel_operation_latency_seconds_count", base, "\(counters.latency.total)")
            }
        }
        return out
    }

    private static func labels(_ protocolName: String, _ operation: String) -> String {
        "protocol=\"\(escape(protocolName))\",operation=\"\(escape(operation))\""
    }

    /// Label values escape backslash, quote and newline.
    private static func escape(_ value: String) -> String {
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }
}
