import Runtime
import Testing

@Suite("Latency histogram")
struct HistogramTests {
    @Test("every value is reported within 1% (values from 128 ns to minutes)")
    func precision() {
        var value: UInt64 = 128
        while value < 200_000_000_000 {
            var histogram = LatencyHistogram()
            histogram.record(value)
            let reported = histogram.percentile(0.5)
            let error = Double(value > reported ? value - reported : reported - value) / Double(value)
            #expect(error < 0.01, "value \(value) reported as \(reported)")
            value = value * 37 / 29 + 1
        }
    }

    @Test("percentiles of a known distribution")
    func percentiles() {
        var histogram = LatencyHistogram()
        for microseconds in 1...1000 { histogram.record(UInt64(microseconds) * 1000) }
        #expect(histogram.total == 1000)
        func close(_ measured: UInt64, _ expected: UInt64) -> Bool { Double(measured) > Double(expected) * 0.99 && Double(measured) <= Double(expected) * 1.01 }
        #expect(close(histogram.percentile(0.5), 500_000))
        #expect(close(histogram.percentile(0.99), 990_000))
        #expect(histogram.maximum == 1_000_000)
        #expect(LatencyHistogram().percentile(0.99) == 0)
    }

    @Test("an interval is the difference of two snapshots; merging adds")
    func intervalsAndMerging() {
        var histogram = LatencyHistogram()
        for _ in 0..<100 { histogram.record(10_000) }
        let earlier = histogram
        for _ in 0..<50 { histogram.record(2_000_000) }
        let interval = histogram.subtracting(earlier)
        #expect(interval.total == 50)
        #expect(interval.percentile(0.5) > 1_900_000)
        var merged = earlier
        merged.add(interval)
        #expect(merged == histogram)
        #expect(histogram.cumulativeBuckets().last?.count == 150)
    }
}
