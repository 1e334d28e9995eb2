/// The SPNEGO wrapping (RFC 4178) of the NTLMSSP tokens carried in SESSION_SETUP: a small
/// DER reader and writer for exactly the shapes SMB clients send. Every length is checked
/// against what was received; nesting is bounded.
enum SPNEGO {
    static let spnegoOID: [UInt8] = [0x2B, 0x06, 0x01, 0x05, 0x05, 0x02]                       // 1.3.6.1.5.5.2
    static let ntlmsspOID: [UInt8] = [0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0A]  // 1.3.6.1.4.1.311.2.2.10

    /// What a client's SESSION_SETUP security buffer held.
    struct ClientToken {
        /// The NTLMSSP message inside (nil when the client offered no token for NTLMSSP).
        var mechToken: [UInt8]?
        /// Whether the token was wrapped in SPNEGO (the reply must be too).
        var wrapped: Bool
        /// Whether the client listed NTLMSSP among its mechanisms (negTokenInit) or is past that.
        var offersNTLM: Bool
    }

    private struct TLV {
        var tag: UInt8
        var value: ArraySlice<UInt8>
    }

    /// One DER element at the start of `bytes`; returns it and the rest.
    private static func element(_ bytes: ArraySlice<UInt8>) throws(NTStatus) -> (TLV, ArraySlice<UInt8>) {
        var index = bytes.startIndex
        guard bytes.count >= 2 else { throw .invalidParameter }
        let tag = bytes[index]
        index += 1
        var length = Int(bytes[index])
        index += 1
        if length & 0x80 != 0 {
            let count = length & 0x7F
            guard count >= 1, count <= 4, bytes.endIndex - index >= count else { throw .invalidParameter }
            length = 0
            for _ in 0..<count {
                length = length << 8 | Int(bytes[index])
                index += 1
            }
        }
        guard length >= 0, length <= bytes.endIndex - index else { throw .invalidParameter }
        return (TLV(tag: tag, value: bytes[index..<(index + length)]), bytes[(index + length)...])
    }

    /// The elements of a constructed value, in order.
    private static func children(_ bytes: ArraySlice<UInt8>) throws(NTStatus) -> [TLV] {
        var rest = bytes
        var out: [TLV] = []
        while !rest.isEmpty {
            guard out.count < 16 else { throw .invalidParameter }
            let (child, next) = try element(rest)
            out.append(child)
            rest = next
        }
        return out
    }

    /// Parses a SESSION_SETUP security buffer: raw NTLMSSP, a GSS-API negTokenInit, or a
    /// negTokenResp.
    static func parse(_ token: [UInt8]) throws(NTStatus) -> ClientToken {
        if NTLMServer.isNTLMSSP(token) { return ClientToken(mechToken: token, wrapped: false, offersNTLM: true) }
        let (outer, _) = try element(token[...])
        switch outer.tag {
        case 0x60:
            // InitialContextToken: thisMech OID, then [0] NegTokenInit.
            let parts = try children(outer.value)
            guard parts.count >= 2, parts[0].tag == 0x06, Array(parts[0].value) == spnegoOID, parts[1].tag == 0xA0 else { throw .invalidParameter }
            let (sequence, _) = try element(parts[1].value)
            guard sequence.tag == 0x30 else { throw .invalidParameter }
            var result = ClientToken(mechToken: nil, wrapped: true, offersNTLM: false)
            var firstIsNTLM = false
            for field in try children(sequence.value) {
                switch field.tag {
                case 0xA0:
                    let (list, _) = try element(field.value)
                    guard list.tag == 0x30 else { throw .invalidParameter }
                    let mechanisms = try children(list.value)
                    result.offersNTLM = mechanisms.contains { $0.tag == 0x06 && Array($0.value) == ntlmsspOID }
                    firstIsNTLM = mechanisms.first.map { $0.tag == 0x06 && Array($0.value) == ntlmsspOID } ?? false
                case 0xA2:
                    let (octets, _) = try element(field.value)
                    guard octets.tag == 0x04 else { throw .invalidParameter }
                    result.mechToken = Array(octets.value)
                default:
                    continue
                }
            }
            // An optimistic token is for the client's first choice: drop it unless that is NTLMSSP.
            if !firstIsNTLM { result.mechToken = nil }
            return result
        case 0xA1:
            let (sequence, _) = try element(outer.value)
            guard sequence.tag == 0x30 else { throw .invalidParameter }
            var result = ClientToken(mechToken: nil, wrapped: true, offersNTLM: true)
            for field in try children(sequence.value) where field.tag == 0xA2 {
                let (octets, _) = try element(field.value)
                guard octets.tag == 0x04 else { throw .invalidParameter }
                result.mechToken = Array(octets.value)
            }
            return result
        default:
            throw .invalidParameter
        }
    }

    // MARK: Encoding

    private static func encode(_ tag: UInt8, _ value: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [tag]
        let n = value.count
        if n < 0x80 {
            out.append(UInt8(n))
        } else if n <= 0xFF {
            out += [0x81, UInt8(n)]
        } else if n <= 0xFFFF {
            out += [0x82, UInt8(n >> 8), UInt8(n & 0xFF)]
        } else {
            out += [0x83, UInt8(n >> 16), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]
        }
        return out + value
    }

    /// The NEGOTIATE response's security buffer: a negTokenInit listing NTLMSSP only.
    static func negotiateHint() -> [UInt8] {
        let mechTypes = encode(0xA0, encode(0x30, encode(0x06, ntlmsspOID)))
        let init2 = encode(0xA0, encode(0x30, mechTypes))
        return encode(0x60, encode(0x06, spnegoOID) + init2)
    }

    /// Negotiation states of a negTokenResp.
    enum State: UInt8 {
        case acceptCompleted = 0, acceptIncomplete = 1, reject = 2
    }

    /// A negTokenResp with the server's state, the chosen mechanism (first reply only) and
    /// the NTLMSSP token.
    static func response(_ state: State, token: [UInt8]?, includeMechanism: Bool) -> [UInt8] {
        var fields = encode(0xA0, encode(0x0A, [state.rawValue]))
        if includeMechanism { fields += encode(0xA1, encode(0x06, ntlmsspOID)) }
        if let token { fields += encode(0xA2, encode(0x04, token)) }
        return encode(0xA1, encode(0x30, fields))
    }
}
