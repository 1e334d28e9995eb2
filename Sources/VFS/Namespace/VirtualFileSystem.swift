import Synchronization

/// A backend mounted at /NAME in the server's namespace.
public struct Mount: Sendable {
    public let name: String
    public let id: UInt16
    public let backend: FileSystemBackend
    public let readOnly: Bool
}

/// The server's one namespace: mounts at /NAME, routing by the handle's mount id, read-only
/// enforcement, and permission checks for backends that do not check themselves. Protocols
/// call this, never a backend directly.
///
/// The mount table is read on every call and changed only when mounts are added, so it is
/// an immutable array swapped under a mutex: readers take one snapshot, no lock on the path.
public final class VirtualFileSystem: Sendable {
    private let table = Mutex<[Mount?]>([nil])

    public init() {}

    /// Mounts `backend` at /`name`; the mount gets the next id (ids start at 1).
    @discardableResult
    public func mount(_ name: String, backend: FileSystemBackend, readOnly: Bool = false) throws(VFSError) -> Mount {
        try NameRules.validateEntryName(name)
        return try table.withLock { (mounts: inout [Mount?]) throws(VFSError) -> Mount in
            if mounts.contains(where: { $0?.name == name }) { throw VFSError.exists }
            guard mounts.count < Int(UInt16.max) else { throw VFSError.noSpace }
            let mount = Mount(name: name, id: UInt16(mounts.count), backend: backend, readOnly: readOnly)
            backend.mountID = mount.id
            mounts.append(mount)
            return mount
        }
    }

    public var mounts: [Mount] { table.withLock { $0.compactMap { $0 } } }

    public func mount(named name: String) -> Mount? { table.withLock { $0.first { $0?.name == name } ?? nil } }

    /// The mount a handle belongs to; `stale` for an unknown mount id.
    @inline(__always)
    public func mount(for handle: FileHandle) throws(VFSError) -> Mount {
        let id = Int(handle.mountID)
        let found: Mount? = table.withLock { id < $0.count ? $0[id] : nil }
        guard let found else { throw .stale }
        return found
    }

    @inline(__always)
    private func writable(_ handle: FileHandle) throws(VFSError) -> Mount {
        let mount = try mount(for: handle)
        if mount.readOnly { throw .readOnly }
        return mount
    }

