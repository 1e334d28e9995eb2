/// One step into a JSON document: an object member or an array element.
public enum JSONPathComponent: Sendable, Hashable {
    case key(String)
    case index(Int)

    /// Formats a path the way configuration errors show it: `server.threads`,
    /// `server.smb_multichannel[0].address`, and keys that are not plain words quoted,
    /// as in `exports["/memfs"].read_only`. The empty path (the whole document) is "".
    public static func format(_ path: some Sequence<JSONPathComponent>) -> String {
        var out = ""
        for component in path {
            switch component {
            case .index(let i):
                out += "[\(i)]"
            case .key(let key):
                if isPlainKey(key) {
                    if !out.isEmpty { out += "." }
                    out += key
                } else {
                    out += "[" + JSONValue.quoted(key) + "]"
                }
            }
        }
        return out
    }

    private static func isPlainKey(_ key: String) -> Bool {
        guard !key.isEmpty else { return false }
        for b in key.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
                continue
            default:
                return false
            }
        }
        return true
    }
}

/// Why a document is not JSON, where (1-based line and column; columns count Unicode scalars),
/// and in which member it happened.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    /// Byte offset of the problem in the input.
    public var offset: Int
    public var message: String
    /// The members and elements that enclose the problem, outermost first.
    public var path: [JSONPathComponent]

    /// ``path`` formatted like `server.vfs.demofs` (see ``JSONPathComponent/format(_:)``).
    public var keyPath: String { JSONPathComponent.format(path) }

    /// `line 4, column 17: expected ',' or '}' after object member`
    public var description: String { "line \(line), column \(column): \(message)" }
}

extension JSONValue {
    /// How deeply arrays and objects may nest before the parser refuses the input. Protects
    /// the parser's stack from hostile documents; configuration needs about 4.
    public static let defaultMaximumDepth = 64

    /// Parses one JSON document (RFC 8259): whitespace around the value is allowed, anything
    /// else after it is an error, duplicate keys in one object are an error, and a UTF-8 byte
    /// order mark at the start is skipped.
    public static func parse(_ text: String, maximumDepth: Int = defaultMaximumDepth) throws(JSONParseError) -> JSONValue {
        var text = text
        let result: Result<JSONValue, JSONParseError> = text.withUTF8 { buffer in
            Result { () throws(JSONParseError) -> JSONValue in
                try parse(utf8: buffer, maximumDepth: maximumDepth)
            }
        }
        return try result.get()
    }

    /// Parses one JSON document from bytes that should be UTF-8; invalid UTF-8 inside strings is
    /// an error, and so is any byte outside strings that JSON does not allow there.
    public static func parse(bytes: [UInt8], maximumDepth: Int = defaultMaximumDepth) throws(JSONParseError) -> JSONValue {
        let result: Result<JSONValue, JSONParseError> = bytes.withUnsafeBufferPointer { buffer in
            Result { () throws(JSONParseError) -> JSONValue in
                try parse(utf8: buffer, maximumDepth: maximumDepth)
            }
        }
        return try result.get()
    }

    /// Parses one JSON document from a buffer of UTF-8 bytes (for example a slice of a receive
    /// buffer). The buffer only needs to live for the duration of the call.
    public static func parse(utf8 buffer: UnsafeBufferPointer<UInt8>, maximumDepth: Int = defaultMaximumDepth) throws(JSONParseError) -> JSONValue {
        var parser = JSONByteParser(bytes: buffer, maximumDepth: maximumDepth)
        do {
            return try parser.parseDocument()
        } catch {
            let (line, column) = JSONByteParser.lineAndColumn(of: error.offset, in: buffer)
            throw JSONParseError(line: line, column: column, offset: error.offset,
                                 message: error.message, path: error.reversedPath.reversed())
        }
    }
}

/// An error inside the parser: the path is collected innermost first while unwinding.
struct JSONRawParseError: Error {
    var offset: Int
    var message: String
    var reversedPath: [JSONPathComponent] = []
}

