/// Where a setting lives in the configuration document, for messages.
struct ConfigKeyPath: Sendable, CustomStringConvertible {
    var components: [JSONPathComponent] = []

    static let root = ConfigKeyPath()

    func key(_ key: String) -> ConfigKeyPath {
        ConfigKeyPath(components: components + [.key(key)])
    }

    func index(_ index: Int) -> ConfigKeyPath {
        ConfigKeyPath(components: components + [.index(index)])
    }

    /// The last key, which is the name a setting goes by in messages ("threads").
    var lastKey: String {
        for component in components.reversed() {
            if case .key(let k) = component { return k }
        }
        return ""
    }

    var description: String { JSONPathComponent.format(components) }
}

/// State carried through one decoding: what the machine looks like and the warnings so far.
struct ConfigDecodingContext {
    var environment: ConfigurationEnvironment
    var warnings: [ConfigWarning] = []

    mutating func warn(_ path: ConfigKeyPath, _ message: String) {
        warnings.append(ConfigWarning(keyPath: path.description, message: message))
    }
}

func configError(_ path: ConfigKeyPath, _ reason: String, fix: String) -> ConfigError {
    ConfigError(keyPath: path.description, reason: reason, fix: fix)
}

/// How a JSON value is named in "expected X, got Y" messages: `a string ("abc")`.
func describeJSON(_ value: JSONValue) -> String {
    switch value {
    case .null: return "null"
    case .bool(let b): return "a boolean (\(b))"
    case .number(let d): return "a number (\(JSONValue.formatNumber(d)))"
    case .string(let s):
        let shown = s.unicodeScalars.count > 40 ? String(String.UnicodeScalarView(s.unicodeScalars.prefix(40))) + "…" : s
        return "a string (\(JSONValue.quoted(shown)))"
    case .array(let a): return a.isEmpty ? "an empty array" : "an array"
    case .object(let o): return o.isEmpty ? "an empty object" : "an object"
    }
}

/// Lists choices for messages: `"a", "b" or "c"`.
func listChoices(_ choices: [String], conjunction: String = "or") -> String {
    let quoted = choices.map { JSONValue.quoted($0) }
    guard quoted.count > 1 else { return quoted.first ?? "" }
    return quoted.dropLast().joined(separator: ", ") + " \(conjunction) " + quoted.last!
}

// MARK: Reading single values

/// A value and where it is.
struct ConfigValue {
    let value: JSONValue
    let path: ConfigKeyPath

    /// `"threads": 16`, for examples in fixes; a bare value inside arrays.
    func example(_ literal: String) -> String {
        if case .key(let k)? = path.components.last { return "\(JSONValue.quoted(k)): \(literal)" }
        return literal
    }

    func int(in range: ClosedRange<Int>, example literal: String, hint: String? = nil) throws(ConfigError) -> Int {
        switch value {
        case .number(let d):
            guard let n = value.intValue else {
                throw configError(path, "expected a whole number, got \(JSONValue.formatNumber(d))",
                                  fix: "Use a whole number, e.g. \(example(literal)).")
            }
            guard range.contains(n) else {
                let bounds = range.upperBound == Int.max
                    ? "at least \(range.lowerBound)" : "from \(range.lowerBound) to \(range.upperBound)"
                throw configError(path, "\(n) is out of range: it must be \(bounds)",
                                  fix: hint ?? "Use a whole number \(bounds), e.g. \(example(literal)).")
            }
            return n
        case .string(let s) where Int(s) != nil && !s.hasPrefix("+") && !(s.count > 1 && s.hasPrefix("0")):
            throw configError(path, "expected a whole number, got \(describeJSON(value))",
                              fix: "Remove the quotes: \(example(s)).")
        default:
            throw configError(path, "expected a whole number, got \(describeJSON(value))",
                              fix: "Write a whole number without quotes, e.g. \(example(literal)).")
        }
    }

    func uint32(example literal: String, hint: String? = nil) throws(ConfigError) -> UInt32 {
        // 4294967295 is (uid_t)-1, which means "no change" to the kernel: never a real ID.
        UInt32(try int(in: 0...4_294_967_294, example: literal, hint: hint))
    }

    func bool() throws(ConfigError) -> Bool {
        if case .bool(let b) = value { return b }
        var fix = "Write true or false without quotes, e.g. \(example("true"))."
        if case .string(let s) = value, ["true", "false"].contains(s.lowercased()) {
            fix = "Remove the quotes: \(example(s.lowercased()))."
        }
        throw configError(path, "expected true or false, got \(describeJSON(value))", fix: fix)
    }

