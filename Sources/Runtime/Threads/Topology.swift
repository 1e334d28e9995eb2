import CNuma
import CRuntimeShims
import Glibc

/// CPUs grouped by NUMA node, as read at start (or injected by tests).
public struct Topology: Sendable, Equatable, CustomStringConvertible {
    /// One entry per node, in node order: the node number and its CPUs (only those in the
    /// process affinity mask).
    public var nodes: [(node: Int, cpus: [Int])]
    /// True when the node layout came from `DMANOEL_TOPOLOGY` or a test, not the machine.
    public var simulated: Bool

    public init(nodes: [(node: Int, cpus: [Int])], simulated: Bool) {
        self.nodes = nodes
        self.simulated = simulated
    }

    public static func == (a: Topology, b: Topology) -> Bool {
        a.simulated == b.simulated && a.nodes.count == b.nodes.count
            && zip(a.nodes, b.nodes).allSatisfy { $0.node == $1.node && $0.cpus == $1.cpus }
    }

    public var allCPUs: [Int] { nodes.flatMap(\.cpus) }

    public func node(ofCPU cpu: Int) -> Int? {
        nodes.first { $0.cpus.contains(cpu) }?.node
    }

    public var description: String {
        let layout = nodes.map { "node \($0.node): cpus \($0.cpus.map(String.init).joined(separator: ","))" }
            .joined(separator: "; ")
        return simulated ? "\(layout) (simulated)" : layout
    }

    /// CPUs in the process affinity mask.
    public static func affinityCPUs() -> [Int] {
        var buffer = [Int32](repeating: 0, count: 1024)
        let n = dmanoel_affinity_cpus(&buffer, Int32(buffer.count))
        guard n > 0 else { return [0] }
        return buffer[0..<Int(n)].map(Int.init)
    }

    /// Reads the machine: libnuma where available, else one node holding every allowed CPU.
    /// `DMANOEL_TOPOLOGY` (e.g. `0:0-1;1:2-3`, node:cpu-list pairs) replaces the machine's
    /// layout so placement can be tested on a single-node host.
    public static func detect() -> Topology {
        if let spec = getenv("DMANOEL_TOPOLOGY"), let simulated = try? parse(String(cString: spec)) {
            return simulated
        }
        let allowed = affinityCPUs()
        guard numa_available() >= 0 else { return Topology(nodes: [(0, allowed)], simulated: false) }
        var byNode: [Int: [Int]] = [:]
        for cpu in allowed {
            let node = Int(numa_node_of_cpu(Int32(cpu)))
            byNode[max(node, 0), default: []].append(cpu)
        }
        let nodes = byNode.keys.sorted().map { (node: $0, cpus: byNode[$0]!.sorted()) }
        return Topology(nodes: nodes, simulated: false)
    }

    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Parses `node:cpulist;node:cpulist`, where a cpulist is `a-b,c,...` as in sysfs.
    public static func parse(_ spec: String) throws(ParseError) -> Topology {
        var nodes: [(node: Int, cpus: [Int])] = []
        for part in spec.split(separator: ";") {
            let pieces = part.split(separator: ":", maxSplits: 1)
            guard pieces.count == 2, let node = Int(pieces[0]) else {
                throw ParseError(description: "topology '\(spec)': expected node:cpus, got '\(part)'")
            }
            var cpus: [Int] = []
            for range in pieces[1].split(separator: ",") {
                let ends = range.split(separator: "-").compactMap { Int($0) }
                guard ends.count == 1 || (ends.count == 2 && ends[0] <= ends[1]) else {
                    throw ParseError(description: "topology '\(spec)': bad cpu list '\(pieces[1])'")
                }
                cpus.append(contentsOf: ends[0]...(ends.last!))
            }
            nodes.append((node, cpus))
        }
        guard !nodes.isEmpty else { throw ParseError(description: "topology '\(spec)' names no node") }
        return Topology(nodes: nodes, simulated: true)
    }

    /// Where loop `index` of `count` runs: nodes are filled one after another, CPUs in order,
    /// wrapping around when there are more loops than CPUs.
    public func placement(loops count: Int) -> [(cpu: Int, node: Int)] {
        let order = nodes.flatMap { node in node.cpus.map { (cpu: $0, node: node.node) } }
        guard !order.isEmpty else { return Array(repeating: (0, 0), count: count) }
        return (0..<count).map { order[$0 % order.count] }
    }
}