/// A recursive-descent parser over UTF-8 bytes. Nothing is done per character beyond a byte
/// comparison; strings without escapes become `String`s straight from the input bytes.
struct JSONByteParser {
    let bytes: UnsafeBufferPointer<UInt8>
    let maximumDepth: Int
    var position = 0
    var depth = 0
    /// Reused between strings that contain escapes.
    var scratch: [UInt8] = []

    init(bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int) {
        self.bytes = bytes
        self.maximumDepth = maximumDepth
    }

    // MARK: Bytes

    private static let quote = UInt8(ascii: "\"")
    private static let backslash = UInt8(ascii: "\\")

    private var atEnd: Bool { position >= bytes.count }

    private func peek() -> UInt8? {
        position < bytes.count ? bytes[position] : nil
    }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private func fail(_ message: String, at offset: Int? = nil) -> JSONRawParseError {
        JSONRawParseError(offset: offset ?? position, message: message)
    }

    /// What is at `offset`, for messages: `'x'`, `U+00E9`, or "end of input".
    private func describeByte(at offset: Int) -> String {
        guard offset < bytes.count else { return "the end of the input" }
        let b = bytes[offset]
        if b >= 0x21 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
        if b < 0x80 { return "U+" + jsonHex(UInt32(b), width: 4) }
        // Decode one scalar for the message; invalid UTF-8 is shown as the byte.
        var iterator = bytes[offset...].makeIterator()
        var decoder = UTF8()
        if case .scalarValue(let scalar) = decoder.decode(&iterator) {
            return "U+" + jsonHex(scalar.value, width: 4)
        }
        return "byte 0x" + jsonHex(UInt32(b), width: 2) + " (not UTF-8)"
    }

    // MARK: Document and values

    mutating func parseDocument() throws(JSONRawParseError) -> JSONValue {
        if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF { position = 3 }
        skipWhitespace()
        if atEnd { throw fail("the document is empty: expected a JSON value") }
        let value = try parseValue()
        skipWhitespace()
        if !atEnd {
            throw fail("expected the end of the document after the JSON value, found \(describeByte(at: position))")
        }
        return value
    }