    /// Resolves an absolute namespace path such as "/memfs/dir/file" (exports, shares, buckets).
    public func resolve(_ path: String, credentials: Credentials = .root) async throws(VFSError) -> (FileHandle, Attributes) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard path.hasPrefix("/"), let first = parts.first, let mount = mount(named: first) else { throw .notFound }
        var handle = mount.backend.rootHandle
        var attributes = try await mount.backend.getattr(handle, mask: .all)
        for part in parts.dropFirst() {
            (handle, attributes) = try await lookup(handle, name: part, mask: .all, credentials: credentials)
        }
        return (handle, attributes)
    }

    // MARK: Operations

    public func getattr(_ handle: FileHandle, mask: AttributeMask) async throws(VFSError) -> Attributes {
        try await mount(for: handle).backend.getattr(handle, mask: mask)
    }

    public func lookup(_ directory: FileHandle, name: String, mask: AttributeMask, credentials: Credentials) async throws(VFSError) -> (FileHandle, Attributes) {
        if name.utf8.count > NameRules.maxNameLength { throw .nameTooLong }
        let backend = try mount(for: directory).backend
        try await checkDirectory(backend, directory, .execute, credentials)
        return try await backend.lookup(directory, name: name, mask: mask, credentials: credentials)
    }

    /// What `credentials` may do to the object (NFSv3 ACCESS); never throws `accessDenied`.
    public func access(_ handle: FileHandle, wanted: AccessMask, credentials: Credentials) async throws(VFSError) -> AccessMask {
        let mount = try mount(for: handle)
        let attributes = try await mount.backend.getattr(handle, mask: [.type, .mode, .uid, .gid])
        var granted = Permissions.allowed(wanted, attributes: attributes, credentials: credentials)
        if mount.readOnly { granted.remove(.write) }
        return granted
    }

    public func setattr(_ handle: FileHandle, _ changes: SetAttributes, guardCtime: Timespec? = nil, credentials: Credentials) async throws(VFSError) -> (before: Attributes, after: Attributes) {
        let backend = try writable(handle).backend
        if !backend.checksPermissions {
            let current = try await backend.getattr(handle, mask: [.type, .mode, .uid, .gid])
            try SetattrRules.check(changes, current: current, credentials: credentials)
        }
        return try await backend.setattr(handle, changes, guardCtime: guardCtime, credentials: credentials)
    }

    public func create(in directory: FileHandle, name: String, kind: CreateKind, mode: CreateMode = .unchecked, attributes: SetAttributes = SetAttributes(), credentials: Credentials) async throws(VFSError) -> CreateResult {
        try NameRules.validateEntryName(name)
        let backend = try writable(directory).backend
        try await checkDirectory(backend, directory, [.write, .execute], credentials)
        return try await backend.create(in: directory, name: name, kind: kind, mode: mode, attributes: attributes, credentials: credentials)
    }

    public func read(_ handle: FileHandle, offset: UInt64, count: Int, credentials: Credentials) async throws(VFSError) -> ReadResult {
        let backend = try mount(for: handle).backend
        try await check(backend, handle, .read, credentials)
        return try await backend.read(handle, offset: offset, count: count, credentials: credentials)
    }

    public func write(_ handle: FileHandle, offset: UInt64, data: UnsafeRawBufferPointer, stability: WriteStability, credentials: Credentials) async throws(VFSError) -> WriteResult {
        let backend = try writable(handle).backend
        try await check(backend, handle, .write, credentials)
        return try await backend.write(handle, offset: offset, data: data, stability: stability, credentials: credentials)
    }

    public func commit(_ handle: FileHandle, offset: UInt64 = 0, count: UInt64 = 0) async throws(VFSError) -> Attributes {
        try await mount(for: handle).backend.commit(handle, offset: offset, count: count)
    }

    public func readdir(_ directory: FileHandle, cookie: UInt64 = 0, verifier: UInt64 = 0, maxEntries: Int, mask: AttributeMask = [], credentials: Credentials) async throws(VFSError) -> ReadDirResult {
        let backend = try mount(for: directory).backend
        try await checkDirectory(backend, directory, .read, credentials)
        return try await backend.readdir(directory, cookie: cookie, verifier: verifier, maxEntries: maxEntries, mask: mask, credentials: credentials)
    }

    public func readlink(_ handle: FileHandle, credentials: Credentials) async throws(VFSError) -> String {
        try await mount(for: handle).backend.readlink(handle, credentials: credentials)
    }

    public func link(_ handle: FileHandle, into directory: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> (Attributes, DirectoryChange) {
        try NameRules.validateEntryName(name)
        let target = try writable(directory)
        guard try mount(for: handle).id == target.id else { throw .crossDevice }
        try await checkDirectory(target.backend, directory, [.write, .execute], credentials)
        return try await target.backend.link(handle, into: directory, name: name, credentials: credentials)
    }

    public func remove(in directory: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> DirectoryChange {
        try NameRules.validateEntryName(name)
        let backend = try writable(directory).backend
        try await checkDirectory(backend, directory, [.write, .execute], credentials)
        return try await backend.remove(in: directory, name: name, credentials: credentials)
    }

    public func rmdir(in directory: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> DirectoryChange {
        if name == "." { throw .invalid }
        if name == ".." { throw .notEmpty }
        try NameRules.validateEntryName(name)
        let backend = try writable(directory).backend
        try await checkDirectory(backend, directory, [.write, .execute], credentials)
        return try await backend.rmdir(in: directory, name: name, credentials: credentials)
    }

    public func rename(from source: FileHandle, name: String, to target: FileHandle, newName: String, credentials: Credentials) async throws(VFSError) -> (from: DirectoryChange, to: DirectoryChange) {
        try NameRules.validateEntryName(name)
        try NameRules.validateEntryName(newName)
        let from = try writable(source)
        guard try writable(target).id == from.id else { throw .crossDevice }
        try await checkDirectory(from.backend, source, [.write, .execute], credentials)
        if source != target { try await checkDirectory(from.backend, target, [.write, .execute], credentials) }
        return try await from.backend.rename(from: source, name: name, to: target, newName: newName, credentials: credentials)
    }

    public func statfs(_ handle: FileHandle) async throws(VFSError) -> FileSystemStats {
        try await mount(for: handle).backend.statfs(handle)
    }

    public func getxattr(_ handle: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> [UInt8] {
        let backend = try mount(for: handle).backend
        try await check(backend, handle, .read, credentials)
        return try await backend.getxattr(handle, name: name, credentials: credentials)
    }

    public func setxattr(_ handle: FileHandle, name: String, value: [UInt8], mode: XattrSetMode = .either, credentials: Credentials) async throws(VFSError) {
        let backend = try writable(handle).backend
        try await check(backend, handle, .write, credentials)
        try await backend.setxattr(handle, name: name, value: value, mode: mode, credentials: credentials)
    }

    public func listxattr(_ handle: FileHandle, credentials: Credentials) async throws(VFSError) -> [String] {
        let backend = try mount(for: handle).backend
        try await check(backend, handle, .read, credentials)
        return try await backend.listxattr(handle, credentials: credentials)
    }

    public func removexattr(_ handle: FileHandle, name: String, credentials: Credentials) async throws(VFSError) {
        let backend = try writable(handle).backend
        try await check(backend, handle, .write, credentials)
        try await backend.removexattr(handle, name: name, credentials: credentials)
    }

    public func allocate(_ handle: FileHandle, offset: UInt64, length: UInt64, credentials: Credentials) async throws(VFSError) {
        let backend = try writable(handle).backend
        try await check(backend, handle, .write, credentials)
        try await backend.allocate(handle, offset: offset, length: length, credentials: credentials)
    }

    public func deallocate(_ handle: FileHandle, offset: UInt64, length: UInt64, credentials: Credentials) async throws(VFSError) {
        let backend = try writable(handle).backend
        try await check(backend, handle, .write, credentials)
        try await backend.deallocate(handle, offset: offset, length: length, credentials: credentials)
    }

    public func seek(_ handle: FileHandle, offset: UInt64, target: SeekTarget) async throws(VFSError) -> (offset: UInt64, eof: Bool) {
        try await mount(for: handle).backend.seek(handle, offset: offset, target: target)
    }

    public func copyRange(from source: FileHandle, offset sourceOffset: UInt64, to target: FileHandle, offset targetOffset: UInt64, count: UInt64, credentials: Credentials) async throws(VFSError) -> UInt64 {
        let from = try mount(for: source)
        let to = try writable(target)
        guard from.id == to.id else { throw .crossDevice }
        try await check(from.backend, source, .read, credentials)
        try await check(to.backend, target, .write, credentials)
        return try await to.backend.copyRange(from: source, offset: sourceOffset, to: target, offset: targetOffset, count: count, credentials: credentials)
    }

    /// Like `check`, for an object that must be a directory: `notDirectory` comes first, as in
    /// the kernel's path walk.
    @inline(__always)
    private func checkDirectory(_ backend: FileSystemBackend, _ handle: FileHandle, _ wanted: AccessMask, _ credentials: Credentials) async throws(VFSError) {
        guard !backend.checksPermissions else { return }
        let attributes = try await backend.getattr(handle, mask: [.type, .mode, .uid, .gid])
        guard attributes.type == .directory else { throw .notDirectory }
        try Permissions.check(wanted, attributes: attributes, credentials: credentials)
    }

    /// Mode-bit check for backends that do not check themselves.
    @inline(__always)
    private func check(_ backend: FileSystemBackend, _ handle: FileHandle, _ wanted: AccessMask, _ credentials: Credentials) async throws(VFSError) {
        guard !backend.checksPermissions else { return }
        let attributes = try await backend.getattr(handle, mask: [.type, .mode, .uid, .gid])
        try Permissions.check(wanted, attributes: attributes, credentials: credentials)
    }
}

/// Who may change which attributes (POSIX chmod/chown/truncate/utimes rules).
public enum SetattrRules {
    public static func check(_ changes: SetAttributes, current: Attributes, credentials: Credentials) throws(VFSError) {
        if credentials.isRoot { return }
        let owner = credentials.uid == current.uid
        if changes.mode != nil && !owner { throw .notPermitted }
        if let uid = changes.uid, uid != current.uid { throw .notPermitted }
        if let gid = changes.gid, gid != current.gid, !(owner && credentials.isMember(of: gid)) { throw .notPermitted }
        if changes.size != nil {
            try Permissions.check(.write, attributes: current, credentials: credentials)
        }
        switch (changes.atime, changes.mtime) {
        case (.value, _), (_, .value):
            if !owner { throw .notPermitted }
        case (.serverTime, _), (_, .serverTime):
            if !owner { try Permissions.check(.write, attributes: current, credentials: credentials) }
        default:
            break
        }
    }
}
