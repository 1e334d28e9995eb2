import CLinuxFS
import Glibc
import Runtime
import VFS

/// The linux module: serves a real host directory (the share root).
///
/// **Blocking.** Every system call runs on the delegation pool (`await delegation.run`); the
/// awaiting task resumes on its own loop. One request is one hop: the whole operation (handle
/// decoding, credential switch, the calls, attributes before and after) runs in one job.
///
/// **Handles.** A handle body is `[1][handle_type][f_handle bytes]`: the kernel's own file
/// handle from name_to_handle_at(2), whose type fits one byte, so up to 48 handle bytes fit
/// the 50-byte body (ext4 8, xfs 8-16, btrfs 20, tmpfs 12). Kernel handles stay valid across
/// server restarts. An object whose kernel handle does not fit (or a filesystem without
/// handles, or a server without CAP_DAC_READ_SEARCH) gets `[2][table id, 8 bytes]`, a number
/// for its path kept in memory (`HandleTable`: lost at restart). A handle of a removed object
/// (gone, or its link count 0) is `stale`.
///
/// **No escape.** Names are checked with `NameRules`; every name is resolved relative to a
/// directory descriptor with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
/// RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV) and O_NOFOLLOW, so a symlink is only ever the
/// object itself (LOOKUP returns the link; using it as a directory is `notDirectory`), ".."
/// never leaves the root (".." of the root is the root), and other mounts below the root are
/// not entered. Creates, links, removes and renames take directory descriptors and single
/// names, so nothing can land outside. A handle decoded with open_by_handle_at(2) is
/// accepted only if it is inside the root: either the root is a whole filesystem (a mount
/// root whose mount shows the filesystem's own root), or the path the kernel reports for the
/// object (/proc/self/fd) lies below the root *and* opening that path again beneath the root
/// (same openat2 rules) finds the same inode. Anything else, forged handles for files outside
/// included, is `stale`. Directories are always connected in the kernel's dentry cache, so
/// the check always works for them; a non-directory whose dentry the kernel evicted
/// ("disconnected", shown as "/") reads as `stale` until a lookup or readdir finds it again
/// (exporting a whole filesystem avoids this).
///
/// **Credentials.** Calls that touch names or contents run with the caller's fsuid, fsgid and
/// groups on the delegation thread (`ServerIdentity`), so the kernel checks permissions
/// (`checksPermissions` is true); the server's identity is restored after each call.
///
/// **Open files.** Descriptors of resolved handles (O_PATH) and descriptors opened for I/O
/// (per handle, caller and access, opened with the caller's credentials so the kernel's open
/// check is the permission check) live in two bounded LRU caches shared by every loop and
/// protected by a mutex each (`DescriptorCache`). A change of mode or owner through this
/// server drops the I/O descriptors of that file; a remove drops the removed object's.
/// A descriptor falling out of a cache is closed when the last operation using it ends;
/// `shutdown()` empties both caches.
///
/// **Limits.** Permission changes made outside this server reach I/O descriptors already
/// open only when they leave the cache, and an object a local process moves out of the share
/// stays reachable through a handle already decoded until it leaves the cache (new decodes
/// are checked). Exclusive creates keep their verifier in the `user.dmanoel.verifier` xattr,
/// so they need a filesystem with user xattrs. Clients see the `user.` xattr namespace only.
/// Names that are not UTF-8 are listed lossily. Creates run with umask 0 on the delegation
/// thread (the thread gets its own fs context once, unshare(CLONE_FS)).
open class LinuxFS: FileSystemBackend, @unchecked Sendable {
    /// The share root as configured.
    public let rootPath: String
    package let delegation: DelegationPool
    /// The root directory, opened O_RDONLY (open_by_handle_at needs a real descriptor).
    package let root: Descriptor
    let rootBody: [UInt8]
    let rootMountID: Int32
    /// The root is a whole filesystem: every object a handle can decode to is inside.
    let wholeFilesystem: Bool
    /// Kernel handles cannot be used (forced, unsupported, or not privileged).
    let tableOnly: Bool
    let identity: ServerIdentity
    let table = HandleTable()
    /// O_PATH descriptors of decoded handles.
    package let nodes: DescriptorCache<FileHandle>
    /// Descriptors open for reading or writing.
    package let files: DescriptorCache<OpenKey>

