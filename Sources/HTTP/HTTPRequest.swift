/// The request methods the server distinguishes; anything else is `.other` (answered 405/501).
public enum HTTPMethod: Sendable, Equatable {
    case get, head, put, post, delete, options, other
}

/// One parsed request head (RFC 9112 §3, §5). The connection reuses one instance for every
/// request it serves, one at a time, so a responder must not keep it after it has answered.
///
/// The head's bytes are copied into storage the request owns (a head is a few hundred bytes;
/// copying it frees the receive buffer for the body), and header fields are kept as ranges
/// into that copy: nothing is turned into a `String` unless someone asks for it.
public final class HTTPRequest {
    public internal(set) var method: HTTPMethod = .other
    /// HTTP/1.0 (false) or HTTP/1.1 (true).
    public internal(set) var isHTTP11 = true
    /// The client's address, "ip:port".
    public internal(set) var peer: String = ""
    /// The declared body length (Content-Length), nil when chunked or absent.
    public internal(set) var contentLength: UInt64?
    /// Transfer-Encoding: chunked.
    public internal(set) var isChunked = false
    /// Whether the connection may serve another request after this one.
    public internal(set) var keepAlive = true
    /// `Expect: 100-continue`: the client waits for an interim response before sending the body.
    public internal(set) var expectsContinue = false

    /// The head's bytes (request line and fields, without the final empty line).
    var storage: UnsafeMutableRawBufferPointer
    var length = 0
    var targetRange = 0..<0
    var methodRange = 0..<0
    var fields: [(name: Range<Int>, value: Range<Int>)] = []

    init() {
        storage = .allocate(byteCount: 1024, alignment: 8)
        fields.reserveCapacity(32)
    }

    deinit { storage.deallocate() }

    /// Copies a head of `bytes.count` bytes in, growing the storage when needed.
    func load(_ bytes: UnsafeRawBufferPointer) {
        if storage.count < bytes.count {
            storage.deallocate()
            storage = .allocate(byteCount: max(bytes.count, storage.count * 2), alignment: 8)
        }
        storage.copyMemory(from: bytes)
        length = bytes.count
        fields.removeAll(keepingCapacity: true)
        contentLength = nil
        isChunked = false
        keepAlive = true
        expectsContinue = false
    }

    @inline(__always)
    func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(storage)[range])
    }

    /// The request target as sent: origin form "/path?query" (or absolute form).
    public var target: UnsafeRawBufferPointer { bytes(targetRange) }

    /// The request target as a string (its bytes are ASCII after validation).
    public var targetString: String { String(decoding: target, as: UTF8.self) }

    /// The method as sent, e.g. for a 405 message.
    public var methodName: String { String(decoding: bytes(methodRange), as: UTF8.self) }

    /// Number of header fields.
    public var fieldCount: Int { fields.count }

    /// Field `index`'s name as sent and its value with surrounding whitespace removed.
    public func field(at index: Int) -> (name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        (bytes(fields[index].name), bytes(fields[index].value))
    }

    /// The value of the first field named `name` (give it in lowercase), without a copy.
    public func valueBytes(_ name: StaticString) -> UnsafeRawBufferPointer? {
        let wanted = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        for field in fields where field.name.count == wanted.count {
            if HTTPRequest.equalsLowercase(bytes(field.name), wanted) { return bytes(field.value) }
        }
        return nil
    }

    /// The value of the first field named `name` (lowercase) as a string.
    public func value(_ name: StaticString) -> String? {
        valueBytes(name).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The value of the first field whose lowercase name equals `name` (a runtime string, for
    /// signed-header lists).
    public func value(named name: String) -> String? {
        var name = name
        return name.withUTF8 { wanted in
            for field in fields where field.name.count == wanted.count {
                if HTTPRequest.equalsLowercase(bytes(field.name), UnsafeRawBufferPointer(wanted)) {
                    return String(decoding: bytes(field.value), as: UTF8.self)
                }
            }
            return nil
        }
    }

    /// All values of the fields with lowercase name `name`, in order (for repeated fields).
    public func values(named name: String) -> [String] {
        var name = name
        return name.withUTF8 { wanted in
            var found: [String] = []
            for field in fields where field.name.count == wanted.count {
                if HTTPRequest.equalsLowercase(bytes(field.name), UnsafeRawBufferPointer(wanted)) {
                    found.append(String(decoding: bytes(field.value), as: UTF8.self))
                }
            }
            return found
        }
    }

    /// Calls `body` with the method's bytes.
    public func withMethodBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R { body(bytes(methodRange)) }

    /// Appends the values of every field named `name` (lowercase), comma-separated, each
    /// passed through `transform`; false if there is none.
    public func appendValues(named name: UnsafeRawBufferPointer, to out: inout [UInt8],
                             transform: (UnsafeRawBufferPointer, inout [UInt8]) -> Void) -> Bool {
        var found = false
        for field in fields where field.name.count == name.count {
            guard HTTPRequest.equalsLowercase(bytes(field.name), name) else { continue }
            if found { out.append(UInt8(ascii: ",")) }
            transform(bytes(field.value), &out)
            found = true
        }
        return found
    }

    /// ASCII case-insensitive equality, `lower` already lowercase.
    @inline(__always)
    static func equalsLowercase(_ bytes: UnsafeRawBufferPointer, _ lower: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count == lower.count else { return false }
        for i in 0..<bytes.count {
            var b = bytes[i]
            if b >= 0x41 && b <= 0x5A { b |= 0x20 }
            if b != lower[i] { return false }
        }
        return true
    }
}
