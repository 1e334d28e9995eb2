/// An IPv4 or IPv6 address, parsed from its text form without the C library.
///
/// Accepted: dotted-quad IPv4 (`192.168.1.1`, no leading zeros, which some parsers read as
/// octal) and IPv6 in any RFC 4291 text form, including `::` and an embedded IPv4 tail
/// (`::ffff:10.0.0.1`). Refused with a reason: zone indexes (`fe80::1%eth0`) and brackets.
/// ``description`` is the canonical form (RFC 5952 for IPv6: lowercase, shortest, `::` for the
/// longest run of zero groups).
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4(UInt32)
    case v6(UInt128)

    /// Parses an address; `nil` when the text is not one (``parse(_:)`` says why).
    public init?(_ text: String) {
        guard case .success(let address) = IPAddress.parse(text) else { return nil }
        self = address
    }

    /// Parses an address, or says what is wrong with the text.
    public static func parse(_ text: String) -> Result<IPAddress, AddressSyntaxError> {
        if text.isEmpty { return .failure(AddressSyntaxError("the address is empty")) }
        if text.contains(":") || text.hasPrefix("[") { return parseV6(text) }
        return parseV4(Substring(text)).map { .v4($0) }
    }

    /// 32 or 128.
    public var bitWidth: Int {
        switch self {
        case .v4: 32
        case .v6: 128
        }
    }

    /// `0.0.0.0` or `::`: listening there means every local address.
    public var isUnspecified: Bool {
        switch self {
        case .v4(let a): a == 0
        case .v6(let a): a == 0
        }
    }

    public var isLoopback: Bool {
        switch self {
        case .v4(let a): a >> 24 == 127
        case .v6(let a): a == 1 || (ipv4Mapped.map { $0 >> 24 == 127 } ?? false)
        }
    }

    /// For `::ffff:a.b.c.d`, the IPv4 address; `nil` otherwise.
    public var ipv4Mapped: UInt32? {
        guard case .v6(let a) = self, a >> 32 == 0xFFFF else { return nil }
        return UInt32(truncatingIfNeeded: a)
    }

    /// The address in network byte order (4 or 16 bytes), as `sockaddr_in`/`sockaddr_in6` want it.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let a):
            return (0..<4).map { UInt8(truncatingIfNeeded: a >> (24 - 8 * UInt32($0))) }
        case .v6(let a):
            return (0..<16).map { UInt8(truncatingIfNeeded: a >> (120 - 8 * UInt128($0))) }
        }
    }

    public var description: String {
        switch self {
        case .v4(let a):
            return IPAddress.formatV4(a)
        case .v6(let a):
            if a >> 32 == 0xFFFF {
                return "::ffff:" + IPAddress.formatV4(UInt32(truncatingIfNeeded: a))
            }
            var groups: [UInt16] = []
            for i in 0..<8 { groups.append(UInt16(truncatingIfNeeded: a >> UInt128(112 - 16 * i))) }
            // Longest run of at least two zero groups (the first one on a tie).
            var bestStart = -1, bestLength = 0
            var i = 0
            while i < 8 {
                if groups[i] == 0 {
                    var j = i
                    while j < 8 && groups[j] == 0 { j += 1 }
                    if j - i > bestLength && j - i >= 2 {
                        bestStart = i
                        bestLength = j - i
                    }
                    i = j
                } else {
                    i += 1
                }
            }
            func text(_ range: Range<Int>) -> String {
                range.map { String(groups[$0], radix: 16) }.joined(separator: ":")
            }
            if bestStart < 0 { return text(0..<8) }
            return text(0..<bestStart) + "::" + text((bestStart + bestLength)..<8)
        }
    }

    static func formatV4(_ a: UInt32) -> String {
        "\(a >> 24).\((a >> 16) & 0xFF).\((a >> 8) & 0xFF).\(a & 0xFF)"
    }

    static func parseV4(_ text: Substring) -> Result<UInt32, AddressSyntaxError> {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else {
            return .failure(AddressSyntaxError("an IPv4 address is four numbers from 0 to 255 separated by dots, like 192.168.1.10"))
        }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                return .failure(AddressSyntaxError("\"\(part)\" is not a number from 0 to 255"))
            }
            if part.count > 1 && part.first == "0" {
                return .failure(AddressSyntaxError("\"\(part)\" has a leading zero, which some programs read as octal; write \(Int(part)!)"))
            }
            let n = UInt32(part)!
            guard n <= 255 else {
                return .failure(AddressSyntaxError("\(n) is larger than 255"))
            }
            value = value << 8 | n
        }
        return .success(value)
    }

    static func parseV6(_ text: String) -> Result<IPAddress, AddressSyntaxError> {
        if text.hasPrefix("[") {
            return .failure(AddressSyntaxError("write the IPv6 address without brackets"))
        }
        if text.contains("%") {
            return .failure(AddressSyntaxError("zone indexes (the part after '%') are not supported"))
        }
        let halves = text.split(separator: "::", omittingEmptySubsequences: false).map(String.init)
        guard halves.count <= 2 else {
            return .failure(AddressSyntaxError("'::' may appear only once in an IPv6 address"))
        }
        func groups(_ part: String, isLast: Bool) -> Result<[UInt16], AddressSyntaxError> {
            if part.isEmpty { return .success([]) }
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            var out: [UInt16] = []
            for (i, piece) in pieces.enumerated() {
                if piece.isEmpty {
                    return .failure(AddressSyntaxError("an IPv6 address has an empty group (a lone ':' at the start or end, or ':::')"))
                }
                if piece.contains(".") {
                    guard isLast && i == pieces.count - 1 else {
                        return .failure(AddressSyntaxError("an embedded IPv4 address may only end an IPv6 address"))
                    }
                    switch parseV4(piece) {
                    case .failure(let e): return .failure(e)
                    case .success(let v4):
                        out.append(UInt16(v4 >> 16))
                        out.append(UInt16(v4 & 0xFFFF))
                    }
                    continue
                }
                guard piece.count <= 4, let g = UInt16(piece, radix: 16), !piece.hasPrefix("+"), !piece.hasPrefix("-") else {
                    return .failure(AddressSyntaxError("\"\(piece)\" is not a group of one to four hexadecimal digits"))
                }
                out.append(g)
            }
            return .success(out)
        }
        let compressed = halves.count == 2
        let head: [UInt16], tail: [UInt16]
        switch groups(halves[0], isLast: !compressed) {
        case .failure(let e): return .failure(e)
        case .success(let g): head = g
        }
        if compressed {
            switch groups(halves[1], isLast: true) {
            case .failure(let e): return .failure(e)
            case .success(let g): tail = g
            }
        } else {
            tail = []
        }
        let count = head.count + tail.count
        if compressed ? count > 7 : count != 8 {
            return .failure(AddressSyntaxError(compressed
                ? "an IPv6 address with '::' has at most seven other groups"
                : "an IPv6 address has eight groups of hexadecimal digits separated by ':' (or '::' for a run of zeros)"))
        }
        var value: UInt128 = 0
        for g in head { value = value << 16 | UInt128(g) }
        value <<= UInt128(16 * (8 - head.count))
        var tailValue: UInt128 = 0
        for g in tail { tailValue = tailValue << 16 | UInt128(g) }
        return .success(.v6(value | tailValue))
    }
}