    static let kernelFormat: UInt8 = 1
    static let tableFormat: UInt8 = 2
    static let maxKernelHandle = FileHandle.capacity - 2 - 2
    /// Where the verifier of an exclusive create is kept; clients can neither see nor change it.
    static let reservedXattrPrefix = "user.dmanoel."
    static let verifierXattr = "user.dmanoel.verifier"

    /// Serves the directory `root`. `openFiles` bounds each descriptor cache; `handleTable`
    /// forces in-memory handles (tests of that path).
    public convenience init(root: String, delegation: DelegationPool, openFiles: Int = 256, handleTable: Bool = false) throws(VFSError) {
        try self.init(root: root, delegation: delegation, moduleName: "linux", openFiles: openFiles, handleTable: handleTable)
    }

    package init(root: String, delegation: DelegationPool, moduleName: String, openFiles: Int, handleTable: Bool) throws(VFSError) {
        rootPath = root
        self.delegation = delegation
        identity = ServerIdentity.current()
        nodes = DescriptorCache(capacity: openFiles)
        files = DescriptorCache(capacity: openFiles)
        let fd = try check(openAt(AT_FDCWD, root, flags: lfs_O_RDONLY | lfs_O_DIRECTORY, resolve: 0))
        let st: lfs_stat
        do throws(VFSError) {
            st = try lfs_stat.of(fd)
        } catch {
            _ = lfs_close(fd)
            throw error
        }
        self.root = Descriptor(fd: fd, type: .directory, device: st.device, inode: st.ino, pool: nil)

        // Kernel handles if the root has one that fits and this process may open handles.
        var (encoded, kernel) = KernelHandle.encode(fd, "")
        var usable = !handleTable && encoded == 0 && kernel.fits
        if usable {
            let probe = kernel.open(mount: fd, flags: openPathFlags)
            if probe >= 0 { _ = lfs_close(probe) } else { usable = false }
        }
        tableOnly = !usable
        rootMountID = encoded == 0 ? kernel.mountID : -1
        var rootStat = st
        wholeFilesystem = lfs_is_mount_root(&rootStat) != 0 && Self.mountShowsFilesystemRoot(mountID: st.mnt_id)
        if usable {
            rootBody = kernel.body
        } else {
            var body: [UInt8] = [Self.tableFormat]
            let id = table.id(device: st.device, inode: st.ino, path: [])
            withUnsafeBytes(of: id.littleEndian) { body.append(contentsOf: $0) }
            rootBody = body
        }
        super.init(moduleName: moduleName)
    }

    /// True when the share root is a whole filesystem (no containment check needed).
    package var servesWholeFilesystem: Bool { wholeFilesystem }

    /// The kernel checks permissions with the caller's credentials (when the server can switch to them).
    open override var checksPermissions: Bool { identity.canSwitch }

    /// Every lookup and getattr costs a hop to a delegation thread and a system call, so the
    /// VFS caches names and attributes; the served directory can change behind the server's
    /// back, so entries live one second (a mount's `cache_ttl_ms` changes it). One statx
    /// yields every attribute, so a miss asks for all of them.
    open override var metadataCachePolicy: MetadataCachePolicy? { MetadataCachePolicy(fillMask: .all) }

    public override var rootHandle: FileHandle {
        rootBody.withUnsafeBytes { FileHandle(mount: mountID, body: $0)! }
    }

