import NFS3
import ONCRPC
import VFS

/// RFC 8276 extended attributes (NFSv4.2). NFSv4 names live in the user namespace without a
/// prefix: "foo" over NFS is the VFS's "user.foo"; the server's own `user.dmanoel.*` names
/// are never shown.
extension NFS4Compound {
    static let xattrPrefix = "user."
    static let reservedPrefix = "user.dmanoel."

    func xattrName() throws(NFS4Error) -> String {
        let raw = try opaque(maximum: 4096)
        guard !raw.isEmpty, raw.count + Self.xattrPrefix.utf8.count <= 255 else { throw .status(raw.isEmpty ? .inval : .nametoolong) }
        guard let name = String(validating: raw, as: UTF8.self), !name.utf8.contains(0) else { throw .status(.inval) }
        let full = Self.xattrPrefix + name
        if full.hasPrefix(Self.reservedPrefix) { throw .status(.access) }
        return full
    }

    static func xattrError(_ error: VFSError) -> NFS4Error {
        switch error {
        case .noData: .status(.noxattr)
        case .rangeTooBig: .status(.xattr2big)
        default: NFS4Error(error)
        }
    }

    func getxattr() async throws(NFS4Error) {
        let name = try xattrName()
        let (export, file) = try currentFile(pseudo: .noxattr)
        let value: [UInt8]
        do { value = try await vfs.getxattr(file, name: name, credentials: credentials(export)) } catch { throw Self.xattrError(error) }
        out.uint32(NFS4Status.ok.rawValue)
        out.opaque(value)
    }

    func setxattr() async throws(NFS4Error) {
        let option = try uint32()
        let name = try xattrName()
        let value = Array(try opaque(maximum: 64 * 1024))
        let mode: XattrSetMode
        switch option {
        case 0: mode = .either
        case 1: mode = .create
        case 2: mode = .replace
        default: throw .status(.inval)
        }
        let (export, file) = try currentFile(pseudo: .rofs)
        guard !export.readOnly else { throw .status(.rofs) }
        let before = try? await vfs.getattr(file, mask: [.change, .ctime])
        do { try await vfs.setxattr(file, name: name, value: value, mode: mode, credentials: credentials(export)) } catch { throw Self.xattrError(error) }
        let after = try? await vfs.getattr(file, mask: [.change, .ctime])
        out.uint32(NFS4Status.ok.rawValue)
        Self.changeInfo(&out, before.flatMap { b in after.map { DirectoryChange(before: b, after: $0) } })
    }

    func listxattrs() async throws(NFS4Error) {
        let cookie = try uint64()
        let maxcount = Int(try uint32())
        let (export, file) = try currentFile(pseudo: .noxattr)
        let all: [String]
        do { all = try await vfs.listxattr(file, credentials: credentials(export)) } catch { throw Self.xattrError(error) }
        let names = all.filter { $0.hasPrefix(Self.xattrPrefix) && !$0.hasPrefix(Self.reservedPrefix) }.sorted()
            .map { String($0.dropFirst(Self.xattrPrefix.count)) }
        guard cookie <= UInt64(names.count) else { throw .status(.badCookie) }
        var used = 16  // cookie, count and eof
        var fitting: [String] = []
        for name in names[Int(cookie)...] {
            let size = XDREncoder.opaqueSize(name.utf8.count)
            if used + size > maxcount { break }
            used += size
            fitting.append(name)
        }
        if fitting.isEmpty && Int(cookie) < names.count { throw .status(.toosmall) }
        out.uint32(NFS4Status.ok.rawValue)
        out.uint64(cookie + UInt64(fitting.count))
        out.uint32(UInt32(fitting.count))
        for name in fitting { out.string(name) }
        out.bool(Int(cookie) + fitting.count == names.count)
    }

    func removexattr() async throws(NFS4Error) {
        let name = try xattrName()
        let (export, file) = try currentFile(pseudo: .rofs)
        guard !export.readOnly else { throw .status(.rofs) }
        let before = try? await vfs.getattr(file, mask: [.change, .ctime])
        do { try await vfs.removexattr(file, name: name, credentials: credentials(export)) } catch { throw Self.xattrError(error) }
        let after = try? await vfs.getattr(file, mask: [.change, .ctime])
        out.uint32(NFS4Status.ok.rawValue)
        Self.changeInfo(&out, before.flatMap { b in after.map { DirectoryChange(before: b, after: $0) } })
    }
}