/// Why a text is not an address or network; `reason` is a phrase without a final period.
public struct AddressSyntaxError: Error, Sendable, Equatable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
}

/// An address block in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), or a single address
/// written without a prefix length (a /32 or /128).
///
/// Parsing is strict: the prefix length must fit the family and bits after the prefix must be
/// zero (`192.168.1.5/24` is refused with `192.168.1.0/24` as the fix), so a typo cannot quietly
/// admit a different set of clients.
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    public var address: IPAddress
    public var prefixLength: Int

    public init?(_ text: String) {
        guard case .success(let network) = IPNetwork.parse(text) else { return nil }
        self = network
    }

    public init(address: IPAddress, prefixLength: Int) {
        precondition(prefixLength >= 0 && prefixLength <= address.bitWidth)
        self.address = address
        self.prefixLength = prefixLength
    }

    public static func parse(_ text: String) -> Result<IPNetwork, AddressSyntaxError> {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2 else {
            return .failure(AddressSyntaxError("a network is an address, '/', and a prefix length, like 10.0.0.0/8"))
        }
        let address: IPAddress
        switch IPAddress.parse(String(parts[0])) {
        case .failure(let e): return .failure(e)
        case .success(let a): address = a
        }
        guard parts.count == 2 else {
            return .success(IPNetwork(address: address, prefixLength: address.bitWidth))
        }
        let lengthText = parts[1]
        guard !lengthText.isEmpty, lengthText.count <= 3,
              lengthText.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let length = Int(lengthText), length <= address.bitWidth,
              !(lengthText.count > 1 && lengthText.first == "0")
        else {
            return .failure(AddressSyntaxError("the prefix length \"\(lengthText)\" is not a number from 0 to \(address.bitWidth)"))
        }
        let network = IPNetwork(address: address, prefixLength: length)
        let masked = network.maskedAddress
        if masked != address {
            return .failure(AddressSyntaxError("\(address) has bits set after its first \(length) bits; the network is \(masked)/\(length)"))
        }
        return .success(network)
    }

    /// The address with the bits after the prefix cleared.
    public var maskedAddress: IPAddress {
        switch address {
        case .v4(let a):
            let mask: UInt32 = prefixLength == 0 ? 0 : ~0 << UInt32(32 - prefixLength)
            return .v4(a & mask)
        case .v6(let a):
            let mask: UInt128 = prefixLength == 0 ? 0 : ~0 << UInt128(128 - prefixLength)
            return .v6(a & mask)
        }
    }

    /// Whether `candidate` is in this network. An IPv4 network also contains the IPv4-mapped
    /// IPv6 form of its addresses (`::ffff:a.b.c.d`), which is how a dual-stack socket sees
    /// IPv4 clients.
    public func contains(_ candidate: IPAddress) -> Bool {
        switch (address, candidate) {
        case (.v4, .v4(let c)):
            return IPNetwork(address: .v4(c), prefixLength: prefixLength).maskedAddress == maskedAddress
        case (.v6, .v6(let c)):
            return IPNetwork(address: .v6(c), prefixLength: prefixLength).maskedAddress == maskedAddress
        case (.v4, .v6):
            guard let mapped = candidate.ipv4Mapped else { return false }
            return contains(.v4(mapped))
        case (.v6, .v4(let c)):
            return contains(.v6(0xFFFF_0000_0000 | UInt128(c)))
        }
    }

    /// `10.0.0.0/8`; a single address is written without the prefix length.
    public var description: String {
        prefixLength == address.bitWidth ? address.description : "\(address)/\(prefixLength)"
    }
}
