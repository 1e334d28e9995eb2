import Glibc

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
        var text = text
        out.reserveCapacity(text.utf8.count)
        text.withUTF8 { appendEncoded(UnsafeRawBufferPointer($0), keepSlash: keepSlash, to: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `bytes` UriEncoded (as `encode`) to `out`; runs that need no escape are copied
    /// whole.
    static func appendEncoded(_ bytes: UnsafeRawBufferPointer, keepSlash: Bool = false, to out: inout [UInt8]) {
        var runStart = 0
        for (i, b) in bytes.enumerated() where !(isUnreserved(b) || (keepSlash && b == UInt8(ascii: "/"))) {
            if i > runStart { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<i])) }
            out.append(UInt8(ascii: "%"))
            out.append(hex[Int(b >> 4)])
            out.append(hex[Int(b & 0xF)])
            runStart = i + 1
        }
        if bytes.count > runStart { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart...])) }
    }

    /// Decodes %XX escapes (and `+` as a space when `plusIsSpace`, for query strings).
    /// nil for a malformed escape or a result that is not UTF-8.
    public static func decode<C: Collection>(_ bytes: C, plusIsSpace: Bool = false) -> String? where C.Element == UInt8 {
        if !bytes.contains(where: { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) }) {
            if let string = bytes.withContiguousStorageIfAvailable({ utf8String(UnsafeRawBufferPointer($0)) }) { return string }
            return Array(bytes).withUnsafeBytes { utf8String($0) }
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
        return out.withUnsafeBytes { utf8String($0) }
    }

    /// A string of bytes that must be well-formed UTF-8 (RFC 3629: no overlong forms, no
    /// surrogates, nothing past U+10FFFF), else nil. The standard library's
    /// `String(validating:as:)` does the same but is generic and unspecialized across modules,
    /// which cost two metadata look-ups per call on every S3 request.
    static func utf8String(_ bytes: UnsafeRawBufferPointer) -> String? {
        isValidUTF8(bytes) ? String(decoding: bytes, as: UTF8.self) : nil
    }

    static func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        let n = bytes.count
        // ASCII eight bytes at a time (keys and query parameters nearly always are).
        while i + 8 <= n, bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 { i += 8 }
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 { i += 1; continue }
            func continuation(_ k: Int) -> Bool { i + k < n && bytes[i + k] & 0xC0 == 0x80 }
            switch b0 {
            case 0xC2...0xDF:
                guard continuation(1) else { return false }
                i += 2
            case 0xE0...0xEF:
                guard continuation(1), continuation(2) else { return false }
                let b1 = bytes[i + 1]
                if b0 == 0xE0 && b1 < 0xA0 { return false }  // overlong
                if b0 == 0xED && b1 >= 0xA0 { return false }  // surrogate
                i += 3
            case 0xF0...0xF4:
                guard continuation(1), continuation(2), continuation(3) else { return false }
                let b1 = bytes[i + 1]
                if b0 == 0xF0 && b1 < 0x90 { return false }  // overlong
                if b0 == 0xF4 && b1 >= 0x90 { return false }  // past U+10FFFF
                i += 4
            default:
                return false
            }
        }
        return true
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
        pairs.reserveCapacity(8)  // a presigned URL has six; growing 1, 2, 4, 8 cost four allocations
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
        for i in pairs.indices where Self.same(pairs[i].name, name) { return pairs[i].value }
        return nil
    }

    public func has(_ name: String) -> Bool {
        for i in pairs.indices where Self.same(pairs[i].name, name) { return true }
        return false
    }

    /// Byte equality: names are compared as sent (String's `==` compares by Unicode canonical
    /// equivalence, which is slower and not what S3 does). Lengths first: most names differ there.
    @inline(__always)
    static func same(_ a: String, _ b: String) -> Bool {
        guard a.utf8.count == b.utf8.count else { return false }
        let equal: Bool?? = a.utf8.withContiguousStorageIfAvailable { x in
            b.utf8.withContiguousStorageIfAvailable { y in x.isEmpty || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 }
        }
        return (equal ?? nil) ?? Array(a.utf8).elementsEqual(b.utf8)
    }

    /// SigV4's canonical query string: names and values UriEncoded, sorted by name then value,
    /// joined with `&`, every parameter with an `=` (a bare `uploads` is `uploads=`).
    func canonical(excluding excluded: String? = nil) -> String {
        var out: [UInt8] = []
        var scratch: [UInt8] = []
        var order: [(name: Range<Int>, value: Range<Int>)] = []
        appendCanonical(excluding: excluded, to: &out, scratch: &scratch, order: &order)
        return String(decoding: out, as: UTF8.self)
    }

    /// UriEncodes `text` into `out` straight from the string's storage.
    private static func appendEncoded(_ text: String, to out: inout [UInt8]) {
        let done: Void? = text.utf8.withContiguousStorageIfAvailable { URIEncoding.appendEncoded(UnsafeRawBufferPointer($0), to: &out) }
        if done == nil { Array(text.utf8).withUnsafeBytes { URIEncoding.appendEncoded($0, to: &out) } }
    }

    /// The same, appended to `out` as bytes; `scratch` and `order` are reusable working space
    /// (the signature check keeps them per loop, so a warm request allocates nothing here).
    func appendCanonical(excluding excluded: String?, to out: inout [UInt8], scratch: inout [UInt8],
                         order: inout [(name: Range<Int>, value: Range<Int>)]) {
        scratch.removeAll(keepingCapacity: true)
        order.removeAll(keepingCapacity: true)
        for i in pairs.indices {
            if let excluded, Self.same(pairs[i].name, excluded) { continue }
            let nameStart = scratch.count
            Self.appendEncoded(pairs[i].name, to: &scratch)
            let valueStart = scratch.count
            Self.appendEncoded(pairs[i].value, to: &scratch)
            order.append((nameStart..<valueStart, valueStart..<scratch.count))
        }
        scratch.withUnsafeBytes { bytes in
            func precedes(_ a: Range<Int>, _ b: Range<Int>) -> Bool? {
                let x = UnsafeRawBufferPointer(rebasing: bytes[a]), y = UnsafeRawBufferPointer(rebasing: bytes[b])
                let common = min(x.count, y.count)
                let c = common == 0 ? 0 : memcmp(x.baseAddress!, y.baseAddress!, common)
                if c != 0 { return c < 0 }
                return x.count == y.count ? nil : x.count < y.count
            }
            // Insertion sort: a query has a handful of parameters, usually already in order.
            var i = 1
            while i < order.count {
                let item = order[i]
                var j = i - 1
                while j >= 0 {
                    let before = precedes(item.name, order[j].name) ?? (precedes(item.value, order[j].value) ?? false)
                    if !before { break }
                    order[j + 1] = order[j]
                    j -= 1
                }
                order[j + 1] = item
                i += 1
            }
            for (index, item) in order.enumerated() {
                if index > 0 { out.append(UInt8(ascii: "&")) }
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[item.name]))
                out.append(UInt8(ascii: "="))
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[item.value]))
            }
        }
    }
}
