/// A small YAML subset, enough for workload files, with the line of every node kept for error
/// messages: block mappings and sequences by indentation, `- ` items (including `- key: value`
/// mappings), plain / single- / double-quoted scalars, flow sequences `[a, b]` and flow
/// mappings `{k: v}` on one line, and `#` comments. No anchors, tags or multi-line scalars.
/// (Yams would parse full YAML; this keeps the build free of a dependency and its minutes.)
public indirect enum YAMLNode: Sendable, Equatable {
    case scalar(String, line: Int)
    case sequence([YAMLNode], line: Int)
    case mapping([(key: String, value: YAMLNode, line: Int)], line: Int)

    public var line: Int {
        switch self {
        case let .scalar(_, line), let .sequence(_, line), let .mapping(_, line): line
        }
    }

    public static func == (a: YAMLNode, b: YAMLNode) -> Bool {
        switch (a, b) {
        case let (.scalar(x, _), .scalar(y, _)): x == y
        case let (.sequence(x, _), .sequence(y, _)): x == y
        case let (.mapping(x, _), .mapping(y, _)):
            x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }

    public var scalarValue: String? { if case let .scalar(s, _) = self { s } else { nil } }
}

public struct YAMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

public enum YAML {
    private struct Line {
        var number: Int
        var indent: Int
        var text: Substring
    }

    public static func parse(_ text: String) throws(YAMLError) -> YAMLNode {
        var lines: [Line] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var content = stripComment(raw)
            while content.last == " " || content.last == "\r" || content.last == "\t" { content = content.dropLast() }
            guard !content.isEmpty else { continue }
            if content == "---" { continue }
            let indent = content.prefix { $0 == " " }.count
            if content.dropFirst(indent).first == "\t" { throw YAMLError(line: index + 1, message: "tabs are not allowed for indentation; use spaces") }
            lines.append(Line(number: index + 1, indent: indent, text: content.dropFirst(indent)))
        }
        guard !lines.isEmpty else { return .mapping([], line: 1) }
        var position = 0
        let node = try block(&lines, &position, indent: lines[0].indent)
        if position < lines.count {
            throw YAMLError(line: lines[position].number, message: "unexpected indentation (this line does not belong to any key above)")
        }
        return node
    }

    /// Removes a `#` comment that is not inside quotes.
    private static func stripComment(_ line: Substring) -> Substring {
        var quote: Character?
        var previous: Character = " "
        for index in line.indices {
            let c = line[index]
            if let q = quote {
                if c == q { quote = nil }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == "#" && (previous == " " || index == line.startIndex) {
                return line[..<index]
            }
            previous = c
        }
        return line
    }

    private static func block(_ lines: inout [Line], _ position: inout Int, indent: Int) throws(YAMLError) -> YAMLNode {
        let first = lines[position]
        if first.text == "-" || first.text.hasPrefix("- ") {
            var items: [YAMLNode] = []
            while position < lines.count, lines[position].indent == indent,
                  lines[position].text == "-" || lines[position].text.hasPrefix("- ") {
                let line = lines[position]
                let rest = line.text.dropFirst(1).drop { $0 == " " }
                if rest.isEmpty {
                    position += 1
                    guard position < lines.count, lines[position].indent > indent else {
                        items.append(.scalar("", line: line.number))
                        continue
                    }
                    items.append(try block(&lines, &position, indent: lines[position].indent))
                } else {
                    // "- key: value ..." starts a mapping whose keys sit at the item's column.
                    let column = indent + (line.text.count - rest.count)
                    lines[position] = Line(number: line.number, indent: column, text: rest)
                    if isMappingLine(rest) {
                        items.append(try block(&lines, &position, indent: column))
                    } else {
                        items.append(try value(rest, line: line.number))
                        position += 1
                    }
                }
            }
            return .sequence(items, line: first.number)
        }
        var entries: [(key: String, value: YAMLNode, line: Int)] = []
        while position < lines.count, lines[position].indent == indent {
            let line = lines[position]
            guard let (key, rest) = splitKey(line.text) else {
                throw YAMLError(line: line.number, message: "expected 'key: value' (or '- item' in a list), found '\(line.text)'")
            }
            if entries.contains(where: { $0.key == key }) {
                throw YAMLError(line: line.number, message: "duplicate key '\(key)'")
            }
            position += 1
            if rest.isEmpty {
                if position < lines.count, lines[position].indent > indent {
                    entries.append((key, try block(&lines, &position, indent: lines[position].indent), line.number))
                } else if position < lines.count, lines[position].indent == indent, lines[position].text.hasPrefix("- ") || lines[position].text == "-" {
                    // A list may sit at its key's own indentation.
                    entries.append((key, try block(&lines, &position, indent: indent), line.number))
                } else {
                    entries.append((key, .scalar("", line: line.number), line.number))
                }
            } else {
                entries.append((key, try value(rest, line: line.number), line.number))
            }
        }
        if position < lines.count, lines[position].indent > indent {
            throw YAMLError(line: lines[position].number, message: "unexpected indentation")
        }
        return .mapping(entries, line: first.number)
    }

    private static func isMappingLine(_ text: Substring) -> Bool {
        guard let first = text.first, first != "[", first != "{", first != "\"", first != "'" else { return false }
        return splitKey(text) != nil
    }

    /// "key: rest" or "key:" → (key, rest); nil when the line is not a key.
    private static func splitKey(_ text: Substring) -> (String, Substring)? {
        var index = text.startIndex
        if text.first == "\"" || text.first == "'" {
            let q = text.first!
            guard let close = text[text.index(after: index)...].firstIndex(of: q) else { return nil }
            index = text.index(after: close)
            guard index < text.endIndex, text[index] == ":" else { return nil }
            let key = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: index)...].drop { $0 == " " }
            return (key, rest)
        }
        while index < text.endIndex {
            if text[index] == ":" {
                let next = text.index(after: index)
                if next == text.endIndex || text[next] == " " {
                    let key = text[..<index].trimmingCharacters()
                    guard !key.isEmpty else { return nil }
                    return (key, text[next...].drop { $0 == " " })
                }
            }
            index = text.index(after: index)
        }
        return nil
    }

    /// An inline value: scalar, `[flow, sequence]` or `{flow: mapping}`.
    static func value(_ text: Substring, line: Int) throws(YAMLError) -> YAMLNode {
        var scanner = Flow(text: Array(text), line: line)
        let node = try scanner.node(topLevel: true)
        scanner.skipSpaces()
        guard scanner.atEnd else { throw YAMLError(line: line, message: "unexpected text after a value: '\(String(scanner.rest))'") }
        return node
    }

    private struct Flow {
        var text: [Character]
        var line: Int
        var i = 0
        var atEnd: Bool { i >= text.count }
        var rest: [Character] { Array(text[min(i, text.count)...]) }

        mutating func skipSpaces() { while i < text.count, text[i] == " " { i += 1 } }

        mutating func node(topLevel: Bool) throws(YAMLError) -> YAMLNode {
            skipSpaces()
            guard i < text.count else { return .scalar("", line: line) }
            switch text[i] {
            case "[":
                i += 1
                var items: [YAMLNode] = []
                skipSpaces()
                if i < text.count, text[i] == "]" { i += 1; return .sequence([], line: line) }
                while true {
                    items.append(try node(topLevel: false))
                    skipSpaces()
                    guard i < text.count else { throw YAMLError(line: line, message: "unclosed '['") }
                    if text[i] == "," { i += 1; continue }
                    if text[i] == "]" { i += 1; return .sequence(items, line: line) }
                    throw YAMLError(line: line, message: "expected ',' or ']' in a list")
                }
            case "{":
                i += 1
                var entries: [(key: String, value: YAMLNode, line: Int)] = []
                skipSpaces()
                if i < text.count, text[i] == "}" { i += 1; return .mapping([], line: line) }
                while true {
                    guard case let .scalar(key, _) = try scalar(stops: [":"]) else { throw YAMLError(line: line, message: "bad key") }
                    guard i < text.count, text[i] == ":" else { throw YAMLError(line: line, message: "expected ':' after '\(key)' in '{...}'") }
                    i += 1
                    if entries.contains(where: { $0.key == key }) { throw YAMLError(line: line, message: "duplicate key '\(key)'") }
                    entries.append((key, try node(topLevel: false), line))
                    skipSpaces()
                    guard i < text.count else { throw YAMLError(line: line, message: "unclosed '{'") }
                    if text[i] == "," { i += 1; skipSpaces(); continue }
                    if text[i] == "}" { i += 1; return .mapping(entries, line: line) }
                    throw YAMLError(line: line, message: "expected ',' or '}' in a mapping")
                }
            default:
                return try scalar(stops: topLevel ? [] : [",", "]", "}"])
            }
        }

        mutating func scalar(stops: Set<Character>) throws(YAMLError) -> YAMLNode {
            skipSpaces()
            if i < text.count, text[i] == "\"" || text[i] == "'" {
                let q = text[i]
                i += 1
                var out = ""
                while i < text.count, text[i] != q {
                    if q == "\"", text[i] == "\\", i + 1 < text.count {
                        i += 1
                        switch text[i] {
                        case "n": out.append("\n")
                        case "t": out.append("\t")
                        default: out.append(text[i])
                        }
                    } else {
                        out.append(text[i])
                    }
                    i += 1
                }
                guard i < text.count else { throw YAMLError(line: line, message: "unclosed quote") }
                i += 1
                return .scalar(out, line: line)
            }
            var out = ""
            while i < text.count, !stops.contains(text[i]) {
                out.append(text[i])
                i += 1
            }
            return .scalar(Substring(out).trimmingCharacters(), line: line)
        }
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        var s = self
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

extension YAMLNode {
    /// Sets `path` (keys separated by dots; in a list, an item is named by its index or by its
    /// `name` or `kind` value, e.g. `phases.measure.duration`) to the scalar `value`, adding
    /// the last key when it is missing. Throws with the part of the path that does not exist.
    public func setting(_ path: [String], to value: YAMLNode) throws(YAMLError) -> YAMLNode {
        guard let first = path.first else { return value }
        let rest = Array(path.dropFirst())
        switch self {
        case let .mapping(entries, l):
            var entries = entries
            if let i = entries.firstIndex(where: { $0.key == first }) {
                entries[i].value = try entries[i].value.setting(rest, to: value)
            } else {
                guard rest.isEmpty else { throw YAMLError(line: l, message: "--set: no key '\(first)' here to go into") }
                entries.append((first, value, value.line))
            }
            return .mapping(entries, line: l)
        case let .sequence(items, l):
            var items = items
            let index = Int(first) ?? items.firstIndex { item in
                guard case let .mapping(entries, _) = item else { return false }
                return entries.contains { ($0.key == "name" || $0.key == "kind") && $0.value.scalarValue == first }
            }
            guard let index, index >= 0, index < items.count else {
                throw YAMLError(line: l, message: "--set: no list item '\(first)' (give an index, or a phase's name or kind)")
            }
            items[index] = try items[index].setting(rest, to: value)
            return .sequence(items, line: l)
        case .scalar:
            throw YAMLError(line: self.line, message: "--set: '\(first)' goes into a plain value")
        }
    }
}
