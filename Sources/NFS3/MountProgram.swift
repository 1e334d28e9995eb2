import ONCRPC
import Synchronization
import VFS

/// MOUNT version 3 (RFC 1813 appendix I): hands out export root handles and lists exports.
public final class MountProgram: RPCProgram, @unchecked Sendable {
    enum Procedure: UInt32 { case null = 0, mnt, dump, umnt, umntall, export }

    /// mountstat3 values.
    enum Status: UInt32 {
        case ok = 0, perm = 1, noent = 2, io = 5, acces = 13, notdir = 20, inval = 22, nametoolong = 63
    }

    let exports: NFSExports
    let vfs: VirtualFileSystem
    /// Who mounted what, for DUMP (host, directory); informational only, as in every server.
    private let mounted = Mutex<[(host: String, path: String)]>([])

    public init(exports: NFSExports, vfs: VirtualFileSystem) {
        self.exports = exports
        self.vfs = vfs
        super.init(number: NFS3.mountProgram, versions: 3...3, name: "MOUNT",
                   procedureNames: ["NULL", "MNT", "DUMP", "UMNT", "UMNTALL", "EXPORT"])
    }

    public override func hasProcedure(_ procedure: UInt32, version: UInt32) -> Bool {
        Procedure(rawValue: procedure) != nil
    }

    public override func serve(_ call: RPCCall, arguments: XDRDecoder, context: RPCContext) async {
        var arguments = arguments
        let host = String(context.peer.split(separator: ":").dropLast().joined(separator: ":"))
        switch Procedure(rawValue: call.procedure) {
        case .mnt?:
            guard let path = try? arguments.string(maximum: NFS3.maxPath) else { return context.fail(.garbageArguments) }
            guard let (export, rest) = exports.export(containing: path) else { return reply(context, .noent) }
            guard export.admits(context.peer) else { return reply(context, .acces) }
            // A directory below the export root may be mounted too (as with knfsd).
            var handle = export.root
            let credentials = export.credentials(for: call.auth)
            for component in rest {
                do {
                    let (next, attributes) = try await vfs.lookup(handle, name: component, mask: [.type], credentials: credentials)
                    guard attributes.type == .directory else { return reply(context, .notdir) }
                    handle = next
                } catch {
                    return reply(context, Self.status(error))
                }
            }
            let wire = exports.encode(handle, export: export)
            mounted.withLock { list in
                if !list.contains(where: { $0.host == host && $0.path == export.name }) { list.append((host, export.name)) }
            }
            context.reply(capacity: 4 + 4 + NFS3.maxHandleSize + 12) { encoder in
                encoder.uint32(Status.ok.rawValue)
                wire.withBytes { encoder.opaque($0) }
                encoder.uint32(2)  // auth flavours accepted
                encoder.uint32(RPC.AuthFlavor.sys.rawValue)
                encoder.uint32(RPC.AuthFlavor.none.rawValue)
            }
        case .dump?:
            let list = mounted.withLock { $0 }
            let size = list.reduce(8) { $0 + 4 + XDREncoder.opaqueSize($1.host.utf8.count) + XDREncoder.opaqueSize($1.path.utf8.count) }
            context.reply(capacity: size) { encoder in
                for entry in list {
                    encoder.bool(true)
                    encoder.string(entry.host)
                    encoder.string(entry.path)
                }
                encoder.bool(false)
            }
        case .umnt?:
            guard let path = try? arguments.string(maximum: NFS3.maxPath) else { return context.fail(.garbageArguments) }
            mounted.withLock { $0.removeAll { $0.host == host && $0.path == path } }
            context.reply(capacity: 0) { _ in }
        case .umntall?:
            mounted.withLock { $0.removeAll { $0.host == host } }
            context.reply(capacity: 0) { _ in }
        case .export?:
            let list = exports.exports
            let size = list.reduce(8) { $0 + 8 + XDREncoder.opaqueSize($1.name.utf8.count) }
            context.reply(capacity: size) { encoder in
                for export in list {
                    encoder.bool(true)
                    encoder.string(export.name)
                    encoder.bool(false)  // no group list: access is decided per address at MNT
                }
                encoder.bool(false)
            }
        case .null?, nil:
            context.reply(capacity: 0) { _ in }
        }
    }

    static func status(_ error: VFSError) -> Status {
        switch error {
        case .notFound: .noent
        case .accessDenied, .notPermitted: .acces
        case .notDirectory: .notdir
        case .nameTooLong: .nametoolong
        case .invalid: .inval
        default: .io
        }
    }

    private func reply(_ context: RPCContext, _ status: Status) {
        context.reply(capacity: 4, failed: status != .ok) { $0.uint32(status.rawValue) }
    }
}
