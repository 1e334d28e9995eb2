import CVFSPlugin
import Glibc
import Runtime
import Synchronization
import VFS

/// A filesystem module in a shared library, loaded through the C ABI of
/// `dmanoel_vfs_plugin.h`. Every operation runs the plugin's synchronous function on a
/// delegation thread (plugins may block), so a loop thread never waits on a plugin.
///
/// Handles are the mount id followed by the plugin's own handle bytes (at most 48).
/// Permissions are left to the VFS (`checksPermissions` is false): the plugin gets the
/// caller's credentials on every call but is not required to check mode bits.
public final class PluginFS: FileSystemBackend, @unchecked Sendable {
    public static let entrySymbol = "dmanoel_vfs_plugin_entry"
    public static let maxHandleLength = 48
    /// The ABI this server speaks.
    public static var abiVersion: UInt32 { dmanoel_vfs_header_abi_version() }
    /// Largest read handed to a plugin in one call (a longer request returns a short read).
    public static let maxReadSize = 64 << 20

    /// The name the plugin gives itself (`ops.name`), for logs.
    public let pluginName: String
    public let libraryPath: String
    public let configPath: String?

    private let plugin: Plugin
    private let library: UnsafeMutableRawPointer
    private let delegation: DelegationPool
    private let root: dmanoel_vfs_handle
    private let fsid: UInt64
    private let closed = Atomic<Bool>(false)

    /// Loads `libraryPath` (dlopen RTLD_NOW | RTLD_LOCAL), checks its ABI and creates an instance
    /// from `configPath`. `name` is the plugin's configured name (server.vfs key), used in errors
    /// and as the module name mounts refer to.
    public init(name: String, libraryPath: String, configPath: String?, delegation: DelegationPool) throws(PluginError) {
        self.libraryPath = libraryPath
        self.configPath = configPath
        self.delegation = delegation

        if libraryPath.contains("/") && access(libraryPath, F_OK) != 0 {
            throw .libraryNotFound(plugin: name, path: libraryPath)
        }
        _ = dlerror()
        guard let library = dlopen(libraryPath, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown error"
            if !libraryPath.contains("/") && reason.contains("No such file") {
                throw .libraryNotFound(plugin: name, path: libraryPath)
            }
            throw .loadFailed(plugin: name, path: libraryPath, reason: reason)
        }
        var keep = false
        defer { if !keep { dlclose(library) } }

        guard let symbol = dlsym(library, Self.entrySymbol) else {
            throw .missingSymbol(plugin: name, path: libraryPath)
        }
        typealias Entry = @convention(c) (UInt32) -> UnsafePointer<dmanoel_vfs_plugin_ops>?
        let entry = unsafeBitCast(symbol, to: Entry.self)
        let serverVersion = Self.abiVersion
        guard let table = entry(serverVersion) else { throw .refused(plugin: name, serverVersion: serverVersion) }
        guard table.pointee.abi_version == serverVersion else {
            throw .abiMismatch(plugin: name, pluginVersion: table.pointee.abi_version, serverVersion: serverVersion)
        }
        // Members past the plugin's `size` count as NULL (an older header); members past ours are
        // ignored (a newer header of the same ABI version).
        let declared = Int(table.pointee.size)
        let required = MemoryLayout<dmanoel_vfs_plugin_ops>.offset(of: \dmanoel_vfs_plugin_ops.getxattr)!
        guard declared >= required else {
            throw .badTable(plugin: name, reason: "size \(declared) bytes, ABI version \(serverVersion) needs at least \(required)")
        }
        var ops = dmanoel_vfs_plugin_ops()
        withUnsafeMutableBytes(of: &ops) { destination in
            destination.copyMemory(from: UnsafeRawBufferPointer(start: table, count: min(declared, destination.count)))
        }
        let missing = Self.missingRequired(ops)
        guard missing.isEmpty else {
            throw .badTable(plugin: name, reason: "required operation\(missing.count > 1 ? "s" : "") \(missing.joined(separator: ", ")) missing")
        }
        pluginName = ops.name.map { String(cString: $0) } ?? name

        var message = [CChar](repeating: 0, count: 1024)
        let instance: UnsafeMutableRawPointer? = message.withUnsafeMutableBufferPointer { buffer in
            if let configPath {
                return configPath.withCString { ops.`init`!($0, buffer.baseAddress, buffer.count - 1) }
            }
            return ops.`init`!(nil, buffer.baseAddress, buffer.count - 1)
        }
        guard let instance else {
            let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw .initFailed(plugin: name, message: text.isEmpty ? "no reason given" : text)
        }
        var root = dmanoel_vfs_handle()
        let rc = ops.root_handle!(instance, &root)
        guard rc == 0 else {
            ops.fini!(instance)
            throw .initFailed(plugin: name, message: "root_handle: \(Self.error(rc))")
        }
        guard root.len >= 1, Int(root.len) <= Self.maxHandleLength else {
            ops.fini!(instance)
            throw .handleTooLarge(plugin: name, length: Int(root.len))
        }
        keep = true
        self.library = library
        self.root = root
        plugin = Plugin(ops: ops, instance: instance)
        var hasher = Hasher()
        hasher.combine(name)
        fsid = UInt64(truncatingIfNeeded: hasher.finalize())
        super.init(moduleName: name)
    }

