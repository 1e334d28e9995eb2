import Logging
import NFS3
import NFS4
import ONCRPC
import Runtime
import VFS

/// NFSv3 with MOUNT and portmap on `server.nfs_port`, and portmap alone on
/// `server.portmap_port` when it is set.
enum NFSService {
    static func exports(_ configuration: Configuration, vfs: VirtualFileSystem, group: LoopGroup, signer: HandleSigner, logger: Logger) -> NFSExports {
        var list: [NFSExport] = []
        for (index, settings) in configuration.exports.enumerated() {
            guard index < 255 else {
                logger.warning("exports: only the first 255 exports are served (\(settings.name) and later are not)")
                break
            }
            let path = settings.path
            let root: FileHandle
            do {
                root = try runBlocking(on: group.loops[0]) { try await vfs.resolve(path).0 }
            } catch {
                logger.warning("export \(settings.name): \(path) cannot be resolved (\(error)); not exported")
                continue
            }
            let squash: ExportSquash
            switch settings.squash {
            case .none: squash = .none
            case .root: squash = .root
            case .all: squash = .all
            }
            // Every call checks its export's client list; without one there is nothing to parse
            // (the peer's address string costs more to parse than a whole memfs READ).
            let admits: @Sendable (String) -> Bool
            if settings.clients == nil {
                admits = { _ in true }
            } else {
                admits = { peer in
                    guard let address = IPAddress(hostPart(of: peer)) else { return false }
                    return settings.admits(address)
                }
            }
            list.append(NFSExport(id: UInt8(index + 1), name: settings.name, root: root, readOnly: settings.readOnly, squash: squash,
                                  anonymousUID: settings.anonUID, anonymousGID: settings.anonGID, admits: admits))
        }
        return NFSExports(list, signer: signer)
    }

    /// "127.0.0.1:5000" → "127.0.0.1", "[::1]:5000" → "::1".
    static func hostPart(of peer: String) -> String {
        if peer.hasPrefix("["), let end = peer.firstIndex(of: "]") {
            return String(peer[peer.index(after: peer.startIndex)..<end])
        }
        guard let colon = peer.lastIndex(of: ":") else { return peer }
        return String(peer[..<colon])
    }

    /// Starts the listeners; returns the bound NFS port and the portmap port (0 if none).
    static func start(_ configuration: Configuration, vfs: VirtualFileSystem, group: LoopGroup, logger: Logger) throws(ServerError) -> (nfs: Listener, portmap: Listener?) {
        let signer = try HandleKey.signer(stateDirectory: configuration.server.stateDirectory, logger: logger)
        let exports = exports(configuration, vfs: vfs, group: group, signer: signer, logger: logger)
        let nfs = NFS3Program(vfs: vfs, exports: exports)
        let nfs4 = NFS4Program(vfs: vfs, exports: exports, leaseSeconds: UInt32(configuration.server.nfs4LeaseSeconds),
                                graceSeconds: UInt32(configuration.server.nfs4GraceSeconds),
                                identities: NFS4Identities(users: Dictionary(configuration.users.map { ($0.name, (uid: $0.uid, gid: $0.gid)) },
                                                                             uniquingKeysWith: { first, _ in first })),
                                maxOpensPerClient: configuration.server.limits.nfs4MaxOpensPerClient)
        let mount = MountProgram(exports: exports, vfs: vfs)
        let host = configuration.server.bind.description
        let configured = configuration.server.limits
        let limits = RPCLimits(maxRecordSize: configured.nfsMaxRecordBytes, maxCallsInFlight: configured.nfsMaxCallsPerConnection,
                               recordTimeout: Double(configuration.server.requestTimeoutSeconds))
        // The NFS port is known only once bound (port 0 in tests): portmap learns it then.
        let portmap = Portmap()
        let cache = DuplicateRequestCache()
        let listener: Listener
        do {
            listener = try group.listen(host: host, port: configuration.server.nfsPort) { _ in
                RPCConnection(programs: [nfs, nfs4, mount, portmap], limits: limits, cache: cache)
            }
        } catch {
            throw ServerError.startup("cannot serve NFS on \(host):\(configuration.server.nfsPort): \(error)")
        }
        let port = UInt32(listener.port)
        portmap.mappings = [
            PortMapping(program: Portmap.programNumber, version: 2, port: port),
            PortMapping(program: NFS3.program, version: 3, port: port),
            PortMapping(program: NFS3.program, version: 4, port: port),
            PortMapping(program: NFS3.mountProgram, version: 3, port: port),
        ]
        var portmapListener: Listener?
        if configuration.server.portmapPort != 0 {
            do {
                portmapListener = try group.listen(host: host, port: configuration.server.portmapPort) { _ in
                    RPCConnection(programs: [portmap], limits: limits)
                }
            } catch {
                throw ServerError.startup("cannot serve portmap on \(host):\(configuration.server.portmapPort): \(error)")
            }
        }
        logger.info("NFSv3, NFSv4.0/4.1, MOUNT v3 and portmap v2 on \(listener.boundAddress); \(exports.exports.count) export(s): \(exports.exports.map(\.name).joined(separator: ", "))")
        return (listener, portmapListener)
    }
}

