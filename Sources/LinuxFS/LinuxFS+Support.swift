import CLinuxFS
import Runtime
import Glibc
import VFS

extension LinuxFS {
    // MARK: Running blocking work

    /// Runs `body` on a delegation thread (as the server) and returns its result on the caller's executor.
    @inline(__always)
    @discardableResult
    package func blocking<T: Sendable>(_ body: @escaping @Sendable () throws(VFSError) -> T) async throws(VFSError) -> T {
        let result: Result<T, VFSError> = await delegation.run {
            do throws(VFSError) {
                return .success(try body())
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Runs `body` with the caller's credentials on the current (delegation) thread.
    @inline(__always)
    @discardableResult
    package func acting<T>(as credentials: Credentials, _ body: () throws(VFSError) -> T) throws(VFSError) -> T {
        try identity.acting(as: credentials, body)
    }

    // MARK: Handles

    /// The handle of the object `fd` refers to (`name` "" ) or of `name` in directory `fd`.
    func makeHandle(_ fd: Int32, _ name: String = "", _ st: lfs_stat) throws(VFSError) -> FileHandle {
        if !tableOnly {
            let (result, kernel) = KernelHandle.encode(fd, name)
            if result == 0 {
                guard kernel.mountID == rootMountID else { throw .crossDevice }
                if kernel.fits { return kernel.body.withUnsafeBytes { FileHandle(mount: mountID, body: $0)! } }
            } else if -result != EOVERFLOW && -result != EOPNOTSUPP {
                throw VFSError(errno: -result)
            }
        }
        // In-memory handle for the object's path below the root.
        guard var path = relativePathOf(fd) else { throw .stale }
        if !name.isEmpty {
            if !path.isEmpty { path.append(UInt8(ascii: "/")) }
            path.append(contentsOf: name.utf8)
        }
        var body: [UInt8] = [Self.tableFormat]
        let id = table.id(device: st.device, inode: st.ino, path: path)
        withUnsafeBytes(of: id.littleEndian) { body.append(contentsOf: $0) }
        return body.withUnsafeBytes { FileHandle(mount: mountID, body: $0)! }
    }

    /// The handle this module would give the object at `path` (not following a final
    /// symlink) if it were inside a share, wherever it is: tests forge handles with it.
    package static func kernelHandle(forPath path: String, mount: UInt16) -> FileHandle? {
        let (result, kernel) = KernelHandle.encode(AT_FDCWD, path)
        guard result == 0, kernel.fits else { return nil }
        return kernel.body.withUnsafeBytes { FileHandle(mount: mount, body: $0) }
    }

    /// The path of the object `fd` refers to below the root ("" for the root), if it is there.
    func relativePathOf(_ fd: Int32) -> [UInt8]? {
        guard let rootPath = descriptorTarget(root.fd), let path = descriptorTarget(fd) else { return nil }
        return relativePath(path, under: rootPath)
    }

    /// The O_PATH descriptor a handle names, decoded and checked once, then cached. Runs as
    /// the server (open_by_handle_at needs CAP_DAC_READ_SEARCH, which a caller's fsuid drops).
    package func node(_ handle: FileHandle) throws(VFSError) -> Descriptor {
        if let cached = nodes.lookup(handle) { return cached }
        guard handle.bodyCount >= 1 else { throw .badHandle }
        if handle.withBody({ $0.elementsEqual(rootBody) }) { return root }
        let format = handle.withBody { $0[0] }
        let fd: Int32
        var expected: HandleTable.Entry?
        switch format {
        case Self.kernelFormat where !tableOnly:
            guard handle.bodyCount >= 3 else { throw .badHandle }
            fd = handle.withBody { body in
                let bytes = UnsafeRawBufferPointer(rebasing: body[2...])
                return lfs_open_by_handle(root.fd, Int32(body[1]), bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt32(bytes.count), openPathFlags)
            }
        case Self.tableFormat:
            guard handle.bodyCount == 9 else { throw .badHandle }
            let id = handle.withBody { $0.loadUnaligned(fromByteOffset: 1, as: UInt64.self) }.littleEndian
            guard let entry = table.entry(id) else { throw .stale }
            expected = entry
            fd = openBeneath(root.fd, entry.path)
        case Self.kernelFormat:
            throw .stale
        default:
            throw .badHandle
        }
        // Whatever went wrong decoding (unknown inode, bad generation, garbage): the handle names
        // nothing. Even ENOMEM: the kernel reports it for an inode being freed right then.
        guard fd >= 0 else { throw .stale }
        let (descriptor, st) = try adopt(fd)
        guard st.nlink > 0 else { throw .stale }
        if let expected {
            guard expected.device == st.device, expected.inode == st.ino else { throw .stale }
        } else {
            guard isInsideShare(descriptor) else { throw .stale }
        }
        return nodes.insert(handle, descriptor)
    }

    /// A handle's descriptor, which must be a directory.
    package func directory(_ handle: FileHandle) throws(VFSError) -> Descriptor {
        let descriptor = try node(handle)
        guard descriptor.type == .directory else { throw .notDirectory }
        return descriptor
    }

    /// Wraps a fresh descriptor (closing it on failure) and stats it.
    func adopt(_ fd: Int32, birthTime: Bool = false) throws(VFSError) -> (Descriptor, lfs_stat) {
        var st = lfs_stat()
        let result = lfs_stat_at(fd, "", birthTime ? 1 : 0, &st)
        guard result == 0 else {
            _ = lfs_close(fd)
            throw VFSError(errno: -result)
        }
        return (Descriptor(fd: fd, type: st.fileType, device: st.device, inode: st.ino, pool: delegation), st)
    }

    /// Whether a decoded object lies inside the share (see the type's documentation). Runs as
    /// the server: re-opening the path must not depend on the caller's search permissions.
    func isInsideShare(_ descriptor: Descriptor) -> Bool {
        if descriptor.isSameObject(as: root) || wholeFilesystem { return true }
        // A rename between reading the path and opening it again can make one try miss.
        for _ in 0..<3 {
            guard let relative = relativePathOf(descriptor.fd) else { return false }
            let fd = openBeneath(root.fd, relative)
            guard fd >= 0 else { continue }
            var st = lfs_stat()
            let same = lfs_stat_at(fd, "", 0, &st) == 0 && st.device == descriptor.device && st.ino == descriptor.inode
            _ = lfs_close(fd)
            if same { return true }
        }
        return false
    }

    /// Stats a resolved object; a link count of 0 means it was removed: `stale`.
    package func stat(_ descriptor: Descriptor, birthTime: Bool = false) throws(VFSError) -> lfs_stat {
        let st = try lfs_stat.of(descriptor.fd, birthTime: birthTime)
        if st.nlink == 0 {
            forget(device: descriptor.device, inode: descriptor.inode)
            throw .stale
        }
        return st
    }

    /// Drops every cached descriptor of an object (after it was removed or replaced).
    func forget(device: UInt64, inode: UInt64) {
        nodes.removeAll { $1.device == device && $1.inode == inode }
        files.removeAll { $1.device == device && $1.inode == inode }
    }

    // MARK: Open files

    /// Any open descriptor of a regular file, for an operation that needs no permission
    /// (fsync): a cached one of any credentials, writable first, else one opened as the server.
    package func anyOpenFile(_ handle: FileHandle) throws(VFSError) -> Descriptor {
        if let cached = cachedOpenFile(handle) { return cached }
        return try openFile(handle, .root, writable: false)
    }

    /// A cached open descriptor of `handle` of any credentials, writable first (it is the one
    /// that wrote what a COMMIT makes durable).
    package func cachedOpenFile(_ handle: FileHandle) -> Descriptor? {
        files.first(where: { $0.handle == handle && $0.writable }) ?? files.first(where: { $0.handle == handle })
    }

    /// A descriptor of a regular file open for reading or writing, opened with `credentials`
    /// (the kernel's permission check) on a miss.
    package func openFile(_ handle: FileHandle, _ credentials: Credentials, writable: Bool) throws(VFSError) -> Descriptor {
        let key = OpenKey(handle: handle, credentials: credentials, writable: writable)
        if let cached = files.lookup(key) { return cached }
        let object = try node(handle)
        switch object.type {
        case .regular: break
        case .directory: throw .isDirectory
        default: throw .invalid
        }
        let fd = try acting(as: credentials) { () throws(VFSError) -> Int32 in
            try check(lfs_reopen(object.fd, writable ? lfs_O_WRONLY : lfs_O_RDONLY))
        }
        return files.insert(key, Descriptor(fd: fd, type: object.type, device: object.device, inode: object.inode, pool: delegation))
    }

    // MARK: Shared by the data paths of both modules

    /// How many bytes a read of `count` at `offset` can return from a file of `size` bytes.
    @inline(__always)
    package static func readLength(offset: UInt64, count: Int, size: UInt64) -> Int {
        guard count > 0, offset < size else { return 0 }
        return Int(min(UInt64(count), size - offset))
    }

    package static func readResult(_ block: HeapBlock?, count: Int, offset: UInt64, _ st: lfs_stat) -> ReadResult {
        let segments = block.map { [DataSegment(bytes: UnsafeRawBufferPointer(start: $0.base, count: count), owner: $0)] } ?? []
        return ReadResult(segments: count > 0 ? segments : [], count: count, eof: offset &+ UInt64(count) >= st.size,
                          attributes: st.attributes(.all))
    }

    /// `fileTooBig` for a range past the largest file offset.
    @inline(__always)
    package static func checkRange(offset: UInt64, length: UInt64) throws(VFSError) {
        let (end, overflow) = offset.addingReportingOverflow(length)
        if overflow || end > UInt64(Int64.max) { throw .fileTooBig }
    }

    /// Makes written data as durable as `stability` asks.
    package static func sync(_ file: Descriptor, _ stability: WriteStability) throws(VFSError) {
        switch stability {
        case .unstable: break
        case .dataSync: try check(lfs_fsync(file.fd, 1))
        case .fileSync: try check(lfs_fsync(file.fd, 0))
        }
    }

    // MARK: Attributes and names

    /// utimensat on a descriptor; `unchanged` twice does nothing.
    static func setTimes(_ fd: Int32, atime: TimeSetting, mtime: TimeSetting) throws(VFSError) {
        if atime == .unchanged && mtime == .unchanged { return }
        func parts(_ setting: TimeSetting) -> (Int64, Int64) {
            switch setting {
            case .unchanged: (0, -2)
            case .serverTime: (0, -1)
            case let .value(t): (t.seconds, Int64(t.nanoseconds))
            }
        }
        let (a, m) = (parts(atime), parts(mtime))
        try check(lfs_utimens_fd(fd, a.0, a.1, m.0, m.1))
    }

    // MARK: Create

    /// Times a create sets: only explicit values (the new object's times are already "now").
    static func explicit(_ setting: TimeSetting) -> TimeSetting {
        if case .value = setting { return setting }
        return .unchanged
    }

    static func defaultMode(_ kind: CreateKind) -> UInt32 {
        switch kind {
        case .directory: 0o755
        case .symlink: 0o777
        default: 0o644
        }
    }

    /// Makes the object with umask 0 on this thread (the client applied its own umask):
    /// returns the open descriptor for a regular file (read-write), 0 for others, or -errno.
    static func make(_ kind: CreateKind, _ name: String, in dir: Int32, permissions: UInt32) -> Int32 {
        let saved = lfs_thread_umask_zero()
        defer { if saved >= 0 { lfs_thread_umask_restore(UInt32(saved)) } }
        return name.withCString { cName -> Int32 in
            switch kind {
            case .regular:
                // Read-write: the creator nearly always writes next, and this descriptor then
                // serves those writes without a reopen (see `create`).
                return lfs_openat2(dir, cName, lfs_O_CREAT | lfs_O_EXCL | lfs_O_RDWR | lfs_O_NOFOLLOW, permissions, resolveBeneath)
            case .directory:
                return lfs_mkdirat(dir, cName, permissions)
            case let .symlink(target):
                return target.withCString { lfs_symlinkat($0, dir, cName) }
            case let .device(type, major, minor):
                return lfs_mknodat(dir, cName, (type == .blockDevice ? 0o060000 : 0o020000) | permissions, major, minor)
            case .fifo:
                return lfs_mknodat(dir, cName, 0o010000 | permissions, 0, 0)
            case .socket:
                return lfs_mknodat(dir, cName, 0o140000 | permissions, 0, 0)
            }
        }
    }

    /// CREATE of a name that exists: open it (unchecked regular file, exclusive retry) or refuse.
    func openExisting(_ name: String, in dir: Descriptor, kind: CreateKind, mode: CreateMode, initial: SetAttributes, before: Attributes, credentials: Credentials) throws(VFSError) -> CreateResult {
        let (child, st) = try adopt(try check(openAt(dir.fd, name, flags: openPathFlags)))
        switch mode {
        case .guarded:
            throw .exists
        case let .exclusive(verifier):
            let stored = try identity.asServer(while: credentials) { () throws(VFSError) -> UInt64? in
                var value: UInt64 = 0
                let n = withUnsafeMutableBytes(of: &value) { lfs_getxattr_fd(child.fd, Self.verifierXattr, $0.baseAddress, UInt64($0.count)) }
                return n == 8 ? UInt64(littleEndian: value) : nil
            }
            guard stored == verifier else { throw .exists }
        case .unchecked:
            guard case .regular = kind else { throw .exists }
            guard st.fileType == .regular else { throw st.fileType == .directory ? .isDirectory : .exists }
            if let size = initial.size { try check(lfs_truncate_fd(child.fd, size)) }
        }
        let handle = try makeHandle(child.fd, "", st)
        nodes.insert(handle, child)
        return CreateResult(handle: handle, attributes: try stat(child, birthTime: true).attributes(.all),
                            directory: DirectoryChange(before: before, after: try stat(dir, birthTime: true).attributes(.all)),
                            created: false)
    }

    // MARK: Directories

    /// The type a dirent carries (nil for DT_UNKNOWN: the caller stats).
    static func direntType(_ kind: UInt8) -> FileType? {
        switch kind {
        case 4: .directory
        case 8: .regular
        case 10: .symlink
        case 6: .blockDevice
        case 2: .characterDevice
        case 1: .fifo
        case 12: .socket
        default: nil
        }
    }

    func removeEntry(_ name: String, in directory: FileHandle, directory isDirectory: Bool, credentials: Credentials) async throws(VFSError) -> DirectoryChange {
        try NameRules.validateEntryName(name)
        return try await blocking { () throws(VFSError) -> DirectoryChange in
            let dir = try self.directory(directory)
            let before = try self.stat(dir, birthTime: true).attributes(.all)
            let victim = try self.acting(as: credentials) { () throws(VFSError) -> lfs_stat in
                let victim = try lfs_stat.at(dir.fd, name)
                if !isDirectory && victim.fileType == .directory { throw .isDirectory }
                if isDirectory && victim.fileType != .directory { throw .notDirectory }
                let result = name.withCString { lfs_unlinkat(dir.fd, $0, isDirectory ? 1 : 0) }
                // Some filesystems say EEXIST for a directory that is not empty.
                if result == -EEXIST { throw .notEmpty }
                try check(result)
                return victim
            }
            self.forget(device: victim.device, inode: victim.ino)
            return DirectoryChange(before: before, after: try self.stat(dir, birthTime: true).attributes(.all))
        }
    }

    static func join(_ directory: [UInt8], _ name: String) -> [UInt8] {
        directory.isEmpty ? Array(name.utf8) : directory + [UInt8(ascii: "/")] + Array(name.utf8)
    }

    // MARK: Extended attributes (the "user." namespace only)

    /// Clients reach user.* attributes only: trusted.* and security.* would be set with the
    /// server's CAP_SYS_ADMIN, which a caller's fsuid does not drop. The server's own
    /// (user.dmanoel.*) are hidden.
    static func checkXattrName(_ name: String) throws(VFSError) {
        guard !name.isEmpty, name.utf8.count <= NameRules.maxNameLength, !name.utf8.contains(0) else { throw .invalid }
        guard name.hasPrefix("user.") else { throw .notSupported }
        if name.hasPrefix(reservedXattrPrefix) { throw .accessDenied }
    }

}

/// The key of an I/O descriptor: the kernel checked `credentials` for this access at open.
package struct OpenKey: Hashable, Sendable {
    let handle: FileHandle
    let credentials: Credentials
    let writable: Bool

    package init(handle: FileHandle, credentials: Credentials, writable: Bool) {
        self.handle = handle
        self.credentials = credentials
        self.writable = writable
    }
}

/// A kernel file handle being encoded or decoded.
struct KernelHandle {
    var type: Int32 = 0
    var count: UInt32 = 0
    var mountID: Int32 = 0
    var bytes: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    /// Whether it fits a `FileHandle` body as `[1][type][bytes]`.
    var fits: Bool { type >= 0 && type <= 0xFE && count > 0 && Int(count) <= LinuxFS.maxKernelHandle }

    var body: [UInt8] {
        var body: [UInt8] = [LinuxFS.kernelFormat, UInt8(type)]
        withUnsafeBytes(of: bytes) { body.append(contentsOf: $0[0..<Int(count)]) }
        return body
    }

    /// name_to_handle_at of `name` in `fd` ("" for `fd` itself), without following a symlink.
    static func encode(_ fd: Int32, _ name: String) -> (Int32, KernelHandle) {
        var handle = KernelHandle()
        var type: Int32 = 0, count: UInt32 = 0, mountID: Int32 = 0
        let result = name.withCString { path in
            withUnsafeMutableBytes(of: &handle.bytes) {
                lfs_name_to_handle(fd, path, 0, &type, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), &count, &mountID)
            }
        }
        handle.type = type
        handle.count = count
        handle.mountID = mountID
        return (result, handle)
    }

    mutating func open(mount: Int32, flags: Int32) -> Int32 {
        let (type, count) = (type, count)
        return withUnsafeBytes(of: &bytes) { lfs_open_by_handle(mount, type, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), count, flags) }
    }
}

/// Bytes a caller lends for the duration of one awaited call.
package struct LentBytes: @unchecked Sendable {
    package let bytes: UnsafeRawBufferPointer
    package init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }
}


/// A directory entry being assembled (its type may be unknown until a stat).
struct PendingEntry {
    var name: String
    var fileid: UInt64
    var cookie: UInt64
    var type: FileType?
    var attributes: Attributes?
    var handle: FileHandle?

    var entry: DirectoryEntry {
        DirectoryEntry(name: name, fileid: fileid, cookie: cookie, type: type ?? .regular, attributes: attributes, handle: handle)
    }
}

/// A hash that is the same in every process (Swift's Hasher is seeded per process), so
/// directory verifiers survive a restart.
func stableHash(_ words: UInt64...) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for word in words {
        h = (h ^ word) &* 0x0000_0100_0000_01B3
        h ^= h >> 29
    }
    return h
}