    /// True when the mount `mountID` shows its filesystem from the filesystem's own root.
    private static func mountShowsFilesystemRoot(mountID: UInt64) -> Bool {
        guard mountID != 0, let text = readSmallFile("/proc/self/mountinfo") else { return false }
        for line in text.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 4)
            guard fields.count >= 4, UInt64(String(decoding: fields[0], as: UTF8.self)) == mountID else { continue }
            return fields[3].elementsEqual("/".utf8)
        }
        return false
    }

    private static func readSmallFile(_ path: String) -> [UInt8]? {
        let fd = openAt(AT_FDCWD, path, flags: lfs_O_RDONLY, resolve: 0)
        guard fd >= 0 else { return nil }
        defer { _ = lfs_close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { lfs_pread(fd, $0.baseAddress, UInt64($0.count), UInt64(out.count)) }
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<Int(n)])
        }
        return out
    }

    /// Flushes the filesystem under the share (syncfs) so that unstable writes nobody
    /// committed survive a power cut after a clean stop, then drops the cached descriptors.
    open override func shutdown() async {
        let root = self.root
        await delegation.run { _ = lfs_syncfs(root.fd) }
        files.removeAll()
        nodes.removeAll()
    }

    public override func getattr(_ handle: FileHandle, mask: AttributeMask) async throws(VFSError) -> Attributes {
        // A handle already decoded and an empty mask: nothing to ask the kernel.
        if mask.isEmpty, nodes.lookup(handle) != nil { return Attributes() }
        return try await blocking { () throws(VFSError) -> Attributes in
            let object = try self.node(handle)
            if mask.isEmpty { return Attributes() }
            return try self.stat(object, birthTime: mask.contains(.birthTime)).attributes(mask)
        }
    }

    public override func lookup(_ directory: FileHandle, name: String, mask: AttributeMask, credentials: Credentials) async throws(VFSError) -> (FileHandle, Attributes) {
        if name != "." && name != ".." { try NameRules.validateEntryName(name) }
        return try await blocking { () throws(VFSError) -> (FileHandle, Attributes) in
            let dir = try self.directory(directory)
            if name == "." {
                return (directory, mask.isEmpty ? Attributes() : try self.stat(dir, birthTime: mask.contains(.birthTime)).attributes(mask))
            }
            if name == "..", dir.isSameObject(as: self.root) {
                return (self.rootHandle, mask.isEmpty ? Attributes() : try self.stat(self.root, birthTime: mask.contains(.birthTime)).attributes(mask))
            }
            let (child, st) = try self.acting(as: credentials) { () throws(VFSError) -> (Descriptor, lfs_stat) in
                let fd: Int32
                if name == ".." {
                    // Not RESOLVE_BENEATH (that refuses ".." itself): the parent of a directory
                    // below the root is inside, which the check below confirms.
                    fd = try check(openAt(dir.fd, "..", flags: openPathFlags | lfs_O_DIRECTORY,
                                          resolve: UInt64(LFS_RESOLVE_NO_SYMLINKS | LFS_RESOLVE_NO_MAGICLINKS | LFS_RESOLVE_NO_XDEV)))
                } else {
                    fd = try check(openAt(dir.fd, name, flags: openPathFlags))
                }
                let adopted = try self.adopt(fd, birthTime: mask.contains(.birthTime))
                if name == ".." {
                    let inside = try self.identity.asServer(while: credentials) { () throws(VFSError) -> Bool in
                        adopted.0.isSameObject(as: self.root) || self.isInsideShare(adopted.0)
                    }
                    guard inside else { throw .stale }
                }
                return adopted
            }
            if child.isSameObject(as: self.root) { return (self.rootHandle, st.attributes(mask)) }
            let handle = try self.makeHandle(child.fd, "", st)
            self.nodes.insert(handle, child)
            return (handle, st.attributes(mask))
        }
    }

    public override func setattr(_ handle: FileHandle, _ changes: SetAttributes, guardCtime: Timespec?, credentials: Credentials) async throws(VFSError) -> (before: Attributes, after: Attributes) {
        try await blocking { () throws(VFSError) -> (before: Attributes, after: Attributes) in
            let object = try self.node(handle)
            let before = try self.stat(object, birthTime: true)
            if let guardCtime, guardCtime != before.ctime { throw .notSync }
            try self.acting(as: credentials) { () throws(VFSError) in
                if let size = changes.size {
                    switch object.type {
                    case .regular: try check(lfs_truncate_fd(object.fd, size))
                    case .directory: throw .isDirectory
                    default: throw .invalid
                    }
                }
                // Owner before mode: a chown clears set-id bits the new mode may ask for.
                if changes.uid != nil || changes.gid != nil {
                    try check(lfs_chown_fd(object.fd, changes.uid.map(Int64.init) ?? -1, changes.gid.map(Int64.init) ?? -1))
                }
                if let mode = changes.mode { try check(lfs_chmod_fd(object.fd, mode & 0o7777)) }
                try Self.setTimes(object.fd, atime: changes.atime, mtime: changes.mtime)
            }
            if changes.mode != nil || changes.uid != nil || changes.gid != nil {
                // Permissions changed: descriptors opened under the old ones must not be reused.
                self.files.removeAll { $1.device == object.device && $1.inode == object.inode }
            }
            return (before.attributes(.all), try self.stat(object, birthTime: true).attributes(.all))
        }
    }

    public override func create(in directory: FileHandle, name: String, kind: CreateKind, mode: CreateMode, attributes initial: SetAttributes, credentials: Credentials) async throws(VFSError) -> CreateResult {
        try NameRules.validateEntryName(name)
        switch kind {
        case let .symlink(target):
            guard !target.isEmpty, !target.utf8.contains(0) else { throw .invalid }
            guard target.utf8.count < Int(PATH_MAX) else { throw .nameTooLong }
        case let .device(type, _, _):
            guard type == .blockDevice || type == .characterDevice else { throw .invalid }
        default:
            break
        }
        return try await blocking { () throws(VFSError) -> CreateResult in
            let dir = try self.directory(directory)
            let before = try self.stat(dir, birthTime: true).attributes(.all)
            return try self.acting(as: credentials) { () throws(VFSError) -> CreateResult in
                let made = Self.make(kind, name, in: dir.fd, permissions: initial.mode.map { $0 & 0o7777 } ?? Self.defaultMode(kind))
                if made == -EEXIST {
                    return try self.openExisting(name, in: dir, kind: kind, mode: mode, initial: initial, before: before, credentials: credentials)
                }
                try check(made)
                // Regular files come back open; anything else is opened as itself.
                let fd = kind == .regular ? made : try check(openAt(dir.fd, name, flags: openPathFlags))
                let (child, _) = try self.adopt(fd)
                let handle: FileHandle
                do throws(VFSError) {
                    if case let .exclusive(verifier) = mode {
                        try self.identity.asServer(while: credentials) { () throws(VFSError) in
                            var value = verifier.littleEndian
                            try check(withUnsafeBytes(of: &value) {
                                lfs_setxattr_fd(child.fd, Self.verifierXattr, $0.baseAddress, UInt64($0.count), 0, 0)
                            })
                        }
                    }
                    if initial.uid != nil || initial.gid != nil {
                        try check(lfs_chown_fd(child.fd, initial.uid.map(Int64.init) ?? -1, initial.gid.map(Int64.init) ?? -1))
                    }
                    try Self.setTimes(child.fd, atime: Self.explicit(initial.atime), mtime: Self.explicit(initial.mtime))
                    handle = try self.makeHandle(child.fd, "", try lfs_stat.of(child.fd))
                } catch {
                    // Half made (owner refused, no xattrs...): take it back.
                    _ = name.withCString { lfs_unlinkat(dir.fd, $0, kind == .directory ? 1 : 0) }
                    throw error
                }
                let st = try lfs_stat.of(child.fd, birthTime: true)
                self.nodes.insert(handle, child)
                // The new regular file's descriptor is read-write: when its owner (the creator)
                // may write it, it is also the creator's writable descriptor, so the WRITE that
                // follows a CREATE needs no reopen on a delegation thread. A later chmod/chown
                // drops it (setattr), as for any cached descriptor.
                if case .regular = kind, initial.uid == nil, initial.gid == nil, st.uid == credentials.uid, st.mode & 0o200 != 0 {
                    _ = self.files.insert(OpenKey(handle: handle, credentials: credentials, writable: true), child)
                }
                return CreateResult(handle: handle, attributes: st.attributes(.all),
                                    directory: DirectoryChange(before: before, after: try self.stat(dir, birthTime: true).attributes(.all)),
                                    created: true)
            }
        }
    }

    open override func read(_ handle: FileHandle, offset: UInt64, count: Int, credentials: Credentials) async throws(VFSError) -> ReadResult {
        try await blocking { () throws(VFSError) -> ReadResult in
            let file = try self.openFile(handle, credentials, writable: false)
            let st = try self.stat(file)
            let wanted = Self.readLength(offset: offset, count: count, size: st.size)
            guard wanted > 0 else { return Self.readResult(nil, count: 0, offset: offset, st) }
            let block = HeapBlock(capacity: wanted)
            var done = 0
            while done < wanted {
                let n = try check(lfs_pread(file.fd, block.base + done, UInt64(wanted - done), offset + UInt64(done)))
                if n == 0 { break }
                done += Int(n)
            }
            return Self.readResult(block, count: done, offset: offset, st)
        }
    }

    open override func write(_ handle: FileHandle, offset: UInt64, data: UnsafeRawBufferPointer, stability: WriteStability, credentials: Credentials) async throws(VFSError) -> WriteResult {
        try Self.checkRange(offset: offset, length: UInt64(data.count))
        let lent = LentBytes(data)
        return try await blocking { () throws(VFSError) -> WriteResult in
            let file = try self.openFile(handle, credentials, writable: true)
            let before = try self.stat(file)
            var done = 0
            while done < lent.bytes.count {
                let n = try check(lfs_pwrite(file.fd, lent.bytes.baseAddress! + done, UInt64(lent.bytes.count - done), offset + UInt64(done)))
                if n == 0 { throw .io }
                done += Int(n)
            }
            try Self.sync(file, stability)
            return WriteResult(count: done, stability: stability, before: before.attributes(.all), after: try self.stat(file).attributes(.all))
        }
    }

    open override func commit(_ handle: FileHandle, offset: UInt64, count: UInt64) async throws(VFSError) -> Attributes {
        try await blocking { () throws(VFSError) -> Attributes in
            let object = try self.node(handle)
            if object.type == .regular {
                try check(lfs_fsync(try self.anyOpenFile(handle).fd, 0))
            } else if object.type == .directory {
                // Entries created, renamed or removed in it are durable once it is synced.
                let fd = openat(object.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                guard fd >= 0 else { throw VFSError(errno: errno) }
                defer { close(fd) }
                try check(lfs_fsync(fd, 0))
            }
            return try self.stat(object, birthTime: true).attributes(.all)
        }
    }

    public override func readdir(_ directory: FileHandle, cookie: UInt64, verifier: UInt64, maxEntries: Int, mask: AttributeMask, credentials: Credentials) async throws(VFSError) -> ReadDirResult {
        try await blocking { () throws(VFSError) -> ReadDirResult in
            let dir = try self.directory(directory)
            let dirStat = try self.stat(dir, birthTime: true)
            // Cookies are the kernel's d_off values for this inode; the verifier tells this
            // directory from any other (or from a new one that reused the inode number).
            var mix = stableHash(dirStat.device, dirStat.ino, UInt64(bitPattern: dirStat.btime_sec), UInt64(dirStat.btime_nsec))
            if mix == 0 { mix = 1 }
            if cookie != 0 && verifier != 0 && verifier != mix { throw .badCookie }
            return try self.acting(as: credentials) { () throws(VFSError) -> ReadDirResult in
                let fd = try check(lfs_reopen(dir.fd, lfs_O_RDONLY | lfs_O_DIRECTORY))
                defer { _ = lfs_close(fd) }
                if cookie != 0, lfs_seek_dir(fd, cookie) < 0 { throw .badCookie }
                var entries: [PendingEntry] = []
                var eof = false
                var buffer = [UInt8](repeating: 0, count: 32 * 1024)
                reading: while true {
                    let n = try check(buffer.withUnsafeMutableBytes { lfs_getdents(fd, $0.baseAddress, UInt64($0.count)) })
                    if n == 0 {
                        eof = true
                        break
                    }
                    let stop = buffer.withUnsafeBytes { raw -> Bool in
                        var position = 0
                        while position < Int(n) {
                            let inode = raw.loadUnaligned(fromByteOffset: position, as: UInt64.self)
                            let next = raw.loadUnaligned(fromByteOffset: position + 8, as: Int64.self)
                            let length = Int(raw.loadUnaligned(fromByteOffset: position + 16, as: UInt16.self))
                            let kind = raw[position + 18]
                            let nameStart = position + 19
                            var nameEnd = nameStart
                            while nameEnd < position + length && raw[nameEnd] != 0 { nameEnd += 1 }
                            position += length
                            let nameBytes = UnsafeRawBufferPointer(rebasing: raw[nameStart..<nameEnd])
                            if nameBytes.elementsEqual(".".utf8) || nameBytes.elementsEqual("..".utf8) { continue }
                            if entries.count >= maxEntries { return true }
                            entries.append(PendingEntry(name: String(decoding: nameBytes, as: UTF8.self), fileid: inode,
                                                        cookie: UInt64(bitPattern: next), type: Self.direntType(kind)))
                        }
                        return false
                    }
                    if stop { break reading }
                }
                if !mask.isEmpty || entries.contains(where: { $0.type == nil }) {
                    for index in entries.indices {
                        guard let st = try? lfs_stat.at(fd, entries[index].name, birthTime: mask.contains(.birthTime)) else { continue }
                        entries[index].type = st.fileType
                        guard !mask.isEmpty else { continue }
                        // A mount point below the root is not served: no handle for it.
                        guard let handle = try? self.makeHandle(fd, entries[index].name, st) else { continue }
                        entries[index].attributes = st.attributes(mask)
                        entries[index].handle = handle
                    }
                }
                return ReadDirResult(entries: entries.map { $0.entry }, verifier: mix, eof: eof, directory: dirStat.attributes(.all))
            }
        }
    }

    public override func readlink(_ handle: FileHandle, credentials: Credentials) async throws(VFSError) -> String {
        try await blocking { () throws(VFSError) -> String in
            let object = try self.node(handle)
            guard object.type == .symlink else { throw .invalid }
            var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX))
            let n = try check(buffer.withUnsafeMutableBytes { lfs_readlink_fd(object.fd, $0.baseAddress!.assumingMemoryBound(to: CChar.self), UInt64($0.count)) })
            return String(decoding: buffer[0..<Int(n)], as: UTF8.self)
        }
    }

    public override func link(_ handle: FileHandle, into directory: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> (Attributes, DirectoryChange) {
        try NameRules.validateEntryName(name)
        return try await blocking { () throws(VFSError) -> (Attributes, DirectoryChange) in
            let object = try self.node(handle)
            let dir = try self.directory(directory)
            guard object.type != .directory else { throw .isDirectory }
            let before = try self.stat(dir, birthTime: true).attributes(.all)
            _ = try self.stat(object)
            try self.acting(as: credentials) { () throws(VFSError) in
                try check(name.withCString { lfs_link_fd(object.fd, dir.fd, $0) })
            }
            return (try self.stat(object, birthTime: true).attributes(.all),
                    DirectoryChange(before: before, after: try self.stat(dir, birthTime: true).attributes(.all)))
        }
    }

    public override func remove(in directory: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> DirectoryChange {
        try await removeEntry(name, in: directory, directory: false, credentials: credentials)
    }

    public override func rmdir(in directory: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> DirectoryChange {
        try await removeEntry(name, in: directory, directory: true, credentials: credentials)
    }

    public override func rename(from source: FileHandle, name: String, to target: FileHandle, newName: String, credentials: Credentials) async throws(VFSError) -> (from: DirectoryChange, to: DirectoryChange) {
        try NameRules.validateEntryName(name)
        try NameRules.validateEntryName(newName)
        return try await blocking { () throws(VFSError) -> (from: DirectoryChange, to: DirectoryChange) in
            let from = try self.directory(source)
            let to = try self.directory(target)
            let beforeFrom = try self.stat(from, birthTime: true).attributes(.all)
            let beforeTo = from.isSameObject(as: to) ? beforeFrom : try self.stat(to, birthTime: true).attributes(.all)
            let (moved, replaced) = try self.acting(as: credentials) { () throws(VFSError) -> (lfs_stat, lfs_stat?) in
                let moved = try lfs_stat.at(from.fd, name)
                let replaced = try? lfs_stat.at(to.fd, newName)
                let result = name.withCString { old in newName.withCString { new in lfs_renameat(from.fd, old, to.fd, new) } }
                if result == -EEXIST { throw .notEmpty }
                try check(result)
                return (moved, replaced)
            }
            if let replaced, replaced.device != moved.device || replaced.ino != moved.ino {
                self.forget(device: replaced.device, inode: replaced.ino)
            }
            if !self.table.isEmpty, let fromPath = self.relativePathOf(from.fd), let toPath = self.relativePathOf(to.fd) {
                self.table.renamed(from: Self.join(fromPath, name), to: Self.join(toPath, newName))
            }
            let afterFrom = try self.stat(from, birthTime: true).attributes(.all)
            let afterTo = from.isSameObject(as: to) ? afterFrom : try self.stat(to, birthTime: true).attributes(.all)
            return (DirectoryChange(before: beforeFrom, after: afterFrom), DirectoryChange(before: beforeTo, after: afterTo))
        }
    }

    public override func statfs(_ handle: FileHandle) async throws(VFSError) -> FileSystemStats {
        try await blocking { () throws(VFSError) -> FileSystemStats in
            let object = try self.node(handle)
            var s = lfs_fsstat()
            try check(lfs_fstatfs(object.fd, &s))
            return FileSystemStats(totalBytes: s.blocks &* s.block_size, freeBytes: s.blocks_free &* s.block_size,
                                   availableBytes: s.blocks_available &* s.block_size, totalFiles: s.files,
                                   freeFiles: s.files_free, availableFiles: s.files_free, maxNameLength: UInt32(clamping: s.name_max))
        }
    }

    public override func getxattr(_ handle: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> [UInt8] {
        try Self.checkXattrName(name)
        return try await blocking { () throws(VFSError) -> [UInt8] in
            let object = try self.node(handle)
            return try self.acting(as: credentials) { () throws(VFSError) -> [UInt8] in
                for _ in 0..<4 {
                    let size = try check(lfs_getxattr_fd(object.fd, name, nil, 0))
                    var value = [UInt8](repeating: 0, count: Int(size))
                    let n = value.withUnsafeMutableBytes { lfs_getxattr_fd(object.fd, name, $0.baseAddress, UInt64($0.count)) }
                    if n == -Int64(ERANGE) { continue }  // grew in between
                    try check(n)
                    return Array(value[0..<Int(n)])
                }
                throw .rangeTooBig
            }
        }
    }

    public override func setxattr(_ handle: FileHandle, name: String, value: [UInt8], mode: XattrSetMode, credentials: Credentials) async throws(VFSError) {
        try Self.checkXattrName(name)
        guard value.count <= 64 * 1024 else { throw .rangeTooBig }
        try await blocking { () throws(VFSError) in
            let object = try self.node(handle)
            try self.acting(as: credentials) { () throws(VFSError) in
                try check(value.withUnsafeBytes {
                    lfs_setxattr_fd(object.fd, name, $0.baseAddress, UInt64($0.count), mode == .create ? 1 : 0, mode == .replace ? 1 : 0)
                })
            }
        }
    }

    public override func listxattr(_ handle: FileHandle, credentials: Credentials) async throws(VFSError) -> [String] {
        try await blocking { () throws(VFSError) -> [String] in
            let object = try self.node(handle)
            return try self.acting(as: credentials) { () throws(VFSError) -> [String] in
                for _ in 0..<4 {
                    let size = try check(lfs_listxattr_fd(object.fd, nil, 0))
                    var list = [UInt8](repeating: 0, count: Int(size))
                    let n = list.withUnsafeMutableBytes { lfs_listxattr_fd(object.fd, $0.baseAddress?.assumingMemoryBound(to: CChar.self), UInt64($0.count)) }
                    if n == -Int64(ERANGE) { continue }
                    try check(n)
                    return list[0..<Int(n)].split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                        .filter { $0.hasPrefix("user.") && !$0.hasPrefix(Self.reservedXattrPrefix) }
                }
                throw .rangeTooBig
            }
        }
    }

    public override func removexattr(_ handle: FileHandle, name: String, credentials: Credentials) async throws(VFSError) {
        try Self.checkXattrName(name)
        try await blocking { () throws(VFSError) in
            let object = try self.node(handle)
            try self.acting(as: credentials) { () throws(VFSError) in
                try check(lfs_removexattr_fd(object.fd, name))
            }
        }
    }

    public override func allocate(_ handle: FileHandle, offset: UInt64, length: UInt64, credentials: Credentials) async throws(VFSError) {
        try Self.checkRange(offset: offset, length: length)
        guard length > 0 else { return }
        try await blocking { () throws(VFSError) in
            try check(lfs_fallocate(try self.openFile(handle, credentials, writable: true).fd, 0, offset, length))
        }
    }

    public override func deallocate(_ handle: FileHandle, offset: UInt64, length: UInt64, credentials: Credentials) async throws(VFSError) {
        try await blocking { () throws(VFSError) in
            let file = try self.openFile(handle, credentials, writable: true)
            // Nothing to punch past the largest offset; the size never changes.
            guard length > 0, offset < UInt64(Int64.max) else { return }
            try check(lfs_fallocate(file.fd, 1, offset, min(length, UInt64(Int64.max) - offset)))
        }
    }

    public override func seek(_ handle: FileHandle, offset: UInt64, target: SeekTarget) async throws(VFSError) -> (offset: UInt64, eof: Bool) {
        try await blocking { () throws(VFSError) -> (offset: UInt64, eof: Bool) in
            let file = try self.openFile(handle, .root, writable: false)
            guard offset < UInt64(Int64.max) else { throw .noData }
            let result = lfs_seek(file.fd, offset, target == .hole ? 1 : 0)
            if result == -Int64(ENXIO) { throw .noData }
            let position = UInt64(try check(result))
            guard target == .hole else { return (position, false) }
            return (position, position >= (try self.stat(file)).size)
        }
    }

    public override func copyRange(from source: FileHandle, offset sourceOffset: UInt64, to target: FileHandle, offset targetOffset: UInt64, count: UInt64, credentials: Credentials) async throws(VFSError) -> UInt64 {
        try Self.checkRange(offset: sourceOffset, length: count)
        try Self.checkRange(offset: targetOffset, length: count)
        return try await blocking { () throws(VFSError) -> UInt64 in
            let input = try self.openFile(source, credentials, writable: false)
            let output = try self.openFile(target, credentials, writable: true)
            var done: UInt64 = 0
            while done < count {
                let n = try check(lfs_copy_range(input.fd, sourceOffset + done, output.fd, targetOffset + done, min(count - done, 1 << 30)))
                if n == 0 { break }
                done += UInt64(n)
            }
            return done
        }
    }
}
