import CLinuxFS
import Glibc
import Synchronization
import VFS

// Small Swift faces of the CLinuxFS calls. Every shim returns a value >= 0 or -errno.

@inline(__always)
@discardableResult
func check(_ result: Int32) throws(VFSError) -> Int32 {
    if result < 0 { throw VFSError(errno: -result) }
    return result
}

@inline(__always)
@discardableResult
func check(_ result: Int64) throws(VFSError) -> Int64 {
    if result < 0 { throw VFSError(errno: Int32(-result)) }
    return result
}

/// openat2 resolution for a name inside a directory of the share: never above the directory,
/// never through a symlink or a /proc magic link, never onto another mount. With O_PATH and
/// O_NOFOLLOW a trailing symlink is opened as itself (the client resolves symlinks, not us).
let resolveBeneath = UInt64(LFS_RESOLVE_BENEATH | LFS_RESOLVE_NO_SYMLINKS | LFS_RESOLVE_NO_MAGICLINKS | LFS_RESOLVE_NO_XDEV)

/// openat2 of a name relative to `directory` (fd or -errno).
@inline(__always)
func openAt(_ directory: Int32, _ name: String, flags: Int32, mode: UInt32 = 0, resolve: UInt64 = resolveBeneath) -> Int32 {
    name.withCString { lfs_openat2(directory, $0, flags, mode, resolve) }
}

/// O_PATH | O_NOFOLLOW: a reference to the object itself, usable as a directory fd, for
/// fstat, handles and /proc reopening, but not for I/O.
let openPathFlags = lfs_O_PATH | lfs_O_NOFOLLOW

extension lfs_stat {
    /// Stats the object `fd` refers to.
    package static func of(_ fd: Int32, birthTime: Bool = false) throws(VFSError) -> lfs_stat {
        var st = lfs_stat()
        try check(lfs_stat_at(fd, "", birthTime ? 1 : 0, &st))
        return st
    }

    /// Stats `name` in directory `fd` without following a symlink.
    package static func at(_ fd: Int32, _ name: String, birthTime: Bool = false) throws(VFSError) -> lfs_stat {
        var st = lfs_stat()
        try check(name.withCString { lfs_stat_at(fd, $0, birthTime ? 1 : 0, &st) })
        return st
    }

    package var fileType: FileType {
        switch mode & 0o170000 {
        case 0o040000: .directory
        case 0o120000: .symlink
        case 0o060000: .blockDevice
        case 0o020000: .characterDevice
        case 0o010000: .fifo
        case 0o140000: .socket
        default: .regular
        }
    }

    package var device: UInt64 { UInt64(dev_major) << 32 | UInt64(dev_minor) }

    package var ctime: Timespec { Timespec(seconds: ctime_sec, nanoseconds: ctime_nsec) }

    /// The VFS attributes in `mask` (birth time only where the filesystem keeps it).
    package func attributes(_ mask: AttributeMask) -> Attributes {
        var a = Attributes()
        guard !mask.isEmpty else { return a }
        a.valid = mask
        if has_btime == 0 { a.valid.remove(.birthTime) }
        a.type = fileType
        a.mode = mode & 0o7777
        a.nlink = nlink
        a.uid = uid
        a.gid = gid
        a.size = size
        a.spaceUsed = blocks &* 512
        a.fsid = device
        a.fileid = ino
        a.atime = Timespec(seconds: atime_sec, nanoseconds: atime_nsec)
        a.mtime = Timespec(seconds: mtime_sec, nanoseconds: mtime_nsec)
        a.ctime = ctime
        a.birthTime = Timespec(seconds: btime_sec, nanoseconds: btime_nsec)
        // The kernel's i_version is not exported; ctime in nanoseconds is the change counter
        // (timestamps are fine-grained when someone has looked at them, since Linux 6.13).
        a.change = UInt64(bitPattern: ctime_sec) &* 1_000_000_000 &+ UInt64(ctime_nsec)
        a.rdevMajor = rdev_major
        a.rdevMinor = rdev_minor
        return a
    }
}

/// What "/proc/self/fd/<fd>" points to, as raw bytes (names need not be UTF-8).
func descriptorTarget(_ fd: Int32) -> [UInt8]? {
    var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = buffer.withUnsafeMutableBytes { lfs_fd_target(fd, $0.baseAddress!.assumingMemoryBound(to: CChar.self), UInt64($0.count)) }
    guard n > 0, n < buffer.count else { return nil }
    return Array(buffer[0..<Int(n)])
}

/// The path of `path` below `root`, both absolute ("" for the root itself); nil when `path`
/// is not below `root` (another place, or a disconnected object that shows as "/" or a bare name).
func relativePath(_ path: [UInt8], under root: [UInt8]) -> [UInt8]? {
    let slash = UInt8(ascii: "/")
    guard path.first == slash else { return nil }
    if root == [slash] { return Array(path.dropFirst()) }
    if path == root { return [] }
    guard path.count > root.count + 1, path.starts(with: root), path[root.count] == slash else { return nil }
    return Array(path[(root.count + 1)...])
}

