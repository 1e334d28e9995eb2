import FaultFS
import LinuxFS
import Logging
import MemFS
import PluginFS
import Runtime
import URingFS
import VFS

/// Builds the VFS namespace from the configuration's `mounts`. A mount whose backing is
/// missing (a host directory, a plugin library) stays offline with a warning; the rest serve.
enum Mounts {
    static func build(_ configuration: Configuration, group: LoopGroup, logger: Logger) -> VirtualFileSystem {
        let vfs = VirtualFileSystem()
        for mount in configuration.mounts {
            let backend: FileSystemBackend
            do {
                backend = try makeBackend(mount, configuration: configuration, group: group)
            } catch {
                logger.warning("mount \(mount.name): \(error); the mount stays offline")
                continue
            }
            do {
                try vfs.mount(mount.name, backend: backend, cacheTTLNanoseconds: mount.cacheTTLMilliseconds.map { UInt64($0) * 1_000_000 })
                if let faults = mount.faults {
                    logger.info("mount /\(mount.name): faults over mount \(faults.wraps) (\(mount.path)), \(faults.rules.count) rules")
                } else {
                    logger.info("mount /\(mount.name): \(mount.module.name) \(mount.path)")
                }
            } catch {
                logger.warning("mount \(mount.name): \(error); the mount stays offline")
            }
        }
        return vfs
    }

    private struct BackendError: Error, CustomStringConvertible {
        var description: String
    }

    private static func makeBackend(_ mount: MountSettings, configuration: Configuration, group: LoopGroup) throws -> FileSystemBackend {
        switch mount.module {
        case .memfs:
            return MemFS()
        case .linux:
            do {
                return try LinuxFS(root: mount.path, delegation: group.delegation)
            } catch {
                throw BackendError(description: "cannot serve \(mount.path) with module linux: \(error)")
            }
        case .ioUring:
            do {
                return try URingFS(root: mount.path, delegation: group.delegation)
            } catch {
                throw BackendError(description: "cannot serve \(mount.path) with module io_uring: \(error)")
            }
        case let .plugin(name):
            guard let plugin = configuration.server.plugin(named: name) else {
                throw BackendError(description: "no plugin \(name) in server.vfs")
            }
            return try PluginFS(name: name, libraryPath: plugin.libraryPath, configPath: plugin.configPath, delegation: group.delegation)
        case .faults:
            guard let faults = mount.faults, let wrapped = configuration.mount(named: faults.wraps) else {
                throw BackendError(description: "a faults mount needs the mount it wraps")
            }
            let inner = try makeBackend(wrapped, configuration: configuration, group: group)
            return FaultFS(wrapping: inner, rules: faults.rules, delegation: group.delegation)
        }
    }
}
