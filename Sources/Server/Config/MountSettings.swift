/// Which filesystem module serves a mount.
public enum MountModule: Sendable, Hashable, CustomStringConvertible {
    /// In memory; `path` is a directory inside it ("/" typically).
    case memfs
    /// A host directory through blocking system calls on delegation threads.
    case linux
    /// A host directory through io_uring.
    case ioUring
    /// A plugin declared under `server.vfs`; `path` is inside the plugin's filesystem.
    case plugin(String)
    /// A test facility: another mount's module with errors and delays injected by rules
    /// (`MountSettings.faults`).
    case faults

    public static let builtinNames = ["memfs", "linux", "io_uring", "faults"]

    /// The name a configuration uses: `memfs`, `linux`, `io_uring` or the plugin's name.
    public var name: String {
        switch self {
        case .memfs: "memfs"
        case .linux: "linux"
        case .ioUring: "io_uring"
        case .plugin(let name): name
        case .faults: "faults"
        }
    }

    /// Whether `path` is a directory on the host (linux and io_uring).
    public var servesHostDirectory: Bool {
        switch self {
        case .linux, .ioUring: true
        case .memfs, .plugin, .faults: false
        }
    }

    public var description: String { name }
}

/// One entry of `mounts`: a filesystem that appears at /NAME in the server's namespace.
///
/// For `linux` and `io_uring`, `path` is an absolute directory on the host; a directory that
/// does not exist is a warning, and the server keeps the mount offline while it serves the rest.
/// For `memfs` and plugins, `path` is the directory inside that filesystem to serve ("/").
///
/// `cache_ttl_ms` (optional, 0 to 3600000) is how long the VFS believes a cached name or
/// attribute of a `linux` or `io_uring` mount before asking the host again: changes made
/// through the server are seen at once regardless; this bounds how long a change made directly
/// in the host directory can go unseen. 0 turns the cache off; absent means 1000 (one second).
/// memfs and plugins are not cached, so there it is a warning.
public struct MountSettings: Sendable, Equatable {
    /// 1 to 64 of `A-Z a-z 0-9 . _ -`, not "." or "..".
    public var name: String
    public var module: MountModule
    public var path: String
    /// `cache_ttl_ms`; nil: the module's default.
    public var cacheTTLMilliseconds: Int?
    /// For `faults` mounts: the wrapped mount and the rules (`path` is then the wrapped mount's).
    public var faults: FaultMountSettings?

    public static let maxCacheTTLMilliseconds = 3_600_000

    public init(name: String, module: MountModule, path: String, cacheTTLMilliseconds: Int? = nil, faults: FaultMountSettings? = nil) {
        self.name = name
        self.module = module
        self.path = path
        self.cacheTTLMilliseconds = cacheTTLMilliseconds
        self.faults = faults
    }

    /// Where the mount appears in the server's namespace: "/" + name.
    public var namespacePath: String { "/" + name }
}

// MARK: Reading and writing

