import NFS3
import ONCRPC
import VFS

extension NFS4Compound {
    /// The current filehandle as a writable directory of an export.
    func writableDirectory() throws(NFS4Error) -> (NFSExport, FileHandle) {
        let (export, directory) = try currentFile(pseudo: .rofs)
        guard !export.readOnly else { throw .status(.rofs) }
        return (export, directory)
    }

    /// CREATE: directories, symlinks, devices, sockets and FIFOs (regular files come from OPEN).
    func create() async throws(NFS4Error) {
        let type = try uint32()
        let kind: CreateKind
        switch type {
        case 2: kind = .directory
        case 5:
            let raw = try opaque(maximum: 4096)
            guard let target = String(validating: raw, as: UTF8.self) else { throw .status(.inval) }
            kind = .symlink(target: target)
        case 3, 4:
            let major = try uint32()
            let minorNumber = try uint32()
            kind = .device(type == 3 ? .blockDevice : .characterDevice, major: major, minor: minorNumber)
        case 6: kind = .socket
        case 7: kind = .fifo
        case 1: throw .status(.badtype)
        default: throw .status(.badtype)
        }
        let name = try component()
        let (attributes, attrset) = try NFS4Attributes.decodeSettable(&args, minor: minor, identities: program.identities)
        let (export, directory) = try writableDirectory()
        let result: CreateResult
        do {
            result = try await vfs.create(in: directory, name: name, kind: kind, mode: .guarded, attributes: attributes, credentials: credentials(export))
        } catch {
            throw NFS4Error(error)
        }
        if !result.created { throw .status(.exist) }
        current = .file(export, result.handle)
        out.uint32(NFS4Status.ok.rawValue)
        Self.changeInfo(&out, result.directory)
        attrset.encode(&out)
    }

    /// REMOVE: files and empty directories alike.
    func remove() async throws(NFS4Error) {
        let name = try component()
        let (export, directory) = try writableDirectory()
        let credentials = credentials(export)
        let change: DirectoryChange
        do {
            do {
                change = try await vfs.remove(in: directory, name: name, credentials: credentials)
            } catch .isDirectory {
                change = try await vfs.rmdir(in: directory, name: name, credentials: credentials)
            }
        } catch {
            throw NFS4Error(error)
        }
        out.uint32(NFS4Status.ok.rawValue)
        Self.changeInfo(&out, change)
    }

    /// RENAME: from the saved directory to the current one.
    func rename() async throws(NFS4Error) {
        let oldName = try component()
        let newName = try component()
        guard let saved else { throw .status(.nofilehandle) }
        guard case let .file(sourceExport, source) = saved else { throw .status(.rofs) }
        let (export, target) = try writableDirectory()
        guard sourceExport.id == export.id else { throw .status(.xdev) }
        let result: (from: DirectoryChange, to: DirectoryChange)
        do {
            result = try await vfs.rename(from: source, name: oldName, to: target, newName: newName, credentials: credentials(export))
        } catch {
            throw NFS4Error(error)
        }
        out.uint32(NFS4Status.ok.rawValue)
        Self.changeInfo(&out, result.from)
        Self.changeInfo(&out, result.to)
    }

    /// LINK: the saved object gets a new name in the current directory.
    func link() async throws(NFS4Error) {
        let name = try component()
        guard let saved else { throw .status(.nofilehandle) }
        guard case let .file(sourceExport, source) = saved else { throw .status(.isdir) }
        let (export, directory) = try writableDirectory()
        guard sourceExport.id == export.id else { throw .status(.xdev) }
        let change: DirectoryChange
        do {
            change = try await vfs.link(source, into: directory, name: name, credentials: credentials(export)).1
        } catch {
            throw NFS4Error(error)
        }
        out.uint32(NFS4Status.ok.rawValue)
        Self.changeInfo(&out, change)
    }

    /// SETATTR: its reply carries the attributes set even when it fails.
    func setattr() async throws(NFS4Error) {
        let stateid = try self.stateid()
        let decoded: (SetAttributes, Bitmap4)
        do {
            decoded = try NFS4Attributes.decodeSettable(&args, minor: minor, identities: program.identities)
        } catch {
            throw fail(error)
        }
        let (changes, bitmap) = decoded
        do throws(NFS4Error) {
            let (export, file) = try currentFile(pseudo: .rofs)
            guard !export.readOnly else { throw .status(.rofs) }
            if let size = changes.size {
                let (open, lockOwner) = try ioState(stateid, file: file, write: true)
                let range = ByteRange(start: size, end: .max, throughLastByte: true)
                if let open, open.conflictingLock(range, write: true, lockOwner: lockOwner) != nil { throw .status(.locked) }
                await breakReadCaching(open, file: file)
            }
            do {
                _ = try await vfs.setattr(file, changes, credentials: credentials(export))
            } catch {
                throw NFS4Error(error)
            }
        } catch {
            throw fail(error)
        }
        out.uint32(NFS4Status.ok.rawValue)
        bitmap.encode(&out)
    }

    /// SETATTR's failure: the status and an empty attrsset.
    private func fail(_ error: NFS4Error) -> NFS4Error {
        guard case let .status(status) = error else { return error }
        out.uint32(status.rawValue)
        Bitmap4().encode(&out)
        return .written(status)
    }
}
