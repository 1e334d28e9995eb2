/// Percent-encoding as S3 and SigV4 use it (RFC 3986 with AWS's rules).
public enum URIEncoding {
    private static let hex = Array("0123456789ABCDEF".utf8)

    /// RFC 3986 unreserved: A–Z a–z 0–9 - . _ ~
    @inline(__always)
    static func isUnreserved(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39)
            || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "~")
    }

    /// Encodes every byte but the unreserved ones as %XX (uppercase); `/` too unless `keepSlash`.
    /// This is SigV4's UriEncode (canonical query strings) and what `encoding-type=url` listings use.
    public static func encode(_ text: String, keepSlash: Bool = false) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for b in text.utf8 {
            if isUnreserved(b) || (keepSlash && b == UInt8(ascii: "/")) {
                out.append(b)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes %XX escapes (and `+` as a space when `plusIsSpace`, for query strings).
    /// nil for a malformed escape or a result that is not UTF-8.
    public static func decode<C: Collection>(_ bytes: C, plusIsSpace: Bool = false) -> String? where C.Element == UInt8 {
        if !bytes.contains(where: { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) }) {
            return String(validating: bytes, as: UTF8.self)
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var iterator = bytes.makeIterator()
        while let b = iterator.next() {
            if b == UInt8(ascii: "%") {
                guard let h = iterator.next(), let l = iterator.next(), let hv = hexValue(h), let lv = hexValue(l) else { return nil }
                out.append(hv << 4 | lv)
            } else if b == UInt8(ascii: "+") && plusIsSpace {
                out.append(0x20)
            } else {
                out.append(b)
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }
}

/// The query string of a request: decoded name/value pairs in the order sent. Parameter names
/// are case-sensitive (S3 subresources such as `uploads` and `uploadId`).
public struct QueryParameters: Sendable {
    public private(set) var pairs: [(name: String, value: String)] = []

    public init() {}

    /// Parses "a=b&c&d=" (c has no value). nil if an escape is malformed.
    public init?(_ raw: Substring) {
        var raw = raw
        let parsed = raw.withUTF8 { QueryParameters(bytes: UnsafeRawBufferPointer($0)) }
        guard let parsed else { return nil }
        self = parsed
    }

    /// Parses the bytes after "?" of a request target.
    public init?(bytes raw: UnsafeRawBufferPointer) {
        var start = 0
        while start < raw.count {
            var end = start
            while end < raw.count && raw[end] != UInt8(ascii: "&") { end += 1 }
            if end > start {
                var eq = start
                while eq < end && raw[eq] != UInt8(ascii: "=") { eq += 1 }
                let name = UnsafeRawBufferPointer(rebasing: raw[start..<eq])
                let value = eq < end ? UnsafeRawBufferPointer(rebasing: raw[(eq + 1)..<end]) : UnsafeRawBufferPointer(start: nil, count: 0)
                guard let n = URIEncoding.decode(name, plusIsSpace: true), let v = URIEncoding.decode(value, plusIsSpace: true) else {
                    return nil
                }
                pairs.append((n, v))
            }
            start = end + 1
        }
    }

    public subscript(_ name: String) -> String? {
        pairs.first { $0.name == name }?.value
    }

    public func has(_ name: String) -> Bool { pairs.contains { $0.name == name } }

    /// SigV4's canonical query string: names and values UriEncoded, sorted by name then value,
    /// joined with `&`, every parameter with an `=` (a bare `uploads` is `uploads=`).
    func canonical(excluding excluded: String? = nil) -> String {
        pairs.filter { $0.name != excluded }
            .map { (URIEncoding.encode($0.name), URIEncoding.encode($0.value)) }
            .sorted { $0.0 == $1.0 ? $0.1.utf8.lexicographicallyPrecedes($1.1.utf8) : $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }
}
