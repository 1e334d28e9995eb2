/// A JSON value, as read by ``JSONValue/parse(_:maximumDepth:)`` and written by
/// ``JSONValue/serialized(pretty:)``.
///
/// Numbers are kept as `Double`, which represents every integer up to 2^53 exactly;
/// ``intValue`` hands back a whole number only when the value is one (so `16` and `1.6e1`
/// are both 16, while `1.5` is refused). Objects keep their members in the order they were
/// written, so a document read and written back keeps its shape.
///
/// No Foundation: the parser runs over UTF-8 bytes and is meant for configuration files and
/// the admin API alike.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
}

extension JSONValue {
    /// The largest magnitude up to which every whole number is exactly representable (2^53).
    public static let maximumExactInteger: Double = 9_007_199_254_740_992

    /// The value as an `Int` when it is a number with no fractional part and a magnitude of at
    /// most 2^53; `nil` for anything else (including `1.5`, `"3"` and `true`).
    public var intValue: Int? {
        guard case .number(let d) = self, d.isFinite, d.magnitude <= JSONValue.maximumExactInteger,
              d.rounded(.towardZero) == d else { return nil }
        return Int(d)
    }

    /// The value as a `Double` when it is a number.
    public var doubleValue: Double? {
        if case .number(let d) = self { return d }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The member named `key` when this is an object; `nil` otherwise or when there is none.
    public subscript(key: String) -> JSONValue? {
        objectValue?[key]
    }

    /// The element at `index` when this is an array and the index is in range.
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let a) = self, a.indices.contains(index) else { return nil }
        return a[index]
    }
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        var object = JSONObject()
        for (key, value) in elements {
            precondition(object[key] == nil, "duplicate key \"\(key)\" in a JSON object literal")
            object[key] = value
        }
        self = .object(object)
    }
}

/// The members of a JSON object, in insertion order, with keys unique.
///
/// Equality follows JSON's meaning: two objects are equal when they have the same keys with
/// equal values, whatever the order.
public struct JSONObject: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral {
    public typealias Member = (key: String, value: JSONValue)

    /// The keys, in the order they were inserted.
    public private(set) var keys: [String]
    /// The values, parallel to ``keys``.
    public private(set) var values: [JSONValue]
    private var positions: [String: Int]

    public init() {
        keys = []
        values = []
        positions = [:]
    }

    /// Builds an object from parallel arrays whose keys the caller has already made unique.
    init(uniqueKeys keys: [String], values: [JSONValue], positions: [String: Int]) {
        self.keys = keys
        self.values = values
        self.positions = positions
    }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init()
        for (key, value) in elements {
            precondition(positions[key] == nil, "duplicate key \"\(key)\" in a JSON object literal")
            self[key] = value
        }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    /// Reads a member; setting a new key appends it, setting an existing key replaces its value
    /// in place, and setting `nil` removes the member.
    public subscript(key: String) -> JSONValue? {
        get {
            guard let i = positions[key] else { return nil }
            return values[i]
        }
        set {
            if let i = positions[key] {
                if let newValue {
                    values[i] = newValue
                } else {
                    keys.remove(at: i)
                    values.remove(at: i)
                    positions[key] = nil
                    for j in i..<keys.count { positions[keys[j]] = j }
                }
            } else if let newValue {
                positions[key] = keys.count
                keys.append(key)
                values.append(newValue)
            }
        }
    }

    public func contains(key: String) -> Bool { positions[key] != nil }

    public struct Iterator: IteratorProtocol {
        let object: JSONObject
        var position = 0

        public mutating func next() -> Member? {
            guard position < object.keys.count else { return nil }
            defer { position += 1 }
            return (object.keys[position], object.values[position])
        }
    }

    public func makeIterator() -> Iterator { Iterator(object: self) }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.keys.count == rhs.keys.count else { return false }
        for (i, key) in lhs.keys.enumerated() {
            guard let j = rhs.positions[key], rhs.values[j] == lhs.values[i] else { return false }
        }
        return true
    }
}
