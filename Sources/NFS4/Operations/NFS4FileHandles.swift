import NFS3
import ONCRPC
import VFS

extension NFS4Compound {
    /// PUTFH: the handle becomes current (checked: known export or pseudo directory, valid MAC).
    func putfh() throws(NFS4Error) {
        let raw = try opaque(maximum: 128)
        current = try decodeHandle(raw)
        currentStateid = nil  // a new current filehandle has no current stateid (RFC 8881 §16.2.3.1.2)
        out.uint32(NFS4Status.ok.rawValue)
    }

    /// PUTROOTFH (and PUTPUBFH: the public handle is the root): the pseudo root.
    func putrootfh() throws(NFS4Error) {
        current = .pseudo(0)
        currentStateid = nil
        out.uint32(NFS4Status.ok.rawValue)
    }

    func getfh() throws(NFS4Error) {
        let fh = try requireCurrent()
        out.uint32(NFS4Status.ok.rawValue)
        out.opaque(wire(fh))
    }

    func savefh() throws(NFS4Error) {
        saved = try requireCurrent()
        savedStateid = currentStateid
        out.uint32(NFS4Status.ok.rawValue)
    }

    func restorefh() throws(NFS4Error) {
        guard let saved else { throw .status(.restorefh) }
        current = saved
        currentStateid = savedStateid
        out.uint32(NFS4Status.ok.rawValue)
    }

    /// LOOKUP: through the pseudo filesystem (a junction leads into its export's root) or
    /// inside an export.
    func lookup() async throws(NFS4Error) {
        let name = try component()
        switch try requireCurrent() {
        case let .pseudo(index):
            guard let child = program.pseudo.nodes[index].children[name] else { throw .status(.noent) }
            if let export = program.pseudo.nodes[child].export {
                guard export.admits(peer) else { throw .status(.noent) }
                current = .file(export, export.root)
            } else {
                current = .pseudo(child)
            }
        case let .file(export, directory):
            guard export.admits(peer) else { throw .status(.access) }
            let credentials = credentials(export)
            let found: (FileHandle, Attributes)
            do { found = try await vfs.lookup(directory, name: name, mask: [.type], credentials: credentials) } catch {
                if error == .notDirectory, let attributes = try? await vfs.getattr(directory, mask: [.type]), attributes.type == .symlink {
                    throw .status(.symlink)
                }
                throw NFS4Error(error)
            }
            current = .file(export, found.0)
        }
        out.uint32(NFS4Status.ok.rawValue)
    }

    /// LOOKUPP: the parent; from an export's root back into the pseudo filesystem.
    func lookupp() async throws(NFS4Error) {
        switch try requireCurrent() {
        case let .pseudo(index):
            guard index != 0 else { throw .status(.noent) }
            current = .pseudo(program.pseudo.nodes[index].parent)
        case let .file(export, handle):
            if handle == export.root {
                let junction = program.pseudo.junction(of: export) ?? 0
                current = .pseudo(program.pseudo.nodes[junction].parent)
            } else {
                let credentials = credentials(export)
                do {
                    let attributes = try await vfs.getattr(handle, mask: [.type])
                    guard attributes.type == .directory else { throw NFS4Error.status(.notdir) }
                    current = .file(export, try await vfs.lookup(handle, name: "..", mask: [], credentials: credentials).0)
                } catch let error as NFS4Error {
                    throw error
                } catch let error as VFSError {
                    throw NFS4Error(error)
                } catch {
                    throw .status(.serverfault)
                }
            }
        }
        out.uint32(NFS4Status.ok.rawValue)
    }

    func getattr() async throws(NFS4Error) {
        let requested = try bitmap()
        let fh = try requireCurrent()
        let source = try await attrSource(fh, requested: requested)
        out.uint32(NFS4Status.ok.rawValue)
        NFS4Attributes.encode(&out, requested: requested, source: source)
    }

    /// VERIFY / NVERIFY: compares the client's fattr4 with the server's encoding of the same
    /// attributes.
    func verify(equal: Bool) async throws(NFS4Error) {
        let requested = try bitmap()
        let values = try opaque(maximum: 64 * 1024)
        let fh = try requireCurrent()
        for bit in requested.bits where !NFS4Attr.supported(minor: minor).contains(bit) { throw .status(.attrnotsupp) }
        if requested.contains(NFS4Attr.rdattrError) || requested.contains(NFS4Attr.timeAccessSet) || requested.contains(NFS4Attr.timeModifySet) {
            throw .status(.inval)
        }
        let source = try await attrSource(fh, requested: requested)
        var mine = XDRWriter()
        NFS4Attributes.encodeValues(&mine, requested, source: source)
        let same = mine.bytes.elementsEqual(values)
        if equal && !same { throw .status(.notSame) }
        if !equal && same { throw .status(.same) }
        out.uint32(NFS4Status.ok.rawValue)
    }

    /// ACCESS (RFC 7530 §16.1): READ 1, LOOKUP 2, MODIFY 4, EXTEND 8, DELETE 0x10, EXECUTE 0x20.
    func access() async throws(NFS4Error) {
        let wanted = try uint32() & 0x3F
        let fh = try requireCurrent()
        var granted: UInt32 = 0
        switch fh {
        case .pseudo:
            granted = wanted & 0x3  // read and lookup only
        case let .file(export, handle):
            guard export.admits(peer) else { throw .status(.access) }
            let credentials = credentials(export)
            let allowed: AccessMask
            let type: FileType
            do {
                type = try await vfs.getattr(handle, mask: [.type]).type
                allowed = try await vfs.access(handle, wanted: [.read, .write, .execute], credentials: credentials)
            } catch {
                throw NFS4Error(error)
            }
            let writable = allowed.contains(.write) && !export.readOnly
            if allowed.contains(.read) { granted |= 0x1 }
            if type == .directory {
                if allowed.contains(.execute) { granted |= 0x2 }
                if writable { granted |= 0x4 | 0x8 | 0x10 }
            } else {
                if writable { granted |= 0x4 | 0x8 }
                if allowed.contains(.execute) { granted |= 0x20 }
            }
            granted &= wanted
        }
        out.uint32(NFS4Status.ok.rawValue)
        out.uint32(wanted)
        out.uint32(granted)
    }

    func readlink() async throws(NFS4Error) {
        let (export, handle) = try currentFile()
        let target: String
        do {
            let type = try await vfs.getattr(handle, mask: [.type]).type
            guard type == .symlink else { throw NFS4Error.status(.inval) }
            target = try await vfs.readlink(handle, credentials: credentials(export))
        } catch let error as NFS4Error {
            throw error
        } catch let error as VFSError {
            throw NFS4Error(error)
        } catch {
            throw .status(.serverfault)
        }
        out.uint32(NFS4Status.ok.rawValue)
        out.string(target)
    }

    /// SECINFO: AUTH_SYS and AUTH_NONE for everything. In 4.1 it consumes the current handle.
    func secinfo() async throws(NFS4Error) {
        _ = try component()
        _ = try requireCurrent()
        writeSecinfo()
        if minor >= 1 { current = nil }
    }

    func secinfoNoName() async throws(NFS4Error) {
        let style = try uint32()
        guard style <= 1 else { throw .status(.inval) }
        _ = try requireCurrent()
        writeSecinfo()
        current = nil
    }

    private func writeSecinfo() {
        out.uint32(NFS4Status.ok.rawValue)
        out.uint32(2)
        out.uint32(1)  // AUTH_SYS
        out.uint32(0)  // AUTH_NONE
    }
}
