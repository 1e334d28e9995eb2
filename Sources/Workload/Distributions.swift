import Glibc

/// SplitMix64: a small, fast, seedable generator; the same seed gives the same run.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
}

/// A size drawn per file or per transfer.
public enum SizeDistribution: Sendable, Equatable, CustomStringConvertible {
    case fixed(Int)
    case uniform(min: Int, max: Int)
    /// Log-normal around `median` bytes with shape `sigma`, capped at `max`.
    case lognormal(median: Int, sigma: Double, max: Int)

    public func sample<G: RandomNumberGenerator>(_ rng: inout G) -> Int {
        switch self {
        case let .fixed(size): return size
        case let .uniform(lo, hi): return lo == hi ? lo : Int.random(in: lo...hi, using: &rng)
        case let .lognormal(median, sigma, cap):
            // Box-Muller: one standard normal from two uniforms.
            let u1 = max(Double(rng.next() >> 11) * (1.0 / 9_007_199_254_740_992.0), 1e-300)
            let u2 = Double(rng.next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
            let z = (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
            let value = Double(median) * exp(sigma * z)
            return max(1, min(cap, Int(value.rounded())))
        }
    }

    /// The largest value it can produce.
    public var maximum: Int {
        switch self {
        case let .fixed(s): s
        case let .uniform(_, hi): hi
        case let .lognormal(_, _, cap): cap
        }
    }

    public var description: String {
        switch self {
        case let .fixed(s): "fixed \(s)"
        case let .uniform(lo, hi): "uniform \(lo)-\(hi)"
        case let .lognormal(m, s, c): "lognormal median \(m) sigma \(s) max \(c)"
        }
    }
}
