import Logging
import MemFS
import Runtime
import VFS

/// Builds the VFS namespace from the configuration's `mounts`. A mount whose backing is
/// missing (a host directory, a plugin library) stays offline with a warning; the rest serve.
enum Mounts {
    static func build(_ configuration: Configuration, group: LoopGroup, logger: Logger) -> VirtualFileSystem {
        let vfs = VirtualFileSystem()
        for mount in configuration.mounts {
            let backend: FileSystemBackend
            switch mount.module {
            case .memfs:
                backend = MemFS()
            case .linux, .ioUring, .plugin:
                logger.warning("mount \(mount.name): module \(mount.module.name) is not available in this build yet; the mount stays offline")
                continue
            }
            do {
                try vfs.mount(mount.name, backend: backend)
                logger.info("mount /\(mount.name): \(mount.module.name) \(mount.path)")
            } catch {
                logger.warning("mount \(mount.name): \(error); the mount stays offline")
            }
        }
        return vfs
    }
}