    deinit {
        if !closed.exchange(true, ordering: .acquiringAndReleasing) {
            plugin.ops.fini!(plugin.instance)
        }
        dlclose(library)
    }

    private static func missingRequired(_ ops: dmanoel_vfs_plugin_ops) -> [String] {
        var missing: [String] = []
        if ops.`init` == nil { missing.append("init") }
        if ops.fini == nil { missing.append("fini") }
        if ops.root_handle == nil { missing.append("root_handle") }
        if ops.getattr == nil { missing.append("getattr") }
        if ops.lookup == nil { missing.append("lookup") }
        if ops.setattr == nil { missing.append("setattr") }
        if ops.create == nil { missing.append("create") }
        if ops.read == nil { missing.append("read") }
        if ops.write == nil { missing.append("write") }
        if ops.commit == nil { missing.append("commit") }
        if ops.readdir == nil { missing.append("readdir") }
        if ops.readlink == nil { missing.append("readlink") }
        if ops.link == nil { missing.append("link") }
        if ops.remove == nil { missing.append("remove") }
        if ops.rmdir == nil { missing.append("rmdir") }
        if ops.rename == nil { missing.append("rename") }
        if ops.statfs == nil { missing.append("statfs") }
        return missing
    }

    // MARK: Plumbing

    /// The table and instance, handed to delegation threads.
    private struct Plugin: @unchecked Sendable {
        let ops: dmanoel_vfs_plugin_ops
        let instance: UnsafeMutableRawPointer
    }

    /// A pointer that stays valid while the caller awaits the call that uses it.
    private struct Borrowed<T>: @unchecked Sendable {
        let value: T
    }

    /// Runs `work` with the plugin on a delegation thread.
    @inline(__always)
    private func call<T: Sendable>(_ work: @escaping @Sendable (Plugin) -> Result<T, VFSError>) async throws(VFSError) -> T {
        if closed.load(ordering: .acquiring) { throw .stale }
        let plugin = self.plugin
        return try await delegation.run { work(plugin) }.get()
    }

    /// Maps a plugin return code (0 or a negative errno / DMANOEL_VFS_ERR_*) to a VFS error.
    static func error(_ rc: Int32) -> VFSError {
        guard rc < 0 else { return .io }
        switch -rc {
        case 10001: return .notSync
        case 10002: return .badCookie
        case 10003: return .badHandle
        default: return VFSError(errno: -rc)
        }
    }

    @inline(__always)
    private static func check(_ rc: Int32) -> VFSError? { rc == 0 ? nil : error(rc) }

    private func cHandle(_ handle: FileHandle) throws(VFSError) -> dmanoel_vfs_handle {
        let count = handle.bodyCount
        guard count >= 1, count <= Self.maxHandleLength else { throw .badHandle }
        var c = dmanoel_vfs_handle()
        c.len = UInt32(count)
        withUnsafeMutableBytes(of: &c.data) { destination in
            handle.withBody { destination.copyMemory(from: $0) }
        }
        return c
    }

