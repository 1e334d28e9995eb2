/// Why a plugin could not be loaded. Each message names the plugin and says what to fix.
public enum PluginError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No file at the configured path (or, for a bare name, nowhere on the library search path).
    case libraryNotFound(plugin: String, path: String)
    /// The file exists but dlopen refused it (not an ELF library, wrong architecture, a missing
    /// dependency, an unresolved symbol).
    case loadFailed(plugin: String, path: String, reason: String)
    /// The library does not export `dmanoel_vfs_plugin_entry`.
    case missingSymbol(plugin: String, path: String)
    /// The entry point returned no table for the server's ABI version.
    case refused(plugin: String, serverVersion: UInt32)
    /// The table was built for another ABI version.
    case abiMismatch(plugin: String, pluginVersion: UInt32, serverVersion: UInt32)
    /// The table is too small or lacks a required operation.
    case badTable(plugin: String, reason: String)
    /// The plugin's `init` failed; `message` is its own explanation.
    case initFailed(plugin: String, message: String)
    /// The plugin's handles are longer than the ABI allows.
    case handleTooLarge(plugin: String, length: Int)

    public var description: String {
        switch self {
        case let .libraryNotFound(plugin, path):
            "plugin \(plugin): library \(path) not found"
        case let .loadFailed(plugin, path, reason):
            "plugin \(plugin): cannot load library \(path): \(reason)"
        case let .missingSymbol(plugin, path):
            "plugin \(plugin): no symbol \(PluginFS.entrySymbol) in \(path) (not a dmanoel-NAS VFS plugin)"
        case let .refused(plugin, serverVersion):
            "plugin \(plugin): \(PluginFS.entrySymbol) returned no table for ABI version \(serverVersion) (the plugin does not support this server)"
        case let .abiMismatch(plugin, pluginVersion, serverVersion):
            "plugin \(plugin): ABI version \(pluginVersion), server supports \(serverVersion)"
        case let .badTable(plugin, reason):
            "plugin \(plugin): invalid operation table: \(reason)"
        case let .initFailed(plugin, message):
            "plugin \(plugin): init failed: \(message)"
        case let .handleTooLarge(plugin, length):
            "plugin \(plugin): handles of \(length) bytes, at most \(PluginFS.maxHandleLength) allowed"
        }
    }
}
