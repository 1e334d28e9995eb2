import NFS3
import VFS

/// The NFSv4 pseudo filesystem (RFC 7530 §7): the directories above the exports, built from
/// the export names. "/memfs" and "/archive/old" give a root with "memfs" and "archive", and
/// "archive" with "old"; a node whose path is an export is a junction into that export's root
/// (an fsid change). Read-only, fixed at start.
public final class NFS4PseudoFS: Sendable {
    public struct Node: Sendable {
        public let name: String
        public let parent: Int
        /// Child names → node indexes.
        public var children: [String: Int]
        /// The export this node leads into, if it is a junction.
        public var export: NFSExport?
    }

    public let nodes: [Node]
    /// Fileids of pseudo directories live far above any backend's.
    public static let fileidBase: UInt64 = 0xFFFF_FF00_0000_0000
    public static let fsid: (major: UInt64, minor: UInt64) = (0, 0x5053_4555_444F)

    public init(exports: [NFSExport]) {
        var nodes = [Node(name: "", parent: 0, children: [:], export: nil)]
        for export in exports {
            let components = export.name.split(separator: "/").map(String.init)
            guard !components.isEmpty else { continue }
            var at = 0
            for component in components {
                if let next = nodes[at].children[component] {
                    at = next
                } else {
                    nodes.append(Node(name: component, parent: at, children: [:], export: nil))
                    nodes[at].children[component] = nodes.count - 1
                    at = nodes.count - 1
                }
            }
            // The first export with a name wins; a deeper export below it is not reachable
            // through the pseudo filesystem.
            if nodes[at].export == nil { nodes[at].export = export }
        }
        self.nodes = nodes
    }

    public func fileid(_ index: Int) -> UInt64 { Self.fileidBase + UInt64(index) }

    /// The junction node of an export (for LOOKUPP from the export root and mounted_on_fileid).
    public func junction(of export: NFSExport) -> Int? {
        nodes.firstIndex { $0.export?.id == export.id }
    }

    public func attributes(_ index: Int) -> Attributes {
        var a = Attributes()
        a.valid = [.type, .mode, .nlink, .uid, .gid, .size, .fileid, .fsid, .atime, .mtime, .ctime, .change, .spaceUsed]
        a.type = .directory
        a.mode = 0o555
        a.nlink = UInt32(2 + nodes[index].children.count)
        a.size = 4096
        a.fileid = fileid(index)
        a.change = 1
        return a
    }
}
