import LoadClients
import Runtime
import Testing
@testable import Workload

@Suite("Distributions and histograms")
struct DistributionTests {
    @Test func seededAndReproducible() {
        for dist in [SizeDistribution.fixed(4096), .uniform(min: 10, max: 1000), .lognormal(median: 4096, sigma: 1, max: 1 << 20)] {
            var a = SplitMix64(seed: 42), b = SplitMix64(seed: 42), c = SplitMix64(seed: 43)
            let x = (0..<1000).map { _ in dist.sample(&a) }
            let y = (0..<1000).map { _ in dist.sample(&b) }
            let z = (0..<1000).map { _ in dist.sample(&c) }
            #expect(x == y)
            if case .fixed = dist { #expect(x == z) } else { #expect(x != z) }
            #expect(x.allSatisfy { $0 >= 1 && $0 <= dist.maximum })
        }
    }

    @Test func uniformCoversItsRange() {
        var rng = SplitMix64(seed: 1)
        let values = (0..<20000).map { _ in SizeDistribution.uniform(min: 0, max: 9).sample(&rng) }
        for v in 0...9 {
            let n = values.filter { $0 == v }.count
            #expect(n > 1700 && n < 2300, "value \(v): \(n)")
        }
    }

    @Test func lognormalMedianIsNearItsParameter() {
        var rng = SplitMix64(seed: 5)
        let values = (0..<20001).map { _ in SizeDistribution.lognormal(median: 10000, sigma: 0.8, max: 10_000_000).sample(&rng) }.sorted()
        let median = values[10000]
        #expect(median > 9300 && median < 10700, "median \(median)")
        // sigma 0.8: the 84th percentile sits near median * e^0.8 (2.23x).
        let p84 = Double(values[16827]) / 10000
        #expect(p84 > 2.0 && p84 < 2.45, "p84 ratio \(p84)")
    }

    @Test func datasetIsTheSameEveryRun() {
        let d = DataSet(root: "r", depth: 1, width: 2, filesPerDirectory: 3, fileSize: .lognormal(median: 1000, sigma: 1, max: 100_000))
        #expect(d.files(seed: 7).map(\.size) == d.files(seed: 7).map(\.size))
        #expect(d.files(seed: 7).map(\.path) == ["r/d0/f0", "r/d0/f1", "r/d0/f2", "r/d1/f0", "r/d1/f1", "r/d1/f2"])
    }

    @Test func eachTargetCanHaveItsOwnTree() {
        let d = DataSet(root: "runs/{protocol}-{target}", depth: 1, width: 2, filesPerDirectory: 1, fileSize: .fixed(10))
        let layout = d.layout(seed: 1, target: 1, protocol: "s3")
        #expect(layout.directories == ["runs", "runs/s3-1", "runs/s3-1/d0", "runs/s3-1/d1"])
        #expect(layout.ancestors == 1)
        #expect(layout.files.map(\.path) == ["runs/s3-1/d0/f0", "runs/s3-1/d1/f0"])
        #expect(layout.leafDirectories == ["runs/s3-1/d0", "runs/s3-1/d1"])
    }

    /// Per-thread histograms merged must equal one histogram of every sample, and their
    /// percentiles must be within the bucket error (< 1%) of the exact ones.
    @Test func mergedHistogramsMatchExactPercentiles() {
        var rng = SplitMix64(seed: 99)
        var samples: [UInt64] = []
        var parts = [OpStats(), OpStats(), OpStats()]
        var whole = LatencyHistogram()
        for i in 0..<30000 {
            let v = UInt64(SizeDistribution.lognormal(median: 50_000, sigma: 1.2, max: 1_000_000_000).sample(&rng))
            samples.append(v)
            parts[i % 3].latency.record(v)
            parts[i % 3].count += 1
            whole.record(v)
        }
        var merged = OpStats()
        for p in parts { merged.merge(p) }
        #expect(merged.latency == whole)
        #expect(merged.count == 30000)
        samples.sort()
        for q in [0.5, 0.9, 0.99, 0.999] {
            let exact = Double(samples[Int((Double(samples.count) * q).rounded(.up)) - 1])
            let got = Double(merged.latency.percentile(q))
            #expect(abs(got - exact) / exact < 0.01, "p\(q): \(got) vs \(exact)")
        }
        #expect(merged.latency.maximum == samples.last!)
    }

    @Test func resultLinesRoundTripThroughTheReport() throws {
        var stats = OpStats()
        for v in [1000, 2000, 3000, 400_000] as [UInt64] { stats.latency.record(v); stats.count += 1; stats.bytes += 4096 }
        stats.errors = 1
        stats.errorCodes[2] = 1
        let phase = PhaseResult(name: "measure", kind: .measure, seconds: 2, clients: 1, inFlight: 1, ops: [OpKey(target: 0, op: "read"): stats])
        let target = try Target.parse("nfs3://127.0.0.1:2049/memfs")
        let text = ([Results.runLine(workload: try Workload.parse("phases: []"), source: "x", targets: [target], threads: 1, started: 0)]
                    + Results.lines(phase, targets: [target])).joined(separator: "\n")
        let path = "/tmp/dmanoel-workload-test-\(getpid()).jsonl"
        #expect(Results.writeFile(path, text))
        defer { unlink(path) }
        let run = try Results.read(path: path)
        #expect(run.ops.count == 1)
        #expect(run.ops[0].latency == stats.latency)
        #expect(run.ops[0].opsPerSecond == 2)
        let md = Report.markdown([run])
        #expect(md.contains("| read | nfs3://127.0.0.1:2049/memfs | 4 | 2.0 | 0.01 | 2.0 | 399 | 399 | 399 | 400 | 1 (2×1) |"), "\(md)")
        let html = Report.html([run, run])
        #expect(html.contains("<svg") && html.contains("<polyline") && html.contains("Comparison"))
    }

    @Test func fixedFormatting() {
        #expect(Report.fixed(1.25, 1) == "1.3" || Report.fixed(1.25, 1) == "1.2")
        #expect(Report.fixed(1234.5678, 2) == "1234.57")
        #expect(Report.fixed(0.05, 2) == "0.05")
        #expect(Report.fixed(-2.5, 0) == "-3" || Report.fixed(-2.5, 0) == "-2")
        #expect(Report.micros(91_234) == "91.2")
        #expect(Report.micros(2_802_000) == "2802")
    }
}

import Glibc