    func string(example literal: String, allowEmpty: Bool = false) throws(ConfigError) -> String {
        guard case .string(let s) = value else {
            var fix = "Write it as a string in double quotes, e.g. \(example(JSONValue.quoted(literal)))."
            if case .number(let d) = value { fix = "Put it in double quotes: \(example(JSONValue.quoted(JSONValue.formatNumber(d))))." }
            throw configError(path, "expected a string, got \(describeJSON(value))", fix: fix)
        }
        if !allowEmpty && s.isEmpty {
            throw configError(path, "must not be empty", fix: "Give a value, e.g. \(example(JSONValue.quoted(literal))).")
        }
        if s.unicodeScalars.contains("\0") {
            throw configError(path, "contains a NUL character (\\u0000)", fix: "Remove the \\u0000 escape.")
        }
        return s
    }

    /// One of an enumeration's raw values.
    func choice<E: RawRepresentable & CaseIterable>(_ type: E.Type) throws(ConfigError) -> E where E.RawValue == String {
        let names = E.allCases.map(\.rawValue)
        let s = try string(example: names[0], allowEmpty: true)
        guard let e = E(rawValue: s) else {
            throw configError(path, "\(JSONValue.quoted(s)) is not one of \(listChoices(names))",
                              fix: Suggestions.didYouMean(s, among: names) + "Use one of \(listChoices(names)).")
        }
        return e
    }

    func array() throws(ConfigError) -> [ConfigValue] {
        guard case .array(let elements) = value else {
            throw configError(path, "expected an array, got \(describeJSON(value))",
                              fix: "Write a list in square brackets, e.g. \(example("[ ... ]")).")
        }
        return elements.enumerated().map { ConfigValue(value: $1, path: path.index($0)) }
    }

    /// An object whose keys the caller names (a map of mounts, shares, …); nothing checked.
    func map(of what: String, example literal: String) throws(ConfigError) -> [(name: String, value: ConfigValue)] {
        guard case .object(let object) = value else {
            throw configError(path, "expected an object of \(what), got \(describeJSON(value))",
                              fix: "Write it as an object, e.g. \(example(literal)).")
        }
        return object.map { ($0.key, ConfigValue(value: $0.value, path: path.key($0.key))) }
    }

    /// An object with a fixed set of keys; unknown keys are refused with a suggestion.
    func section(_ what: String, keys allowed: [String], example literal: String) throws(ConfigError) -> ConfigSection {
        guard case .object(let object) = value else {
            throw configError(path, "expected an object (\(what)), got \(describeJSON(value))",
                              fix: "Write it as an object, e.g. \(example(literal)).")
        }
        for key in object.keys where !allowed.contains(key) {
            let place = path.components.isEmpty ? "at the top level" : "in \(what)"
            throw configError(path.key(key), "unknown key",
                              fix: Suggestions.didYouMean(key, among: allowed) + "The keys allowed \(place) are: \(allowed.joined(separator: ", ")).")
        }
        return ConfigSection(object: object, path: path, what: what)
    }
}

/// An object with known keys, being read one setting at a time. A key whose value is `null`
/// counts as absent, so `"threads": null` asks for the default.
struct ConfigSection {
    let object: JSONObject
    let path: ConfigKeyPath
    let what: String

    subscript(key: String) -> ConfigValue? {
        guard let v = object[key], !v.isNull else { return nil }
        return ConfigValue(value: v, path: path.key(key))
    }

    func require(_ key: String, example literal: String) throws(ConfigError) -> ConfigValue {
        guard let v = self[key] else {
            let verb = object[key] == nil ? "is missing" : "is null"
            throw configError(path.key(key), "\(verb) (\(what) needs a \(JSONValue.quoted(key)))",
                              fix: "Add it, e.g. \(JSONValue.quoted(key)): \(literal).")
        }
        return v
    }

    func int(_ key: String, in range: ClosedRange<Int>, default value: Int, example: String, hint: String? = nil) throws(ConfigError) -> Int {
        try self[key]?.int(in: range, example: example, hint: hint) ?? value
    }

    func optionalInt(_ key: String, in range: ClosedRange<Int>, example: String, hint: String? = nil) throws(ConfigError) -> Int? {
        try self[key]?.int(in: range, example: example, hint: hint)
    }

    func bool(_ key: String, default value: Bool) throws(ConfigError) -> Bool {
        try self[key]?.bool() ?? value
    }

    func choice<E: RawRepresentable & CaseIterable>(_ key: String, default value: E) throws(ConfigError) -> E where E.RawValue == String {
        try self[key]?.choice(E.self) ?? value
    }
}
