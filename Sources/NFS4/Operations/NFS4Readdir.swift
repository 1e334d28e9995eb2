import NFS3
import ONCRPC
import VFS

extension NFS4Compound {
    /// READDIR (RFC 7530 §16.24): entries with the attributes asked for, up to `maxcount`
    /// bytes of reply. Cookies 1 and 2 are reserved ("." and ".." are never returned).
    func readdir() async throws(NFS4Error) {
        let cookie = try uint64()
        let verifierRaw = try fixed(8)
        let verifier = verifierRaw.loadUnaligned(as: UInt64.self)
        let dircount = Int(try uint32())
        let maxcount = Int(try uint32())
        let requested = try bitmap()
        _ = dircount
        if cookie == 1 || cookie == 2 { throw .status(.badCookie) }
        let fh = try requireCurrent()
        // status, verifier, end-of-list and eof words.
        var budget = min(maxcount, Int(NFS4Attributes.maxTransfer)) - 24
        if let session { budget = min(budget, Int(session.maxResponseSize) - out.count - 256) }
        guard budget > 0 else { throw .status(.toosmall) }
        var entries = XDRWriter(capacity: min(budget, 64 * 1024))
        var eof = true
        var replyVerifier: UInt64 = 0
        var fitting = 0
        switch fh {
        case let .pseudo(index):
            let names = program.pseudo.nodes[index].children.keys.sorted()
            guard cookie < 1 << 32 else { throw .status(.badCookie) }
            let start = cookie == 0 ? 0 : Int(cookie) - 2
            guard start >= 0, start <= names.count else { throw .status(.badCookie) }
            for position in start..<names.count {
                let child = program.pseudo.nodes[index].children[names[position]]!
                let childFH: NFS4FH
                if let export = program.pseudo.nodes[child].export {
                    guard export.admits(peer) else { continue }
                    childFH = .file(export, export.root)
                } else {
                    childFH = .pseudo(child)
                }
                var source = try await attrSource(childFH, requested: requested)
                source.mountedOnFileid = program.pseudo.fileid(child)
                var one = XDRWriter()
                one.bool(true)
                one.uint64(UInt64(position + 3))
                one.string(names[position])
                NFS4Attributes.encode(&one, requested: requested, source: source)
                if entries.count + one.count > budget { eof = false; break }
                entries.append(one.bytes)
                fitting += 1
            }
        case let .file(export, directory):
            guard export.admits(peer) else { throw .status(.access) }
            let credentials = credentials(export)
            let mask = NFS4Attr.vfsMask(requested)
            let wanted = min(4096, max(1, budget / 48))
            let page: ReadDirResult
            do {
                let type = try await vfs.getattr(directory, mask: [.type]).type
                guard type == .directory else { throw NFS4Error.status(.notdir) }
                page = try await vfs.readdir(directory, cookie: cookie, verifier: cookie == 0 ? 0 : verifier,
                                             maxEntries: wanted, mask: mask, credentials: credentials)
            } catch let error as NFS4Error {
                throw error
            } catch let error as VFSError {
                throw NFS4Error(error == .badCookie ? .badCookie : error)
            } catch {
                throw .status(.serverfault)
            }
            replyVerifier = page.verifier
            var statfs: FileSystemStats?
            if !requested.intersection(NFS4Attr.statfsBits).isEmpty { statfs = try? await vfs.statfs(directory) }
            eof = page.eof
            for entry in page.entries where entry.name != "." && entry.name != ".." {
                var attributes = entry.attributes ?? Attributes()
                if entry.attributes == nil {
                    attributes.valid = [.type, .fileid]
                    attributes.type = entry.type
                    attributes.fileid = entry.fileid
                }
                let handleBytes = entry.handle.map { program.exports.encode($0, export: export).bytes } ?? []
                var source = NFS4AttrSource(attributes: attributes, fsid: (UInt64(export.id), attributes.fsid), handle: handleBytes,
                                            mountedOnFileid: entry.fileid, statfs: statfs, leaseSeconds: state.leaseSeconds, minor: minor)
                var bits = requested
                if entry.handle == nil { bits = bits.subtracting(Bitmap4([NFS4Attr.filehandle])) }
                source.attributes.valid.insert(.type)
                var one = XDRWriter()
                one.bool(true)
                one.uint64(entry.cookie)
                one.string(entry.name)
                NFS4Attributes.encode(&one, requested: bits, source: source)
                if entries.count + one.count > budget { eof = false; break }
                entries.append(one.bytes)
                fitting += 1
            }
        }
        if fitting == 0 && !eof { throw .status(.toosmall) }
        out.uint32(NFS4Status.ok.rawValue)
        withUnsafeBytes(of: replyVerifier) { out.fixedOpaque($0) }
        out.append(entries.bytes)
        out.bool(false)
        out.bool(eof)
    }
}
