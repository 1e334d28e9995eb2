extension JSONValue {
    /// The value as JSON text. Pretty output indents by four spaces, puts every member and array
    /// element on its own line and writes `"key": value` (the layout of the example
    /// configurations); compact output has no whitespace at all. Members keep their order, so
    /// the output is stable. Whole numbers up to 2^53 are written without a fraction; numbers
    /// that are not finite (which the parser never produces) are written as `null`. No trailing
    /// newline is added.
    public func serialized(pretty: Bool = true) -> String {
        var out = ""
        write(to: &out, pretty: pretty, indent: 0)
        return out
    }

    private func write(to out: inout String, pretty: Bool, indent: Int) {
        switch self {
        case .null:
            out += "null"
        case .bool(let b):
            out += b ? "true" : "false"
        case .number(let d):
            out += JSONValue.formatNumber(d)
        case .string(let s):
            JSONValue.writeQuoted(s, to: &out)
        case .array(let elements):
            if elements.isEmpty {
                out += "[]"
                return
            }
            out += "["
            for (i, element) in elements.enumerated() {
                if i > 0 { out += "," }
                if pretty { JSONValue.newline(&out, indent: indent + 1) }
                element.write(to: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { JSONValue.newline(&out, indent: indent) }
            out += "]"
        case .object(let object):
            if object.isEmpty {
                out += "{}"
                return
            }
            out += "{"
            var first = true
            for (key, value) in object {
                if !first { out += "," }
                first = false
                if pretty { JSONValue.newline(&out, indent: indent + 1) }
                JSONValue.writeQuoted(key, to: &out)
                out += pretty ? ": " : ":"
                value.write(to: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { JSONValue.newline(&out, indent: indent) }
            out += "}"
        }
    }

    private static func newline(_ out: inout String, indent: Int) {
        out += "\n"
        out += String(repeating: "    ", count: indent)
    }

    public static func formatNumber(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        if d.rounded(.towardZero) == d && d.magnitude <= maximumExactInteger {
            return String(Int(d))
        }
        // Swift prints the shortest text that reads back as the same Double ("0.1", "1e+300"),
        // which is valid JSON.
        return d.description
    }

    /// `s` as a JSON string literal, with quotes.
    public static func quoted(_ s: String) -> String {
        var out = ""
        writeQuoted(s, to: &out)
        return out
    }

    static func writeQuoted(_ s: String, to out: inout String) {
        out += "\""
        var needsEscape = false
        for b in s.utf8 where b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
            needsEscape = true
            break
        }
        if !needsEscape {
            out += s
            out += "\""
            return
        }
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 {
                    out += "\\u" + jsonHex(scalar.value, width: 4)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