extension MountSettings {
    static func decodeAll(_ value: ConfigValue?, plugins: [VFSPluginSettings], context: inout ConfigDecodingContext) throws(ConfigError) -> [MountSettings] {
        guard let value else {
            context.warn(.root.key("mounts"), "no mounts are configured, so there is nothing to serve")
            return []
        }
        let entries = try value.map(of: "mounts", example: #""mounts": { "data": { "module": "memfs", "path": "/" } }"#)
        if entries.isEmpty {
            context.warn(value.path, "no mounts are configured, so there is nothing to serve")
        }
        let pluginNames = plugins.map(\.name)
        let moduleNames = MountModule.builtinNames + pluginNames
        var mounts: [MountSettings] = []
        for (name, entryValue) in entries {
            try ConfigNames.checkSimpleName(name, at: entryValue.path, kind: "mount")
            let entry = try entryValue.section("a mount", keys: ["module", "path", "cache_ttl_ms", "wraps", "rules"],
                                               example: #"{ "module": "memfs", "path": "/" }"#)
            let moduleValue = try entry.require("module", example: "\"memfs\"")
            let moduleName = try moduleValue.string(example: "memfs")
            let module: MountModule
            switch moduleName {
            case "memfs": module = .memfs
            case "linux": module = .linux
            case "io_uring": module = .ioUring
            case "faults": module = .faults
            case let other where pluginNames.contains(other): module = .plugin(other)
            default:
                let declared = pluginNames.isEmpty
                    ? "no plugins are declared in server.vfs"
                    : "the plugins declared in server.vfs are \(listChoices(pluginNames, conjunction: "and"))"
                throw configError(moduleValue.path, "unknown module \(JSONValue.quoted(moduleName))",
                                  fix: Suggestions.didYouMean(moduleName, among: moduleNames)
                                      + "Use \(listChoices(MountModule.builtinNames)), or declare a plugin of that name under server.vfs (\(declared)).")
            }
            if module == .faults {
                if let pathValue = entry["path"] {
                    throw configError(pathValue.path, "a faults mount has no path of its own: it serves the mount named in \"wraps\"",
                                      fix: "Remove \"path\" and name the mount to wrap, e.g. \"wraps\": \"disk\".")
                }
                let ttl = try entry.optionalInt(
                    "cache_ttl_ms", in: 0...maxCacheTTLMilliseconds, example: "0",
                    hint: "Use 0 (no cache, so getattr and lookup rules see every call) to \(maxCacheTTLMilliseconds) milliseconds.")
                mounts.append(MountSettings(name: name, module: .faults, path: "/", cacheTTLMilliseconds: ttl,
                                            faults: try FaultMountSettings.decode(entry)))
                continue
            }
            for key in ["wraps", "rules"] {
                if let misplaced = entry[key] {
                    throw configError(misplaced.path, "only faults mounts have \(JSONValue.quoted(key)), and this mount's module is \(module)",
                                      fix: "Remove it, or make a separate mount { \"module\": \"faults\", \"wraps\": \(JSONValue.quoted(name)), \"rules\": [ … ] }.")
                }
            }
            let pathValue = try entry.require("path", example: module.servesHostDirectory ? "\"/srv/data\"" : "\"/\"")
            let path = try pathValue.string(example: module.servesHostDirectory ? "/srv/data" : "/")
            if module.servesHostDirectory {
                try NamespacePath.checkClean(path, at: pathValue.path, what: "the host directory",
                                             fix: "Give the directory's full path on this machine, e.g. \"path\": \"/srv/data\".")
            } else {
                try NamespacePath.checkClean(path, at: pathValue.path, what: "the path",
                                             fix: "It is a directory inside the \(module) filesystem; \"/\" serves all of it.")
            }
            let ttl = try entry.optionalInt(
                "cache_ttl_ms", in: 0...maxCacheTTLMilliseconds, example: "1000",
                hint: "Use 0 (no cache) to \(maxCacheTTLMilliseconds) (one hour) milliseconds, or leave \"cache_ttl_ms\" out for the default (1000).")
            if ttl != nil, !module.servesHostDirectory, let ttlValue = entry["cache_ttl_ms"] {
                context.warn(ttlValue.path, "the \(module) module is not cached (only linux and io_uring are), so cache_ttl_ms has no effect")
            }
            mounts.append(MountSettings(name: name, module: module, path: path, cacheTTLMilliseconds: ttl))
        }
        try resolveWrappedMounts(&mounts)
        return mounts
    }

    /// Checks that each faults mount wraps a memfs, linux or io_uring mount, and takes its path.
    private static func resolveWrappedMounts(_ mounts: inout [MountSettings]) throws(ConfigError) {
        for index in mounts.indices {
            guard let faults = mounts[index].faults else { continue }
            let at = ConfigKeyPath.root.key("mounts").key(mounts[index].name).key("wraps")
            let others = mounts.filter { $0.faults == nil }.map(\.name)
            guard let wrapped = mounts.first(where: { $0.name == faults.wraps }) else {
                throw configError(at, "there is no mount \(JSONValue.quoted(faults.wraps))",
                                  fix: Suggestions.didYouMean(faults.wraps, among: others)
                                      + (others.isEmpty ? "Add the mount to wrap under mounts." : "Name one of \(listChoices(others))."))
            }
            switch wrapped.module {
            case .memfs, .linux, .ioUring:
                mounts[index].path = wrapped.path
                mounts[index].faults?.wraps = wrapped.name
            case .faults:
                throw configError(at, "mount \(JSONValue.quoted(wrapped.name)) is a faults mount itself",
                                  fix: "Wrap a memfs, linux or io_uring mount, and put all the rules in one faults mount.")
            case .plugin:
                throw configError(at, "mount \(JSONValue.quoted(wrapped.name)) is a plugin, which a faults mount cannot wrap (it would open the plugin's store a second time)",
                                  fix: "Wrap a memfs, linux or io_uring mount.")
            }
        }
    }

    func jsonValue() -> JSONValue {
        if let faults {
            var object: JSONObject = ["module": .string(module.name), "wraps": .string(faults.wraps), "rules": faults.jsonValue()]
            if let cacheTTLMilliseconds { object["cache_ttl_ms"] = .number(Double(cacheTTLMilliseconds)) }
            return .object(object)
        }
        guard let cacheTTLMilliseconds else { return ["module": .string(module.name), "path": .string(path)] }
        return ["module": .string(module.name), "path": .string(path), "cache_ttl_ms": .number(Double(cacheTTLMilliseconds))]
    }

    func environmentWarnings(_ environment: ConfigurationEnvironment, into warnings: inout [ConfigWarning]) {
        guard module.servesHostDirectory else { return }
        let keyPath = ConfigKeyPath.root.key("mounts").key(name).key("path").description
        let consequence = "the server keeps mount \(JSONValue.quoted(name)) (\(namespacePath)) offline and serves the rest"
        switch environment.fileKind(path) {
        case .directory:
            break
        case .missing:
            warnings.append(ConfigWarning(keyPath: keyPath, message: "directory \(path) does not exist on this machine; \(consequence)"))
        case .regularFile, .other:
            warnings.append(ConfigWarning(keyPath: keyPath, message: "\(path) is not a directory; \(consequence)"))
        }
    }
}
