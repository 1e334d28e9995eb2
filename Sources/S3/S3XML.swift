/// Builds the small XML documents S3 answers with.
struct XMLWriter {
    private(set) var text = #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n"

    mutating func open(_ name: String, namespace: Bool = false) {
        text += namespace ? "<\(name) xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">" : "<\(name)>"
    }

    mutating func close(_ name: String) { text += "</\(name)>" }

    /// Markup written as is.
    mutating func raw(_ markup: String) { text += markup }

    mutating func element(_ name: String, _ value: String) {
        text += "<\(name)>"
        text += Self.escape(value)
        text += "</\(name)>"
    }

    mutating func element(_ name: String, _ value: some BinaryInteger) { element(name, String(value)) }
    mutating func element(_ name: String, _ value: Bool) { element(name, value ? "true" : "false") }

    /// Escapes markup characters; characters XML 1.0 cannot carry at all are written as
    /// character references so a key containing them still round-trips through url encoding.
    static func escape(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == 0x26 || $0 == 0x3C || $0 == 0x3E || $0 == 0x22 || $0 == 0x27 || $0 < 0x20 }) else {
            return value
        }
        var out = ""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default:
                if scalar.value < 0x20 { out += "&#\(scalar.value);" } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out
    }
}

/// An element of a parsed XML document: its local name (namespace prefix dropped), text and children.
struct XMLElement {
    var name: String
    var text = ""
    var children: [XMLElement] = []

    func child(_ name: String) -> XMLElement? { children.first { $0.name == name } }
    func children(_ name: String) -> [XMLElement] { children.filter { $0.name == name } }
}

/// A deliberately small XML parser for request bodies (DeleteObjects,
/// CompleteMultipartUpload, CreateBucketConfiguration): elements, attributes (skipped), text,
/// character and entity references, comments, processing instructions and CDATA. No DTDs
/// (a DOCTYPE is refused, so no entity expansion attacks), bounded depth.
struct XMLParser {
    private let bytes: [UInt8]
    private var i = 0
    static let maxDepth = 16

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    static func parse(_ bytes: [UInt8]) throws(S3Error) -> XMLElement {
        var parser = XMLParser(bytes)
        return try parser.document()
    }

    private mutating func document() throws(S3Error) -> XMLElement {
        try skipMisc()
        guard i < bytes.count, bytes[i] == UInt8(ascii: "<") else { throw .malformedXML }
        let root = try element(depth: 0)
        try skipMisc()
        guard i == bytes.count else { throw .malformedXML }
        return root
    }

    private mutating func skipMisc() throws(S3Error) {
        while true {
            while i < bytes.count && isSpace(bytes[i]) { i += 1 }
            if starts("<?") {
                try skip(past: "?>")
            } else if starts("<!--") {
                try skip(past: "-->")
            } else if starts("<!") {
                throw .malformedXML
            } else {
                return
            }
        }
    }

    private mutating func element(depth: Int) throws(S3Error) -> XMLElement {
        guard depth < Self.maxDepth else { throw .malformedXML }
        i += 1  // "<"
        let qualified = name()
        guard !qualified.isEmpty else { throw .malformedXML }
        var node = XMLElement(name: localName(qualified))
        // Attributes are skipped (xmlns and friends), quoted values honoured.
        while i < bytes.count && bytes[i] != UInt8(ascii: ">") && !starts("/>") {
            if bytes[i] == UInt8(ascii: "\"") || bytes[i] == UInt8(ascii: "'") {
                let quote = bytes[i]
                i += 1
                while i < bytes.count && bytes[i] != quote { i += 1 }
            }
            i += 1
        }
        guard i < bytes.count else { throw .malformedXML }
        if starts("/>") {
            i += 2
            return node
        }
        i += 1
        var text: [UInt8] = []
        while true {
            guard i < bytes.count else { throw .malformedXML }
            if starts("</") {
                i += 2
                let closing = name()
                guard closing == qualified else { throw .malformedXML }
                while i < bytes.count && isSpace(bytes[i]) { i += 1 }
                guard i < bytes.count, bytes[i] == UInt8(ascii: ">") else { throw .malformedXML }
                i += 1
                node.text = String(decoding: text, as: UTF8.self)
                return node
            } else if starts("<!--") {
                try skip(past: "-->")
            } else if starts("<![CDATA[") {
                i += 9
                while i < bytes.count && !starts("]]>") { text.append(bytes[i]); i += 1 }
                guard i < bytes.count else { throw .malformedXML }
                i += 3
            } else if starts("<?") {
                try skip(past: "?>")
            } else if bytes[i] == UInt8(ascii: "<") {
                node.children.append(try element(depth: depth + 1))
            } else if bytes[i] == UInt8(ascii: "&") {
                try reference(into: &text)
            } else {
                text.append(bytes[i])
                i += 1
            }
        }
    }

    private mutating func reference(into text: inout [UInt8]) throws(S3Error) {
        guard let end = bytes[i...].prefix(12).firstIndex(of: UInt8(ascii: ";")) else { throw .malformedXML }
        let body = String(decoding: bytes[(i + 1)..<end], as: UTF8.self)
        i = end + 1
        let scalar: Unicode.Scalar?
        switch body {
        case "amp": scalar = "&"
        case "lt": scalar = "<"
        case "gt": scalar = ">"
        case "quot": scalar = "\""
        case "apos": scalar = "'"
        default:
            if body.hasPrefix("#x") {
                scalar = UInt32(body.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init)
            } else if body.hasPrefix("#") {
                scalar = UInt32(body.dropFirst(1)).flatMap(Unicode.Scalar.init)
            } else {
                scalar = nil
            }
        }
        guard let scalar else { throw .malformedXML }
        text.append(contentsOf: Array(String(Character(scalar)).utf8))
    }

    private mutating func name() -> String {
        let start = i
        while i < bytes.count, !isSpace(bytes[i]), bytes[i] != UInt8(ascii: ">"), bytes[i] != UInt8(ascii: "/") { i += 1 }
        return String(decoding: bytes[start..<i], as: UTF8.self)
    }

    private func localName(_ qualified: String) -> String {
        if let colon = qualified.lastIndex(of: ":") { return String(qualified[qualified.index(after: colon)...]) }
        return qualified
    }

    private func starts(_ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard i + count <= bytes.count else { return false }
        let p = prefix.utf8Start
        for k in 0..<count where bytes[i + k] != p[k] { return false }
        return true
    }

    private mutating func skip(past end: StaticString) throws(S3Error) {
        while i < bytes.count && !starts(end) { i += 1 }
        guard i < bytes.count else { throw .malformedXML }
        i += end.utf8CodeUnitCount
    }

    private func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }
}