    private func fileHandle(_ c: dmanoel_vfs_handle, mount: UInt16) throws(VFSError) -> FileHandle {
        let count = Int(c.len)
        guard count >= 1, count <= Self.maxHandleLength else { throw .io }
        let handle = withUnsafeBytes(of: c.data) { FileHandle(mount: mount, body: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        guard let handle else { throw .io }
        return handle
    }

    private func attributes(_ a: dmanoel_vfs_attr, mask: AttributeMask? = nil) -> Attributes {
        Self.attributes(a, fsid: fsid, mask: mask)
    }

    static func attributes(_ a: dmanoel_vfs_attr, fsid: UInt64, mask: AttributeMask? = nil) -> Attributes {
        var r = Attributes()
        r.valid = AttributeMask(rawValue: a.valid).intersection(.all)
        if a.type >= 1 && a.type <= 7, let type = FileType(rawValue: UInt8(a.type)) {
            r.type = type
        } else {
            r.valid.remove(.type)
        }
        r.mode = a.mode & 0o7777
        r.nlink = a.nlink
        r.uid = a.uid
        r.gid = a.gid
        r.size = a.size
        r.spaceUsed = a.space_used
        if r.valid.contains(.fsid) {
            r.fsid = a.fsid
        } else {
            r.fsid = fsid
            r.valid.insert(.fsid)
        }
        r.fileid = a.fileid
        r.atime = time(a.atime)
        r.mtime = time(a.mtime)
        r.ctime = time(a.ctime)
        r.birthTime = time(a.birthtime)
        r.change = a.change
        r.rdevMajor = a.rdev_major
        r.rdevMinor = a.rdev_minor
        if let mask { r.valid.formIntersection(mask) }
        return r
    }

    private func change(_ w: dmanoel_vfs_wcc) -> DirectoryChange {
        DirectoryChange(before: attributes(w.before), after: attributes(w.after))
    }

    @inline(__always)
    static func time(_ t: dmanoel_vfs_time) -> Timespec {
        Timespec(seconds: t.sec, nanoseconds: t.nsec)
    }

    @inline(__always)
    static func cTime(_ t: Timespec) -> dmanoel_vfs_time {
        dmanoel_vfs_time(sec: t.seconds, nsec: t.nanoseconds, reserved: 0)
    }

    // setattr bits (dmanoel_vfs_plugin.h)
    private enum Set {
        static let mode: UInt32 = 1 << 0
        static let uid: UInt32 = 1 << 1
        static let gid: UInt32 = 1 << 2
        static let size: UInt32 = 1 << 3
        static let atime: UInt32 = 1 << 4
        static let atimeNow: UInt32 = 1 << 5
        static let mtime: UInt32 = 1 << 6
        static let mtimeNow: UInt32 = 1 << 7
    }

    static func cSetattr(_ s: SetAttributes) -> dmanoel_vfs_setattr {
        var c = dmanoel_vfs_setattr()
        if let mode = s.mode { c.set |= Set.mode; c.mode = mode & 0o7777 }
        if let uid = s.uid { c.set |= Set.uid; c.uid = uid }
        if let gid = s.gid { c.set |= Set.gid; c.gid = gid }
        if let size = s.size { c.set |= Set.size; c.size = size }
        switch s.atime {
        case .unchanged: break
        case .serverTime: c.set |= Set.atimeNow
        case let .value(t): c.set |= Set.atime; c.atime = cTime(t)
        }
        switch s.mtime {
        case .unchanged: break
        case .serverTime: c.set |= Set.mtimeNow
        case let .value(t): c.set |= Set.mtime; c.mtime = cTime(t)
        }
        return c
    }

    /// Runs `body` with the C form of `credentials` (nil for calls the server makes itself).
    @inline(__always)
    static func withCred<R>(_ credentials: Credentials?, _ body: (UnsafePointer<dmanoel_vfs_cred>?) -> R) -> R {
        guard let credentials else { return body(nil) }
        return credentials.groups.withUnsafeBufferPointer { groups in
            let cred = dmanoel_vfs_cred(uid: credentials.uid, gid: credentials.gid, ngroups: UInt32(groups.count),
                                        reserved: 0, groups: groups.baseAddress)
            return withUnsafePointer(to: cred) { body($0) }
        }
    }

    // MARK: Operations

    public override var rootHandle: FileHandle {
        // The root was validated at load time, so this cannot fail.
        try! fileHandle(root, mount: mountID)
    }

    public override func getattr(_ handle: FileHandle, mask: AttributeMask) async throws(VFSError) -> Attributes {
        let h = try cHandle(handle)
        let a = try await call { p -> Result<dmanoel_vfs_attr, VFSError> in
            var h = h
            var out = dmanoel_vfs_attr()
            if let e = Self.check(p.ops.getattr!(p.instance, nil, &h, mask.rawValue, &out)) { return .failure(e) }
            return .success(out)
        }
        return attributes(a, mask: mask)
    }

    public override func lookup(_ directory: FileHandle, name: String, mask: AttributeMask, credentials: Credentials) async throws(VFSError) -> (FileHandle, Attributes) {
        if name.utf8.count > NameRules.maxNameLength { throw .nameTooLong }
        let d = try cHandle(directory)
        let (h, a) = try await call { p -> Result<(dmanoel_vfs_handle, dmanoel_vfs_attr), VFSError> in
            var d = d
            var out = dmanoel_vfs_handle()
            var attr = dmanoel_vfs_attr()
            let rc = Self.withCred(credentials) { cred in
                name.withCString { p.ops.lookup!(p.instance, cred, &d, $0, mask.rawValue, &out, &attr) }
            }
            if let e = Self.check(rc) { return .failure(e) }
            return .success((out, attr))
        }
        return (try fileHandle(h, mount: mountID), attributes(a, mask: mask))
    }

    public override func setattr(_ handle: FileHandle, _ changes: SetAttributes, guardCtime: Timespec?, credentials: Credentials) async throws(VFSError) -> (before: Attributes, after: Attributes) {
        let h = try cHandle(handle)
        let c = Self.cSetattr(changes)
        let guardTime = guardCtime.map(Self.cTime)
        let (before, after) = try await call { p -> Result<(dmanoel_vfs_attr, dmanoel_vfs_attr), VFSError> in
            var h = h
            var c = c
            var before = dmanoel_vfs_attr()
            var after = dmanoel_vfs_attr()
            let rc = Self.withCred(credentials) { cred in
                if var g = guardTime {
                    return p.ops.setattr!(p.instance, cred, &h, &c, &g, &before, &after)
                }
                return p.ops.setattr!(p.instance, cred, &h, &c, nil, &before, &after)
            }
            if let e = Self.check(rc) { return .failure(e) }
            return .success((before, after))
        }
        return (attributes(before), attributes(after))
    }

    public override func create(in directory: FileHandle, name: String, kind: CreateKind, mode: CreateMode, attributes initial: SetAttributes, credentials: Credentials) async throws(VFSError) -> CreateResult {
        try NameRules.validateEntryName(name)
        let d = try cHandle(directory)
        var args = dmanoel_vfs_create()
        var target: String? = nil
        switch kind {
        case .regular: args.type = 1
        case .directory: args.type = 2
        case let .symlink(t):
            args.type = 3
            target = t
        case let .device(type, major, minor):
            guard type == .blockDevice || type == .characterDevice else { throw .invalid }
            args.type = UInt32(type.rawValue)
            args.rdev_major = major
            args.rdev_minor = minor
        case .fifo: args.type = 6
        case .socket: args.type = 7
        }
        switch mode {
        case .unchecked: args.how = 0
        case .guarded: args.how = 1
        case let .exclusive(verifier):
            args.how = 2
            args.verifier = verifier
        }
        args.attr = Self.cSetattr(initial)
        let fixed = Borrowed(value: args)   // plain data; symlink_target is set on the delegation thread
        let symlinkTarget = target
        let (h, a, w, created) = try await call { p -> Result<(dmanoel_vfs_handle, dmanoel_vfs_attr, dmanoel_vfs_wcc, Int32), VFSError> in
            var d = d
            var args = fixed.value
            var out = dmanoel_vfs_handle()
            var attr = dmanoel_vfs_attr()
            var wcc = dmanoel_vfs_wcc()
            var created: Int32 = 0
            let rc = Self.withCred(credentials) { cred in
                name.withCString { cName in
                    if let symlinkTarget {
                        return symlinkTarget.withCString { cTarget in
                            args.symlink_target = cTarget
                            return p.ops.create!(p.instance, cred, &d, cName, &args, &out, &attr, &wcc, &created)
                        }
                    }
                    return p.ops.create!(p.instance, cred, &d, cName, &args, &out, &attr, &wcc, &created)
                }
            }
            if let e = Self.check(rc) { return .failure(e) }
            return .success((out, attr, wcc, created))
        }
        return CreateResult(handle: try fileHandle(h, mount: mountID), attributes: attributes(a),
                            directory: change(w), created: created != 0)
    }

    public override func read(_ handle: FileHandle, offset: UInt64, count: Int, credentials: Credentials) async throws(VFSError) -> ReadResult {
        let h = try cHandle(handle)
        let wanted = max(0, min(count, Self.maxReadSize))
        let block = wanted > 0 ? HeapBlock(capacity: wanted) : ZeroBlock.shared
        let (got, eof, a) = try await call { p -> Result<(Int, Bool, dmanoel_vfs_attr), VFSError> in
            var h = h
            var got = 0
            var eof: Int32 = 0
            var after = dmanoel_vfs_attr()
            let rc = Self.withCred(credentials) { cred in
                p.ops.read!(p.instance, cred, &h, offset, block.base, wanted, &got, &eof, &after)
            }
            if let e = Self.check(rc) { return .failure(e) }
            guard got <= wanted else { return .failure(.io) }
            return .success((got, eof != 0, after))
        }
        let segments = got > 0 ? [DataSegment(bytes: UnsafeRawBufferPointer(start: block.base, count: got), owner: block)] : []
        return ReadResult(segments: segments, count: got, eof: eof, attributes: attributes(a))
    }

    public override func write(_ handle: FileHandle, offset: UInt64, data: UnsafeRawBufferPointer, stability: WriteStability, credentials: Credentials) async throws(VFSError) -> WriteResult {
        let h = try cHandle(handle)
        let bytes = Borrowed(value: data)
        let (written, done, before, after) = try await call { p -> Result<(Int, UInt32, dmanoel_vfs_attr, dmanoel_vfs_attr), VFSError> in
            var h = h
            var written = 0
            var done: UInt32 = 0
            var before = dmanoel_vfs_attr()
            var after = dmanoel_vfs_attr()
            let rc = Self.withCred(credentials) { cred in
                p.ops.write!(p.instance, cred, &h, offset, bytes.value.baseAddress, bytes.value.count,
                             UInt32(stability.rawValue), &written, &done, &before, &after)
            }
            if let e = Self.check(rc) { return .failure(e) }
            return .success((written, done, before, after))
        }
        let achieved = max(stability, WriteStability(rawValue: Int(min(done, 2))) ?? .unstable)
        return WriteResult(count: min(written, data.count), stability: achieved, before: attributes(before), after: attributes(after))
    }

    public override func commit(_ handle: FileHandle, offset: UInt64, count: UInt64) async throws(VFSError) -> Attributes {
        let h = try cHandle(handle)
        let a = try await call { p -> Result<dmanoel_vfs_attr, VFSError> in
            var h = h
            var after = dmanoel_vfs_attr()
            if let e = Self.check(p.ops.commit!(p.instance, nil, &h, offset, count, &after)) { return .failure(e) }
            return .success(after)
        }
        return attributes(a)
    }

    /// Collects readdir entries from the plugin's callback.
    private final class Listing: @unchecked Sendable {
        var entries: [DirectoryEntry] = []
        var failed = false
        let mount: UInt16
        let fsid: UInt64
        let mask: AttributeMask

        init(mount: UInt16, fsid: UInt64, mask: AttributeMask, capacity: Int) {
            self.mount = mount
            self.fsid = fsid
            self.mask = mask
            entries.reserveCapacity(capacity)
        }
    }

    private static let fill: dmanoel_vfs_filldir_fn = { context, entry in
        guard let context, let entry else { return 1 }
        let listing = Unmanaged<Listing>.fromOpaque(context).takeUnretainedValue()
        let e = entry.pointee
        guard let cName = e.name, let type = FileType(rawValue: UInt8(truncatingIfNeeded: e.type)), e.type <= 7 else {
            listing.failed = true
            return 1
        }
        let name = String(decoding: UnsafeRawBufferPointer(start: cName, count: Int(e.name_len)), as: UTF8.self)
        var handle: FileHandle? = nil
        var attributes: Attributes? = nil
        if !listing.mask.isEmpty {
            guard let h = e.handle?.pointee, h.len >= 1, Int(h.len) <= PluginFS.maxHandleLength, let a = e.attr?.pointee else {
                listing.failed = true
                return 1
            }
            let count = Int(h.len)
            handle = withUnsafeBytes(of: h.data) { FileHandle(mount: listing.mount, body: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            attributes = PluginFS.attributes(a, fsid: listing.fsid, mask: listing.mask)
        }
        listing.entries.append(DirectoryEntry(name: name, fileid: e.fileid, cookie: e.cookie, type: type,
                                              attributes: attributes, handle: handle))
        return 0
    }

    public override func readdir(_ directory: FileHandle, cookie: UInt64, verifier: UInt64, maxEntries: Int, mask: AttributeMask, credentials: Credentials) async throws(VFSError) -> ReadDirResult {
        let d = try cHandle(directory)
        let limit = UInt32(clamping: max(0, maxEntries))
        let listing = Listing(mount: mountID, fsid: fsid, mask: mask, capacity: Int(min(limit, 1024)))
        let (newVerifier, eof, a) = try await call { p -> Result<(UInt64, Bool, dmanoel_vfs_attr), VFSError> in
            var d = d
            var verifierOut: UInt64 = 0
            var eof: Int32 = 0
            var attr = dmanoel_vfs_attr()
            let context = Unmanaged.passUnretained(listing).toOpaque()
            let rc = Self.withCred(credentials) { cred in
                p.ops.readdir!(p.instance, cred, &d, cookie, verifier, limit, mask.rawValue, Self.fill, context,
                               &verifierOut, &eof, &attr)
            }
            if let e = Self.check(rc) { return .failure(e) }
            if listing.failed { return .failure(.io) }
            return .success((verifierOut, eof != 0, attr))
        }
        return ReadDirResult(entries: listing.entries, verifier: newVerifier, eof: eof, directory: attributes(a))
    }

    public override func readlink(_ handle: FileHandle, credentials: Credentials) async throws(VFSError) -> String {
        let h = try cHandle(handle)
        return try await call { p -> Result<String, VFSError> in
            var h = h
            return Self.growingRead(limit: 1 << 20) { buffer, capacity, length in
                Self.withCred(credentials) { cred in
                    p.ops.readlink!(p.instance, cred, &h, buffer.assumingMemoryBound(to: CChar.self), capacity, &length)
                }
            }.map { String(decoding: $0, as: UTF8.self) }
        }
    }

    public override func link(_ handle: FileHandle, into directory: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> (Attributes, DirectoryChange) {
        try NameRules.validateEntryName(name)
        let h = try cHandle(handle)
        let d = try cHandle(directory)
        let (a, w) = try await call { p -> Result<(dmanoel_vfs_attr, dmanoel_vfs_wcc), VFSError> in
            var h = h
            var d = d
            var after = dmanoel_vfs_attr()
            var wcc = dmanoel_vfs_wcc()
            let rc = Self.withCred(credentials) { cred in
                name.withCString { p.ops.link!(p.instance, cred, &h, &d, $0, &after, &wcc) }
            }
            if let e = Self.check(rc) { return .failure(e) }
            return .success((after, wcc))
        }
        return (attributes(a), change(w))
    }

    public override func remove(in directory: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> DirectoryChange {
        try await removeEntry(in: directory, name: name, credentials: credentials, directoryEntry: false)
    }

    public override func rmdir(in directory: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> DirectoryChange {
        try await removeEntry(in: directory, name: name, credentials: credentials, directoryEntry: true)
    }

    /// REMOVE and RMDIR: the same call shape, through the table's `rmdir` or `remove` entry.
    private func removeEntry(in directory: FileHandle, name: String, credentials: Credentials, directoryEntry: Bool) async throws(VFSError) -> DirectoryChange {
        try NameRules.validateEntryName(name)
        let d = try cHandle(directory)
        let w = try await call { p -> Result<dmanoel_vfs_wcc, VFSError> in
            var d = d
            var wcc = dmanoel_vfs_wcc()
            let op = directoryEntry ? p.ops.rmdir! : p.ops.remove!
            let rc = Self.withCred(credentials) { cred in
                name.withCString { op(p.instance, cred, &d, $0, &wcc) }
            }
            if let e = Self.check(rc) { return .failure(e) }
            return .success(wcc)
        }
        return change(w)
    }

    public override func rename(from source: FileHandle, name: String, to target: FileHandle, newName: String, credentials: Credentials) async throws(VFSError) -> (from: DirectoryChange, to: DirectoryChange) {
        try NameRules.validateEntryName(name)
        try NameRules.validateEntryName(newName)
        let s = try cHandle(source)
        let t = try cHandle(target)
        let (from, to) = try await call { p -> Result<(dmanoel_vfs_wcc, dmanoel_vfs_wcc), VFSError> in
            var s = s
            var t = t
            var from = dmanoel_vfs_wcc()
            var to = dmanoel_vfs_wcc()
            let rc = Self.withCred(credentials) { cred in
                name.withCString { cName in
                    newName.withCString { p.ops.rename!(p.instance, cred, &s, cName, &t, $0, &from, &to) }
                }
            }
            if let e = Self.check(rc) { return .failure(e) }
            return .success((from, to))
        }
        return (change(from), change(to))
    }

    public override func statfs(_ handle: FileHandle) async throws(VFSError) -> FileSystemStats {
        let h = try cHandle(handle)
        let s = try await call { p -> Result<dmanoel_vfs_statfs, VFSError> in
            var h = h
            var out = dmanoel_vfs_statfs()
            if let e = Self.check(p.ops.statfs!(p.instance, nil, &h, &out)) { return .failure(e) }
            return .success(out)
        }
        return FileSystemStats(totalBytes: s.total_bytes, freeBytes: s.free_bytes, availableBytes: s.available_bytes,
                               totalFiles: s.total_files, freeFiles: s.free_files, availableFiles: s.available_files,
                               maxNameLength: s.max_name_length == 0 ? UInt32(NameRules.maxNameLength) : s.max_name_length)
    }

    /// Calls `fill(buffer, capacity, &length)` (a plugin op that returns -ERANGE with the length
    /// it needs when the buffer is too small), growing the buffer up to `limit` bytes; returns
    /// the bytes the op wrote.
    static func growingRead(limit: Int, _ fill: (UnsafeMutableRawPointer, Int, inout Int) -> Int32) -> Result<[UInt8], VFSError> {
        var capacity = 4096
        while true {
            var length = 0
            var buffer = [UInt8](repeating: 0, count: capacity)
            let rc = buffer.withUnsafeMutableBytes { fill($0.baseAddress!, capacity, &length) }
            if rc == -ERANGE && length > capacity && length <= limit {
                capacity = length
                continue
            }
            if let error = check(rc) { return .failure(error) }
            guard length <= capacity else { return .failure(.io) }
            buffer.removeSubrange(length...)
            return .success(buffer)
        }
    }

    // MARK: Optional operations (NULL in the table: notSupported)

    public override func getxattr(_ handle: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> [UInt8] {
        guard plugin.ops.getxattr != nil else { throw .notSupported }
        let h = try cHandle(handle)
        return try await call { p -> Result<[UInt8], VFSError> in
            var h = h
            return Self.growingRead(limit: 16 << 20) { buffer, capacity, length in
                Self.withCred(credentials) { cred in
                    name.withCString { cName in p.ops.getxattr!(p.instance, cred, &h, cName, buffer, capacity, &length) }
                }
            }
        }
    }

    public override func setxattr(_ handle: FileHandle, name: String, value: [UInt8], mode: XattrSetMode, credentials: Credentials) async throws(VFSError) {
        guard plugin.ops.setxattr != nil else { throw .notSupported }
        let h = try cHandle(handle)
        let flags: UInt32 = switch mode {
        case .either: 0
        case .create: 1
        case .replace: 2
        }
        try await call { p -> Result<Void, VFSError> in
            var h = h
            let rc = Self.withCred(credentials) { cred in
                name.withCString { cName in
                    value.withUnsafeBytes { p.ops.setxattr!(p.instance, cred, &h, cName, $0.baseAddress, $0.count, flags) }
                }
            }
            if let e = Self.check(rc) { return .failure(e) }
            return .success(())
        }
    }

    public override func listxattr(_ handle: FileHandle, credentials: Credentials) async throws(VFSError) -> [String] {
        guard plugin.ops.listxattr != nil else { throw .notSupported }
        let h = try cHandle(handle)
        return try await call { p -> Result<[String], VFSError> in
            var h = h
            return Self.growingRead(limit: 16 << 20) { buffer, capacity, length in
                Self.withCred(credentials) { cred in
                    p.ops.listxattr!(p.instance, cred, &h, buffer.assumingMemoryBound(to: CChar.self), capacity, &length)
                }
            }.map { bytes in
                bytes.split(separator: 0, omittingEmptySubsequences: true).map { String(decoding: $0, as: UTF8.self) }
            }
        }
    }

    public override func removexattr(_ handle: FileHandle, name: String, credentials: Credentials) async throws(VFSError) {
        guard plugin.ops.removexattr != nil else { throw .notSupported }
        let h = try cHandle(handle)
        try await call { p -> Result<Void, VFSError> in
            var h = h
            let rc = Self.withCred(credentials) { cred in
                name.withCString { p.ops.removexattr!(p.instance, cred, &h, $0) }
            }
            if let e = Self.check(rc) { return .failure(e) }
            return .success(())
        }
    }

    public override func allocate(_ handle: FileHandle, offset: UInt64, length: UInt64, credentials: Credentials) async throws(VFSError) {
        guard plugin.ops.allocate != nil else { throw .notSupported }
        let h = try cHandle(handle)
        try await call { p -> Result<Void, VFSError> in
            var h = h
            let rc = Self.withCred(credentials) { p.ops.allocate!(p.instance, $0, &h, offset, length) }
            if let e = Self.check(rc) { return .failure(e) }
            return .success(())
        }
    }

    public override func deallocate(_ handle: FileHandle, offset: UInt64, length: UInt64, credentials: Credentials) async throws(VFSError) {
        guard plugin.ops.deallocate != nil else { throw .notSupported }
        let h = try cHandle(handle)
        try await call { p -> Result<Void, VFSError> in
            var h = h
            let rc = Self.withCred(credentials) { p.ops.deallocate!(p.instance, $0, &h, offset, length) }
            if let e = Self.check(rc) { return .failure(e) }
            return .success(())
        }
    }

    public override func seek(_ handle: FileHandle, offset: UInt64, target: SeekTarget) async throws(VFSError) -> (offset: UInt64, eof: Bool) {
        guard plugin.ops.seek != nil else { throw .notSupported }
        let h = try cHandle(handle)
        let what: UInt32 = target == .data ? 0 : 1
        return try await call { p -> Result<(offset: UInt64, eof: Bool), VFSError> in
            var h = h
            var result: UInt64 = 0
            var eof: Int32 = 0
            if let e = Self.check(p.ops.seek!(p.instance, nil, &h, offset, what, &result, &eof)) { return .failure(e) }
            return .success((result, eof != 0))
        }
    }

    /// Copies through the server (read, then write), 1 MiB at a time: the ABI has no copy op.
    public override func copyRange(from source: FileHandle, offset sourceOffset: UInt64, to target: FileHandle, offset targetOffset: UInt64, count: UInt64, credentials: Credentials) async throws(VFSError) -> UInt64 {
        var copied: UInt64 = 0
        while copied < count {
            let chunk = Int(min(count - copied, 1 << 20))
            let data = try await read(source, offset: sourceOffset + copied, count: chunk, credentials: credentials)
            if data.count == 0 { break }
            for segment in data.segments {
                var done = 0
                while done < segment.bytes.count {
                    let part = UnsafeRawBufferPointer(rebasing: segment.bytes[done...])
                    let written = try await write(target, offset: targetOffset + copied, data: part, stability: .unstable,
                                                  credentials: credentials)
                    guard written.count > 0 else { throw .io }
                    done += written.count
                    copied += UInt64(written.count)
                }
            }
            if data.eof || data.count < chunk { break }
        }
        return copied
    }

    /// Releases the plugin instance (its `fini`); later calls fail with `stale`.
    public override func shutdown() async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let plugin = self.plugin
        await delegation.run { plugin.ops.fini!(plugin.instance) }
    }
}
