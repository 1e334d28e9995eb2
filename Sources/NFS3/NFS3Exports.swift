import ONCRPC
import VFS

/// How an export maps callers to credentials (exports(5) squash options).
public enum ExportSquash: Sendable, Equatable {
    case none
    /// uid 0 becomes the anonymous user.
    case root
    /// Everyone becomes the anonymous user.
    case all
}

/// One NFS export: a directory of the namespace with its options.
public struct NFSExport: Sendable {
    /// Index carried in every handle of this export (1-255).
    public let id: UInt8
    /// The name clients mount, e.g. "/memfs".
    public let name: String
    public let root: FileHandle
    public let readOnly: Bool
    public let squash: ExportSquash
    public let anonymousUID: UInt32
    public let anonymousGID: UInt32
    /// Whether a client address ("ip:port" or "ip") may use this export.
    public let admits: @Sendable (String) -> Bool

    public init(id: UInt8, name: String, root: FileHandle, readOnly: Bool = false, squash: ExportSquash = .none,
                anonymousUID: UInt32 = 65534, anonymousGID: UInt32 = 65534, admits: @escaping @Sendable (String) -> Bool = { _ in true }) {
        self.id = id
        self.name = name
        self.root = root
        self.readOnly = readOnly
        self.squash = squash
        self.anonymousUID = anonymousUID
        self.anonymousGID = anonymousGID
        self.admits = admits
    }

    /// The VFS credentials for a call's AUTH_NONE / AUTH_SYS identity under this export.
    public func credentials(for auth: RPCAuth) -> Credentials {
        let anonymous = Credentials(uid: anonymousUID, gid: anonymousGID)
        switch (auth, squash) {
        case (.none, _), (_, .all):
            return anonymous
        case let (.sys(uid, gid, groups, _), .root):
            return uid == 0 ? anonymous : Credentials(uid: uid, gid: gid, groups: groups)
        case let (.sys(uid, gid, groups, _), .none):
            return Credentials(uid: uid, gid: gid, groups: groups)
        }
    }
}

/// The exports of this server and the handles they hand out. An NFS handle is the export id
/// followed by the VFS handle signed for that export (`HandleSigner`), at most 64 bytes.
public final class NFSExports: Sendable {
    public let exports: [NFSExport]
    public let signer: HandleSigner

    public init(_ exports: [NFSExport], signer: HandleSigner) {
        self.exports = exports
        self.signer = signer
    }

    public func export(named name: String) -> NFSExport? {
        let trimmed = name.count > 1 && name.hasSuffix("/") ? String(name.dropLast()) : name
        return exports.first { $0.name == trimmed }
    }

    /// The export a MOUNT path falls in (the longest export name that is the path or a parent
    /// of it) and the path components below the export's root.
    public func export(containing path: String) -> (NFSExport, [String])? {
        let components = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard !components.contains(".."), !components.contains(".") else { return nil }
        var best: (NFSExport, Int)?
        for export in exports {
            let exportComponents = export.name.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
            if components.starts(with: exportComponents), exportComponents.count >= (best?.1 ?? -1) {
                best = (export, exportComponents.count)
            }
        }
        guard let (export, depth) = best else { return nil }
        return (export, Array(components.dropFirst(depth)))
    }

    /// The wire form of `handle` under `export` (inline, no allocation).
    public func encode(_ handle: FileHandle, export: NFSExport) -> SignedHandle {
        signer.sign(handle, export: UInt32(export.id), prefix: export.id)
    }

    /// Checks a handle a client sent: `badhandle` if malformed, `stale` if it names no export
    /// or its MAC does not verify (forged, from another export, from another server key).
    public func decode(_ bytes: UnsafeRawBufferPointer) -> Result<(NFSExport, FileHandle), NFS3Status> {
        guard bytes.count >= 2, bytes.count <= NFS3.maxHandleSize else { return .failure(.badhandle) }
        let id = bytes[0]
        guard let export = exports.first(where: { $0.id == id }) else { return .failure(.stale) }
        guard let handle = signer.verify(UnsafeRawBufferPointer(rebasing: bytes[1...]), export: UInt32(id)) else { return .failure(.stale) }
        return .success((export, handle))
    }
}