/// Opens `relative` (bytes, "" for the root) beneath `root` as O_PATH (fd or -errno).
func openBeneath(_ root: Int32, _ relative: [UInt8]) -> Int32 {
    if relative.isEmpty { return lfs_openat2(root, ".", openPathFlags, 0, resolveBeneath) }
    return (relative + [0]).withUnsafeBufferPointer {
        $0.withMemoryRebound(to: CChar.self) { lfs_openat2(root, $0.baseAddress!, openPathFlags, 0, resolveBeneath) }
    }
}

/// The server's own identity and per-thread switching to a caller's.
///
/// A request runs with the caller's fsuid, fsgid and supplementary groups on the delegation
/// thread that executes it, so the kernel makes every permission decision (mode bits, ACLs,
/// sticky directories, protected links); the thread gets the server's identity back before
/// it runs anything else. Only the calling thread changes: setfsuid/setfsgid are per thread
/// and the groups are set with the raw system call (glibc's setgroups() would change all
/// threads of the process). A server that is not root cannot switch and acts as itself.
struct ServerIdentity: Sendable {
    let uid: UInt32
    let gid: UInt32
    let groups: [UInt32]
    let canSwitch: Bool

    static func current() -> ServerIdentity {
        let count = getgroups(0, nil)
        var groups = [gid_t](repeating: 0, count: Int(max(count, 0)))
        let got = count > 0 ? getgroups(count, &groups) : 0
        return ServerIdentity(uid: geteuid(), gid: getegid(), groups: Array(groups.prefix(Int(max(got, 0)))), canSwitch: geteuid() == 0)
    }

    @inline(__always)
    func differs(_ credentials: Credentials) -> Bool {
        // Root keeps its capabilities whatever its groups; only the ids matter then.
        canSwitch && (credentials.uid != uid || credentials.gid != gid || (credentials.uid != 0 && credentials.groups != groups))
    }

    /// Runs `body` with `credentials` on this thread and puts the server's back afterwards.
    @discardableResult
    func acting<T>(as credentials: Credentials, _ body: () throws(VFSError) -> T) throws(VFSError) -> T {
        guard differs(credentials) else { return try body() }
        let applied = apply(credentials)
        defer { restore() }
        try check(applied)
        return try body()
    }

    /// Inside `acting(as: credentials)`: runs `body` as the server (for the server's own
    /// bookkeeping: decoding handles, checking containment, create verifiers), then switches
    /// back to `credentials`.
    @discardableResult
    func asServer<T>(while credentials: Credentials, _ body: () throws(VFSError) -> T) throws(VFSError) -> T {
        guard differs(credentials) else { return try body() }
        restore()
        defer {
            let again = apply(credentials)
            precondition(again == 0, "cannot switch a delegation thread back to uid \(credentials.uid)")
        }
        return try body()
    }

    private func apply(_ credentials: Credentials) -> Int32 {
        credentials.groups.withUnsafeBufferPointer {
            lfs_set_thread_credentials(credentials.uid, credentials.gid, $0.baseAddress, Int32($0.count))
        }
    }

    private func restore() {
        let result = groups.withUnsafeBufferPointer { lfs_set_thread_credentials(uid, gid, $0.baseAddress, Int32($0.count)) }
        // A thread that cannot become the server again must not run anything else.
        precondition(result == 0, "cannot restore the server's credentials on a delegation thread (\(result))")
    }
}

/// Handles for objects whose kernel handle does not fit a `FileHandle` (or filesystems that
/// have none): a number standing for the object's path below the root, kept in memory.
/// These handles do not survive a restart, and a rename made outside this server leaves
/// them stale (the object found at the recorded path must still be the same inode).
final class HandleTable: Sendable {
    struct Entry: Sendable {
        var path: [UInt8]
        let device: UInt64
        let inode: UInt64
    }

    private struct ObjectID: Hashable {
        let device: UInt64
        let inode: UInt64
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        var ids: [ObjectID: UInt64] = [:]
        var next: UInt64 = 1
    }

    private let state = Mutex(State())

    /// The number for an object, allocated on first sight; records its latest path.
    func id(device: UInt64, inode: UInt64, path: [UInt8]) -> UInt64 {
        state.withLock { s in
            let object = ObjectID(device: device, inode: inode)
            if let id = s.ids[object] {
                s.entries[id]?.path = path
                return id
            }
            let id = s.next
            s.next += 1
            s.ids[object] = id
            s.entries[id] = Entry(path: path, device: device, inode: inode)
            return id
        }
    }

    func entry(_ id: UInt64) -> Entry? { state.withLock { $0.entries[id] } }

    var isEmpty: Bool { state.withLock { $0.entries.isEmpty } }

    /// After a rename through this server: paths at or below `old` now live below `new`.
    func renamed(from old: [UInt8], to new: [UInt8]) {
        state.withLock { s in
            for (id, entry) in s.entries {
                if entry.path == old {
                    s.entries[id]?.path = new
                } else if entry.path.count > old.count, entry.path.starts(with: old), entry.path[old.count] == UInt8(ascii: "/") {
                    s.entries[id]?.path = new + entry.path[old.count...]
                }
            }
        }
    }
}