    private mutating func parseValue() throws(JSONRawParseError) -> JSONValue {
        guard let b = peek() else { throw fail("expected a value, found the end of the input") }
        switch b {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case Self.quote: return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        case UInt8(ascii: "'"):
            throw fail("expected a value, found a single quote: strings in JSON use double quotes")
        case UInt8(ascii: "T"), UInt8(ascii: "F"), UInt8(ascii: "N"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
            let literal = ["t": "true", "f": "false", "n": "null"][Character(Unicode.Scalar(b | 0x20))]
            throw fail("expected a value, found \(describeWord(at: position, literal: literal))")
        default:
            throw fail("expected a value (object, array, string, number, true, false or null), found \(describeByte(at: position))")
        }
    }

    private mutating func expectLiteral(_ word: StaticString) throws(JSONRawParseError) {
        let start = position
        let count = word.utf8CodeUnitCount
        var matched = position + count <= bytes.count
        if matched {
            for i in 0..<count where bytes[position + i] != word.utf8Start[i] {
                matched = false
                break
            }
        }
        guard matched else {
            throw fail("expected a value, found \(describeWord(at: start, literal: word.description))", at: start)
        }
        position += count
    }

    /// For a bare word where a value should be: `True (literals are lowercase: write true)`.
    private func describeWord(at start: Int, literal: String?) -> String {
        var end = start
        while end < bytes.count, end - start < 40,
              (bytes[end] | 0x20) >= UInt8(ascii: "a") && (bytes[end] | 0x20) <= UInt8(ascii: "z") || bytes[end] == UInt8(ascii: "_") {
            end += 1
        }
        guard end > start else { return describeByte(at: start) }
        let word = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        if let expected = literal, word.lowercased() == expected {
            return "\(word) (literals are lowercase: write \(expected))"
        }
        return "\(word) (strings need double quotes: write \(JSONValue.quoted(word)))"
    }

    private mutating func enter() throws(JSONRawParseError) {
        depth += 1
        if depth > maximumDepth {
            throw fail("arrays and objects nest more than \(maximumDepth) levels deep")
        }
    }

    private mutating func parseObject() throws(JSONRawParseError) -> JSONValue {
        try enter()
        position += 1  // '{'
        var keys: [String] = []
        var values: [JSONValue] = []
        var positions: [String: Int] = [:]
        var keyOffsets: [Int] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            position += 1
            depth -= 1
            return .object(JSONObject())
        }
        while true {
            skipWhitespace()
            guard let b = peek() else {
                throw fail("expected a string key in double quotes, found the end of the input")
            }
            guard b == Self.quote else {
                if b == UInt8(ascii: "}") && !keys.isEmpty {
                    throw fail("expected a string key in double quotes, found '}' after ',': JSON does not allow trailing commas")
                }
                if b == UInt8(ascii: "'") {
                    throw fail("expected a string key in double quotes, found a single quote")
                }
                throw fail("expected a string key in double quotes, found \(describeByte(at: position))")
            }
            let keyOffset = position
            let key = try parseString()
            if let first = positions[key] {
                let (line, column) = Self.lineAndColumn(of: keyOffsets[first], in: bytes)
                var error = fail("duplicate key \(JSONValue.quoted(key)) (first written at line \(line), column \(column))", at: keyOffset)
                error.reversedPath = [.key(key)]
                throw error
            }
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else {
                throw fail("expected ':' after object key \(JSONValue.quoted(key)), found \(describeByte(at: position))")
            }
            position += 1
            skipWhitespace()
            let value: JSONValue
            do {
                value = try parseValue()
            } catch {
                var error = error
                error.reversedPath.append(.key(key))
                throw error
            }
            positions[key] = keys.count
            keys.append(key)
            values.append(value)
            keyOffsets.append(keyOffset)
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","):
                position += 1
            case UInt8(ascii: "}"):
                position += 1
                depth -= 1
                return .object(JSONObject(uniqueKeys: keys, values: values, positions: positions))
            case nil:
                throw fail("expected ',' or '}' after object member, found the end of the input")
            default:
                throw fail("expected ',' or '}' after object member, found \(describeByte(at: position))")
            }
        }
    }

    private mutating func parseArray() throws(JSONRawParseError) -> JSONValue {
        try enter()
        position += 1  // '['
        var elements: [JSONValue] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            position += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            if peek() == UInt8(ascii: "]") && !elements.isEmpty {
                throw fail("expected a value, found ']' after ',': JSON does not allow trailing commas")
            }
            do {
                elements.append(try parseValue())
            } catch {
                var error = error
                error.reversedPath.append(.index(elements.count))
                throw error
            }
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","):
                position += 1
            case UInt8(ascii: "]"):
                position += 1
                depth -= 1
                return .array(elements)
            case nil:
                throw fail("expected ',' or ']' after array element, found the end of the input")
            default:
                throw fail("expected ',' or ']' after array element, found \(describeByte(at: position))")
            }
        }
    }

    // MARK: Strings

    private mutating func parseString() throws(JSONRawParseError) -> String {
        let start = position
        position += 1  // opening quote
        let contentStart = position
        // Fast path: no escapes.
        while position < bytes.count {
            let b = bytes[position]
            if b == Self.quote {
                let content = UnsafeBufferPointer(rebasing: bytes[contentStart..<position])
                position += 1
                guard let s = String(validating: content, as: UTF8.self) else {
                    throw fail("the string is not valid UTF-8", at: Self.firstInvalidUTF8(in: bytes, from: contentStart, to: position - 1))
                }
                return s
            }
            if b == Self.backslash { break }
            if b < 0x20 { throw controlCharacter(b, stringStart: start) }
            position += 1
        }
        if atEnd { throw fail("unterminated string: expected a closing '\"'", at: start) }

        // Slow path: copy the part already scanned, then decode escapes.
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[contentStart..<position]))
        while position < bytes.count {
            let b = bytes[position]
            if b == Self.quote {
                position += 1
                guard let s = String(validating: scratch, as: UTF8.self) else {
                    throw fail("the string is not valid UTF-8", at: Self.firstInvalidUTF8(in: bytes, from: contentStart, to: position - 1))
                }
                return s
            }
            if b < 0x20 { throw controlCharacter(b, stringStart: start) }
            if b != Self.backslash {
                scratch.append(b)
                position += 1
                continue
            }
            let escapeStart = position
            position += 1
            guard let e = peek() else { break }
            position += 1
            switch e {
            case Self.quote: scratch.append(Self.quote)
            case Self.backslash: scratch.append(Self.backslash)
            case UInt8(ascii: "/"): scratch.append(UInt8(ascii: "/"))
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0C)
            case UInt8(ascii: "n"): scratch.append(0x0A)
            case UInt8(ascii: "r"): scratch.append(0x0D)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "u"):
                let scalar = try parseUnicodeEscape(escapeStart: escapeStart)
                appendUTF8(scalar)
            default:
                let shown = e >= 0x21 && e < 0x7F ? "'\\\(Character(Unicode.Scalar(e)))'" : "'\\' followed by \(describeByte(at: escapeStart + 1))"
                throw fail("invalid escape \(shown) in string: JSON allows \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX (write a backslash as \\\\)", at: escapeStart)
            }
        }
        throw fail("unterminated string: expected a closing '\"'", at: start)
    }

    private func controlCharacter(_ b: UInt8, stringStart: Int) -> JSONRawParseError {
        let name = b == 0x0A ? "a line break (U+000A)" : b == 0x09 ? "a tab (U+0009)" : "control character U+" + jsonHex(UInt32(b), width: 4)
        let (line, column) = Self.lineAndColumn(of: stringStart, in: bytes)
        return fail("\(name) inside a string must be escaped (is the closing '\"' of the string that starts at line \(line), column \(column) missing?)")
    }

    private mutating func readHex4() -> UInt32? {
        guard position + 4 <= bytes.count else { return nil }
        var v: UInt32 = 0
        for i in 0..<4 {
            let b = bytes[position + i]
            let d: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = b - UInt8(ascii: "A") + 10
            default: return nil
            }
            v = v << 4 | UInt32(d)
        }
        position += 4
        return v
    }

    /// After `\u`: four hex digits, and for a high surrogate a `\uDC00`–`\uDFFF` that must follow.
    private mutating func parseUnicodeEscape(escapeStart: Int) throws(JSONRawParseError) -> Unicode.Scalar {
        guard let unit = readHex4() else {
            throw fail("invalid \\u escape: expected four hexadecimal digits after \\u", at: escapeStart)
        }
        switch unit {
        case 0xD800...0xDBFF:
            let lowStart = position
            guard position + 2 <= bytes.count, bytes[position] == Self.backslash, bytes[position + 1] == UInt8(ascii: "u") else {
                throw fail("unpaired UTF-16 high surrogate \\u\(jsonHex(unit, width: 4)): it must be followed by a low surrogate \\uDC00-\\uDFFF", at: escapeStart)
            }
            position += 2
            guard let low = readHex4() else {
                throw fail("invalid \\u escape: expected four hexadecimal digits after \\u", at: lowStart)
            }
            guard (0xDC00...0xDFFF).contains(low) else {
                throw fail("unpaired UTF-16 high surrogate \\u\(jsonHex(unit, width: 4)): it is followed by \\u\(jsonHex(low, width: 4)), not a low surrogate \\uDC00-\\uDFFF", at: escapeStart)
            }
            let value = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
            return Unicode.Scalar(value)!
        case 0xDC00...0xDFFF:
            throw fail("unpaired UTF-16 low surrogate \\u\(jsonHex(unit, width: 4)): it must follow a high surrogate \\uD800-\\uDBFF", at: escapeStart)
        default:
            return Unicode.Scalar(unit)!
        }
    }

    private mutating func appendUTF8(_ scalar: Unicode.Scalar) {
        let v = scalar.value
        switch v {
        case 0..<0x80:
            scratch.append(UInt8(v))
        case 0x80..<0x800:
            scratch.append(UInt8(0xC0 | (v >> 6)))
            scratch.append(UInt8(0x80 | (v & 0x3F)))
        case 0x800..<0x10000:
            scratch.append(UInt8(0xE0 | (v >> 12)))
            scratch.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (v & 0x3F)))
        default:
            scratch.append(UInt8(0xF0 | (v >> 18)))
            scratch.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
            scratch.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (v & 0x3F)))
        }
    }

    /// Offset of the first byte in `from..<to` that does not start a valid UTF-8 sequence.
    static func firstInvalidUTF8(in bytes: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Int {
        var offset = from
        var iterator = bytes[from..<to].makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                offset += UTF8.width(scalar)
            case .emptyInput, .error:
                return offset
            }
        }
    }

    // MARK: Numbers

    private func isDigit(_ b: UInt8?) -> Bool {
        guard let b else { return false }
        return b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")
    }

    /// RFC 8259 numbers: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    private mutating func parseNumber() throws(JSONRawParseError) -> JSONValue {
        let start = position
        var negative = false
        if peek() == UInt8(ascii: "-") {
            negative = true
            position += 1
            guard isDigit(peek()) else { throw fail("invalid number: expected a digit after '-'") }
        }
        var integer = 0
        var integerDigits = 0
        if peek() == UInt8(ascii: "0") {
            position += 1
            integerDigits = 1
            if isDigit(peek()) {
                throw fail("invalid number: leading zeros are not allowed (write \(leadingZeroHint(from: start)))", at: start)
            }
        } else {
            while let b = peek(), isDigit(b) {
                if integerDigits < 18 { integer = integer * 10 + Int(b - UInt8(ascii: "0")) }
                integerDigits += 1
                position += 1
            }
        }
        var isWhole = true
        if peek() == UInt8(ascii: ".") {
            isWhole = false
            position += 1
            guard isDigit(peek()) else { throw fail("invalid number: expected a digit after '.'") }
            while isDigit(peek()) { position += 1 }
        }
        if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            isWhole = false
            position += 1
            if let s = peek(), s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { position += 1 }
            guard isDigit(peek()) else { throw fail("invalid number: expected a digit in the exponent") }
            while isDigit(peek()) { position += 1 }
        }
        if isWhole && integerDigits <= 15 {
            // Exactly representable: no need to go through text conversion.
            if negative && integer == 0 { return .number(-0.0) }
            return .number(Double(negative ? -integer : integer))
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else {
            throw fail("number \(text) is too large", at: start)
        }
        return .number(value)
    }

    private func leadingZeroHint(from start: Int) -> String {
        var end = start
        while end < bytes.count, isDigit(bytes[end]) || bytes[end] == UInt8(ascii: "-") { end += 1 }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        let negative = text.hasPrefix("-")
        var digits = Substring(negative ? String(text.dropFirst()) : text)
        while digits.count > 1 && digits.first == "0" { digits = digits.dropFirst() }
        return (negative ? "-" : "") + digits
    }

    // MARK: Positions

    static func lineAndColumn(of offset: Int, in bytes: UnsafeBufferPointer<UInt8>) -> (line: Int, column: Int) {
        var line = 1
        var column = 1
        var i = 0
        let end = min(offset, bytes.count)
        while i < end {
            let b = bytes[i]
            if b == 0x0A {
                line += 1
                column = 1
            } else if b & 0xC0 != 0x80 {
                column += 1
            }
            i += 1
        }
        return (line, column)
    }
}

/// Upper-case hexadecimal, zero-padded to `width` digits.
public func jsonHex(_ value: UInt32, width: Int) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}
