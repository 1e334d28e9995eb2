/// A log-linear latency histogram in the HdrHistogram style: each power of two from 2^7 ns to
/// 2^38 ns (~4.6 minutes) is split into 128 linear sub-buckets, so a recorded value is off by
/// at most 1/128 (< 0.8%). Values below 128 ns land in the first bucket, above the top in the
/// last. Recording is an index computation and one increment, no allocation.
public struct LatencyHistogram: Sendable, Equatable {
    static let subBucketBits = 7
    static let subBuckets = 1 << subBucketBits
    static let minimumExponent = 7
    static let maximumExponent = 38
    public static let bucketCount = (maximumExponent - minimumExponent + 1) * subBuckets

    public private(set) var counts: [UInt64]
    public private(set) var total: UInt64 = 0
    public private(set) var maximum: UInt64 = 0
    /// Sum of all recorded values (ns), for averages and Prometheus' `_sum`.
    public private(set) var sum: UInt64 = 0

    public init() {
        counts = [UInt64](repeating: 0, count: Self.bucketCount)
    }

    /// Rebuilds a histogram from its non-empty buckets (bucket index, count), e.g. one sent
    /// by the admin API. Indexes outside the histogram are ignored.
    public init(buckets: [(index: Int, count: UInt64)], maximum: UInt64, sum: UInt64) {
        self.init()
        for (index, count) in buckets where index >= 0 && index < Self.bucketCount {
            counts[index] &+= count
            total &+= count
        }
        self.maximum = maximum
        self.sum = sum
    }

    /// An empty histogram to share (copies share its storage).
    public static let empty = LatencyHistogram()

    /// The non-empty buckets as (index, count): a compact form to send elsewhere.
    public var nonEmptyBuckets: [(index: Int, count: UInt64)] {
        if total == 0 { return [] }
        return counts.indices.compactMap { counts[$0] > 0 ? ($0, counts[$0]) : nil }
    }

    @inline(__always)
    static func index(of nanoseconds: UInt64) -> Int {
        let value = max(nanoseconds, 1 << UInt64(minimumExponent))
        let exponent = min(63 - value.leadingZeroBitCount, maximumExponent)
        if exponent >= maximumExponent && value >= (1 << UInt64(maximumExponent + 1)) { return bucketCount - 1 }
        let sub = Int((value >> UInt64(exponent - subBucketBits)) & UInt64(subBuckets - 1))
        return (exponent - minimumExponent) * subBuckets + sub
    }

    /// The smallest value that lands in bucket `index` (what percentiles report).
    static func lowerBound(of index: Int) -> UInt64 {
        let exponent = index / subBuckets + minimumExponent
        let sub = UInt64(index % subBuckets)
        return (1 << UInt64(exponent)) | (sub << UInt64(exponent - subBucketBits))
    }

    @inline(__always)
    public mutating func record(_ nanoseconds: UInt64) {
        counts[Self.index(of: nanoseconds)] &+= 1
        total &+= 1
        sum &+= nanoseconds
        if nanoseconds > maximum { maximum = nanoseconds }
    }

    /// The value below which `fraction` (0...1) of recorded values fall, in nanoseconds.
    public func percentile(_ fraction: Double) -> UInt64 {
        guard total > 0 else { return 0 }
        let rank = UInt64((Double(total) * min(max(fraction, 0), 1)).rounded(.up))
        var seen: UInt64 = 0
        for (index, count) in counts.enumerated() where count > 0 {
            seen += count
            if seen >= max(rank, 1) { return min(Self.lowerBound(of: index), maximum) }
        }
        return maximum
    }

    public mutating func add(_ other: LatencyHistogram) {
        // Most operations of a protocol never run: adding an empty histogram is free.
        guard other.total > 0 else { return }
        for index in 0..<Self.bucketCount { counts[index] &+= other.counts[index] }
        total &+= other.total
        sum &+= other.sum
        maximum = max(maximum, other.maximum)
    }

    /// What was recorded since `earlier` (a snapshot of the same histogram); the maximum is the
    /// largest value in the buckets that grew.
    public func subtracting(_ earlier: LatencyHistogram) -> LatencyHistogram {
        // Nothing recorded in between (the usual case for most operations): an empty result.
        if total == earlier.total { return Self.empty }
        var result = LatencyHistogram()
        var top = -1
        for index in 0..<Self.bucketCount {
            let delta = counts[index] &- earlier.counts[index]
            result.counts[index] = delta
            if delta > 0 { top = index }
        }
        result.total = total &- earlier.total
        result.sum = sum &- earlier.sum
        result.maximum = top < 0 ? 0 : (top == Self.bucketCount - 1 ? maximum : min(maximum, Self.lowerBound(of: top + 1) - 1))
        return result
    }

    /// Non-empty buckets as (upper bound in ns, cumulative count), for Prometheus-style output.
    public func cumulativeBuckets() -> [(upperBound: UInt64, count: UInt64)] {
        var out: [(UInt64, UInt64)] = []
        var seen: UInt64 = 0
        for (index, count) in counts.enumerated() where count > 0 {
            seen += count
            out.append((index + 1 < Self.bucketCount ? Self.lowerBound(of: index + 1) : UInt64.max, seen))
        }
        return out
    }
}
