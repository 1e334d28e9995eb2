import FaultFS
import JSON

/// What a `faults` mount (a test facility) adds to a mount entry: the mount it wraps and its
/// rules. The faults mount opens its own instance of the wrapped mount's module over the same
/// directory, so a linux or io_uring directory shows at both names (the wrapped one without
/// faults); over memfs the faults mount has a memfs of its own.
///
/// `{"module": "faults", "wraps": "disk", "rules": [{"op": "write", "error": "ENOSPC", "after_bytes": 1048576}]}`
public struct FaultMountSettings: Sendable, Equatable {
    /// The name of another mount (memfs, linux or io_uring).
    public var wraps: String
    public var rules: [FaultRule]

    public init(wraps: String, rules: [FaultRule]) {
        self.wraps = wraps
        self.rules = rules
    }

    static let ruleKeys = ["op", "error", "after_bytes", "every_n", "path_prefix", "delay_ms"]
    static let ruleExample = #"{ "op": "write", "error": "ENOSPC", "after_bytes": 1048576 }"#
}

extension FaultMountSettings {
    static func decode(_ entry: ConfigSection) throws(ConfigError) -> FaultMountSettings {
        let wrapsValue = try entry.require("wraps", example: "\"disk\"")
        let wraps = try wrapsValue.string(example: "disk")
        let rulesValue = try entry.require("rules", example: "[ \(ruleExample) ]")
        var rules: [FaultRule] = []
        for ruleValue in try rulesValue.array() {
            rules.append(try decodeRule(ruleValue))
        }
        return FaultMountSettings(wraps: wraps, rules: rules)
    }

    private static func decodeRule(_ value: ConfigValue) throws(ConfigError) -> FaultRule {
        let rule = try value.section("a fault rule", keys: ruleKeys, example: ruleExample)
        let operation = try rule.require("op", example: "\"write\"").choice(FaultOperation.self)
        var errorName: String?
        if let errorValue = rule["error"] {
            let name = try errorValue.string(example: "EIO")
            let names = FaultRule.errors.keys.sorted()
            guard FaultRule.errors[name] != nil else {
                throw configError(errorValue.path, "\(JSONValue.quoted(name)) is not an error a fault rule can inject",
                                  fix: Suggestions.didYouMean(name, among: names) + "Use one of \(listChoices(names)).")
            }
            errorName = name
        }
        let delay = try rule.optionalInt("delay_ms", in: 0...FaultRule.maxDelayMilliseconds, example: "2000",
                                         hint: "Use 0 to \(FaultRule.maxDelayMilliseconds) milliseconds.")
        if errorName == nil && (delay ?? 0) == 0 {
            throw configError(value.path, "the rule neither fails nor delays anything",
                              fix: "Add \"error\": \"EIO\" (or another errno name), \"delay_ms\": 1000, or both.")
        }
        let afterBytes = try rule.optionalInt("after_bytes", in: 0...Int.max, example: "1048576")
        if afterBytes != nil, !operation.movesBytes, let afterValue = rule["after_bytes"] {
            throw configError(afterValue.path, "after_bytes counts the bytes reads and writes move, and op is \(JSONValue.quoted(operation.rawValue))",
                              fix: "Use \"op\": \"write\", \"read\" or \"any\" with after_bytes, or trigger with every_n.")
        }
        let everyN = try rule.optionalInt("every_n", in: 1...1_000_000_000, example: "10",
                                          hint: "Use 1 (every call) to 1000000000.")
        var pathPrefix: String?
        if let prefixValue = rule["path_prefix"] {
            let prefix = try prefixValue.string(example: "/dir/file")
            guard prefix.hasPrefix("/"), !prefix.contains("//"), !prefix.utf8.contains(0) else {
                throw configError(prefixValue.path, "\(JSONValue.quoted(prefix)) is not a path inside the mount",
                                  fix: "Start it with \"/\" (the mount's root), e.g. \"path_prefix\": \"/slow\"; it matches every path that starts with it.")
            }
            pathPrefix = prefix
        }
        return FaultRule(operation: operation, errorName: errorName, afterBytes: afterBytes.map { UInt64($0) },
                         everyN: everyN, pathPrefix: pathPrefix, delayMilliseconds: delay)
    }

    func jsonValue() -> JSONValue {
        var rulesJSON: [JSONValue] = []
        for rule in rules {
            var object = JSONObject()
            object["op"] = .string(rule.operation.rawValue)
            if let errorName = rule.errorName { object["error"] = .string(errorName) }
            if let afterBytes = rule.afterBytes { object["after_bytes"] = .number(Double(afterBytes)) }
            if let everyN = rule.everyN { object["every_n"] = .number(Double(everyN)) }
            if let pathPrefix = rule.pathPrefix { object["path_prefix"] = .string(pathPrefix) }
            if let delay = rule.delayMilliseconds { object["delay_ms"] = .number(Double(delay)) }
            rulesJSON.append(.object(object))
        }
        return .array(rulesJSON)
    }
}
