import Runtime
import Synchronization

/// A backend mounted at /NAME in the server's namespace.
public struct Mount: Sendable {
    public let name: String
    public let id: UInt16
    public let backend: FileSystemBackend
    public let readOnly: Bool
    /// How the VFS caches this mount's names and attributes; nil: not cached.
    public let cachePolicy: MetadataCachePolicy?
}

/// The server's one namespace: mounts at /NAME, routing by the handle's mount id, read-only
/// enforcement, permission checks for backends that do not check themselves, and the name
/// and attribute caches every protocol shares. Protocols call this, never a backend directly.
///
/// The mount table is changed only when mounts are added; calls that reach a backend read it
/// under its mutex. Cache hits do not touch it: they find the mount's cache policy in a
/// per-mount-id array.
///
/// **Caches.** For mounts whose backend asks for it (`FileSystemBackend.metadataCachePolicy`:
/// linux and io_uring; not memfs, which is memory already), lookups (positive and negative)
/// and attributes are answered from `MetadataCache` when it holds them, without touching the
/// backend or the mount table. Every mutation made through this type stores what it changed
/// (a directory's after-attributes, a new name, an object's new attributes) or drops it, so
/// a change made on one loop is seen by the next call on any other; see `MetadataCache` for
/// why a concurrent read can never put back an older value. Changes made behind the server's
/// back are seen once entries expire (the mount's TTL, 1 s by default). A cached lookup
/// checks search permission on the directory from its cached mode bits (then the backend,
/// when those deny); POSIX ACLs that deny what the mode bits allow are enforced on misses only.
public final class VirtualFileSystem: Sendable {
    private let table = Mutex<[Mount?]>([nil])
    let cache: MetadataCache
    /// Opens, share reservations, byte-range locks and leases of every file, for the stateful
    /// protocols (NFSv4, SMB): one table so each sees the other's state.
    public let fileStates = FileStateTable()

    /// Slots in each of the name and attribute caches unless the initializer says otherwise
    /// (a slot is about 230 bytes; pages are only touched as they fill).
    public static let defaultCacheEntries = 32768

    public init(nameCacheEntries: Int = VirtualFileSystem.defaultCacheEntries,
                attributeCacheEntries: Int = VirtualFileSystem.defaultCacheEntries) {
        cache = MetadataCache(nameCapacity: nameCacheEntries, attributeCapacity: attributeCacheEntries)
    }

    /// Mounts `backend` at /`name`; the mount gets the next id (ids start at 1).
    /// `cacheTTLNanoseconds` replaces the TTL of the backend's cache policy (0: do not cache
    /// this mount); it changes nothing for a backend that is not cached.
    @discardableResult
    public func mount(_ name: String, backend: FileSystemBackend, readOnly: Bool = false, cacheTTLNanoseconds: UInt64? = nil) throws(VFSError) -> Mount {
        try NameRules.validateEntryName(name)
        var policy = backend.metadataCachePolicy
        if let ttl = cacheTTLNanoseconds { policy?.ttlNanoseconds = ttl }
        if policy?.ttlNanoseconds == 0 { policy = nil }
        let mount = try table.withLock { (mounts: inout [Mount?]) throws(VFSError) -> Mount in
            if mounts.contains(where: { $0?.name == name }) { throw VFSError.exists }
            guard mounts.count < Int(UInt16.max) else { throw VFSError.noSpace }
            let mount = Mount(name: name, id: UInt16(mounts.count), backend: backend, readOnly: readOnly,
                              cachePolicy: Int(mounts.count) < MetadataCache.maxMounts ? policy : nil)
            backend.assignMountID(mount.id)
            mounts.append(mount)
            return mount
        }
        cache.setPolicy(mount: mount.id, mount.cachePolicy)
        return mount
    }

    public var mounts: [Mount] { table.withLock { $0.compactMap { $0 } } }

    /// Tells every backend the server stops (they flush what they hold).
    public func shutdown() async {
        for mount in mounts { await mount.backend.shutdown() }
    }

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

    /// Hits, misses and sizes of the name and attribute caches, per loop thread and merged
    /// (for the console and the admin API).
    public func cacheStatistics() -> MetadataCacheStatistics {
        cache.statistics()
    }

    /// Resolves an absolute namespace path such as "/memfs/dir/file" (exports, shares, buckets).
    public func resolve(_ path: String, credentials: Credentials = .root) async throws(VFSError) -> (FileHandle, Attributes) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard path.hasPrefix("/"), let first = parts.first, let mount = mount(named: first) else { throw .notFound }
        var handle = mount.backend.rootHandle
        var attributes = try await getattr(handle, mask: .all)
        for part in parts.dropFirst() {
            (handle, attributes) = try await lookup(handle, name: part, mask: .all, credentials: credentials)
        }
        return (handle, attributes)
    }

    // MARK: Operations

    public func getattr(_ handle: FileHandle, mask: AttributeMask) async throws(VFSError) -> Attributes {
        let ttl = cache.ttl(handle)
        if ttl == 0 { return try await mount(for: handle).backend.getattr(handle, mask: mask) }
        let now = monotonicNanoseconds()
        if let cached = cache.attributes(handle, covering: mask, now: now) {
            cache.counters.add(.getattrHits)
            return cached.masked(mask)
        }
        cache.counters.add(.getattrMisses)
        return try await fillAttributes(handle, mask: mask, ttl: ttl, now: now)
    }

    /// A getattr the cache could not answer: asks the backend (for the mount's fill mask when
    /// any attribute is wanted) and keeps the answer.
    private func fillAttributes(_ handle: FileHandle, mask: AttributeMask, ttl: UInt64, now: UInt64) async throws(VFSError) -> Attributes {
        let backend = try mount(for: handle).backend
        let wanted = mask.isEmpty ? mask : mask.union(cache.fillMask(handle))
        let attributes = try await backend.getattr(handle, mask: wanted)
        if !wanted.isEmpty {
            cache.storeAttributes(handle, attributes, answered: wanted, startedAt: now, expires: now &+ ttl)
        }
        return attributes.masked(mask)
    }

    public func lookup(_ directory: FileHandle, name: String, mask: AttributeMask, credentials: Credentials) async throws(VFSError) -> (FileHandle, Attributes) {
        if name.utf8.count > NameRules.maxNameLength { throw .nameTooLong }
        let ttl = cache.ttl(directory)
        if ttl != 0, let key = cache.key(directory, name) {
            let now = monotonicNanoseconds()
            switch cachedLookup(key, mask: mask, credentials: credentials, now: now) {
            case let .found(handle, attributes):
                cache.counters.add(.lookupHits)
                return (handle, attributes)
            case .absent:
                cache.counters.add(.negativeHits)
                throw .notFound
            case .unknown:
                cache.counters.add(.lookupMisses)
                return try await fillLookup(key, name: name, mask: mask, credentials: credentials, ttl: ttl, now: now)
            }
        }
        let backend = try mount(for: directory).backend
        try await checkDirectory(backend, directory, .execute, credentials)
        return try await backend.lookup(directory, name: name, mask: mask, credentials: credentials)
    }

    private enum CachedLookup {
        case found(FileHandle, Attributes)
        case absent
        case unknown
    }

    /// What a lookup needs for [.type, .mode, .uid, .gid] permission checks.
    private static let permissionMask: AttributeMask = [.type, .mode, .uid, .gid]

    /// A lookup answered from the caches: the directory's attributes (is it a directory, may
    /// the caller search it), the name, and the child's attributes when any are wanted. Any
    /// part missing (or a denial, which the backend then confirms) makes it `unknown`.
    @inline(__always)
    private func cachedLookup(_ key: NameKey, mask: AttributeMask, credentials: Credentials, now: UInt64) -> CachedLookup {
        guard let directory = cache.attributes(key.directory, covering: Self.permissionMask, now: now),
              directory.type == .directory,
              Permissions.allowed(.execute, attributes: directory, credentials: credentials) == .execute
        else { return .unknown }
        switch cache.name(key, now: now) {
        case .miss:
            return .unknown
        case .negative:
            return .absent
        case let .child(child):
            if mask.isEmpty { return .found(child, Attributes()) }
            guard let attributes = cache.attributes(child, covering: mask, now: now) else { return .unknown }
            return .found(child, attributes.masked(mask))
        }
    }

    /// A lookup the caches could not answer: the backend's answer, positive or negative, is
    /// kept, and so are the directory's attributes when they were not cached (so the next
    /// lookup in it can be checked without the backend).
    private func fillLookup(_ key: NameKey, name: String, mask: AttributeMask, credentials: Credentials, ttl: UInt64, now: UInt64) async throws(VFSError) -> (FileHandle, Attributes) {
        let directory = key.directory
        let backend = try mount(for: directory).backend
        if backend.checksPermissions, cache.attributes(directory, covering: Self.permissionMask, now: now) == nil {
            _ = try? await fillAttributes(directory, mask: Self.permissionMask, ttl: ttl, now: now)
        }
        try await checkDirectory(backend, directory, .execute, credentials)
        let wanted = mask.isEmpty ? mask : mask.union(cache.fillMask(directory))
        do throws(VFSError) {
            let (child, attributes) = try await backend.lookup(directory, name: name, mask: wanted, credentials: credentials)
            cache.storeName(key, child: child, startedAt: now, expires: now &+ ttl)
            if !wanted.isEmpty {
                cache.storeAttributes(child, attributes, answered: wanted, startedAt: now, expires: now &+ ttl)
            }
            return (child, attributes.masked(mask))
        } catch {
            if error == .notFound { cache.storeName(key, child: nil, startedAt: now, expires: now &+ ttl) }
            throw error
        }
    }

    /// What `credentials` may do to the object (NFSv3 ACCESS); never throws `accessDenied`.
    public func access(_ handle: FileHandle, wanted: AccessMask, credentials: Credentials) async throws(VFSError) -> AccessMask {
        let mount = try mount(for: handle)
        let attributes = try await getattr(handle, mask: Self.permissionMask)
        var granted = Permissions.allowed(wanted, attributes: attributes, credentials: credentials)
        if mount.readOnly { granted.remove(.write) }
        return granted
    }

    public func setattr(_ handle: FileHandle, _ changes: SetAttributes, guardCtime: Timespec? = nil, credentials: Credentials) async throws(VFSError) -> (before: Attributes, after: Attributes) {
        let backend = try writable(handle).backend
        if !backend.checksPermissions {
            let current = try await getattr(handle, mask: Self.permissionMask)
            try SetattrRules.check(changes, current: current, credentials: credentials)
        }
        let change = beginChange(handle)
        do throws(VFSError) {
            let result = try await backend.setattr(handle, changes, guardCtime: guardCtime, credentials: credentials)
            if let change {
                let end = monotonicNanoseconds()
                changed(change, handle, to: result.after, end: end)
            }
            return result
        } catch {
            if let change { dropAttributes(change, handle) }
            throw error
        }
    }

    public func create(in directory: FileHandle, name: String, kind: CreateKind, mode: CreateMode = .unchecked, attributes: SetAttributes = SetAttributes(), credentials: Credentials) async throws(VFSError) -> CreateResult {
        try NameRules.validateEntryName(name)
        let backend = try writable(directory).backend
        try await checkDirectory(backend, directory, [.write, .execute], credentials)
        let change = beginChange(directory)
        do throws(VFSError) {
            let result = try await backend.create(in: directory, name: name, kind: kind, mode: mode, attributes: attributes, credentials: credentials)
            if let change {
                let end = monotonicNanoseconds()
                changed(change, directory, to: result.directory.after, end: end)
                changed(change, name: name, in: directory, to: result.handle, end: end)
                changed(change, result.handle, to: result.attributes, end: end)
            }
            return result
        } catch {
            if let change {
                dropAttributes(change, directory)
                dropName(change, name, in: directory)
            }
            throw error
        }
    }

    public func read(_ handle: FileHandle, offset: UInt64, count: Int, credentials: Credentials) async throws(VFSError) -> ReadResult {
        let backend = try mount(for: handle).backend
        try await check(backend, handle, .read, credentials)
        return try await backend.read(handle, offset: offset, count: count, credentials: credentials)
    }

    public func write(_ handle: FileHandle, offset: UInt64, data: UnsafeRawBufferPointer, stability: WriteStability, credentials: Credentials) async throws(VFSError) -> WriteResult {
        let backend = try writable(handle).backend
        try await check(backend, handle, .write, credentials)
        let change = beginChange(handle)
        do throws(VFSError) {
            let result = try await backend.write(handle, offset: offset, data: data, stability: stability, credentials: credentials)
            if let change { changed(change, handle, to: result.after, end: monotonicNanoseconds()) }
            return result
        } catch {
            if let change { dropAttributes(change, handle) }
            throw error
        }
    }

    public func commit(_ handle: FileHandle, offset: UInt64 = 0, count: UInt64 = 0) async throws(VFSError) -> Attributes {
        let ttl = cache.ttl(handle)
        let now = ttl == 0 ? 0 : monotonicNanoseconds()
        let attributes = try await mount(for: handle).backend.commit(handle, offset: offset, count: count)
        if ttl != 0 {
            cache.storeAttributes(handle, attributes, answered: answered(by: attributes, handle), startedAt: now, expires: now &+ ttl)
        }
        return attributes
    }

    public func readdir(_ directory: FileHandle, cookie: UInt64 = 0, verifier: UInt64 = 0, maxEntries: Int, mask: AttributeMask = [], credentials: Credentials) async throws(VFSError) -> ReadDirResult {
        let backend = try mount(for: directory).backend
        try await checkDirectory(backend, directory, .read, credentials)
        let ttl = cache.ttl(directory)
        let now = ttl == 0 ? 0 : monotonicNanoseconds()
        let result = try await backend.readdir(directory, cookie: cookie, verifier: verifier, maxEntries: maxEntries, mask: mask, credentials: credentials)
        if ttl != 0 {
            // READDIRPLUS-style listings fill the caches for the lookups and getattrs that follow.
            let expires = now &+ ttl
            cache.storeAttributes(directory, result.directory, answered: answered(by: result.directory, directory), startedAt: now, expires: expires)
            if !mask.isEmpty {
                for entry in result.entries {
                    guard let handle = entry.handle, let key = cache.key(directory, entry.name) else { continue }
                    cache.storeName(key, child: handle, startedAt: now, expires: expires)
                    if let attributes = entry.attributes {
                        cache.storeAttributes(handle, attributes, answered: mask, startedAt: now, expires: expires)
                    }
                }
            }
        }
        return result
    }

    public func readlink(_ handle: FileHandle, credentials: Credentials) async throws(VFSError) -> String {
        try await mount(for: handle).backend.readlink(handle, credentials: credentials)
    }

    public func link(_ handle: FileHandle, into directory: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> (Attributes, DirectoryChange) {
        try NameRules.validateEntryName(name)
        let target = try writable(directory)
        guard try mount(for: handle).id == target.id else { throw .crossDevice }
        try await checkDirectory(target.backend, directory, [.write, .execute], credentials)
        let change = beginChange(directory)
        do throws(VFSError) {
            let (attributes, directoryChange) = try await target.backend.link(handle, into: directory, name: name, credentials: credentials)
            if let change {
                let end = monotonicNanoseconds()
                changed(change, handle, to: attributes, end: end)
                changed(change, directory, to: directoryChange.after, end: end)
                changed(change, name: name, in: directory, to: handle, end: end)
            }
            return (attributes, directoryChange)
        } catch {
            if let change {
                dropAttributes(change, handle)
                dropAttributes(change, directory)
                dropName(change, name, in: directory)
            }
            throw error
        }
    }

    public func remove(in directory: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> DirectoryChange {
        try NameRules.validateEntryName(name)
        let backend = try writable(directory).backend
        try await checkDirectory(backend, directory, [.write, .execute], credentials)
        return try await removeEntry(in: directory, name: name) { () async throws(VFSError) -> DirectoryChange in
            try await backend.remove(in: directory, name: name, credentials: credentials)
        }
    }

    public func rmdir(in directory: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> DirectoryChange {
        if name == "." { throw .invalid }
        if name == ".." { throw .notEmpty }
        try NameRules.validateEntryName(name)
        let backend = try writable(directory).backend
        try await checkDirectory(backend, directory, [.write, .execute], credentials)
        return try await removeEntry(in: directory, name: name) { () async throws(VFSError) -> DirectoryChange in
            try await backend.rmdir(in: directory, name: name, credentials: credentials)
        }
    }

    /// A remove or rmdir with its cache bookkeeping: the name becomes a negative entry, the
    /// directory gets its after-attributes, and the removed object's attributes (its link
    /// count changed), when the name cache knows which object it was, are dropped.
    private func removeEntry(in directory: FileHandle, name: String, _ body: () async throws(VFSError) -> DirectoryChange) async throws(VFSError) -> DirectoryChange {
        guard let change = beginChange(directory) else { return try await body() }
        let key = cache.key(directory, name)
        let victim = key.flatMap { cache.cachedChild($0) }
        do throws(VFSError) {
            let result = try await body()
            let end = monotonicNanoseconds()
            changed(change, directory, to: result.after, end: end)
            if let key { cache.storeName(key, child: nil, startedAt: change.start, expires: change.start &+ change.ttl, mutationEnd: end) }
            if let victim { cache.removeAttributes(victim, mutationEnd: end) }
            return result
        } catch {
            dropAttributes(change, directory)
            dropName(change, name, in: directory)
            if let victim { dropAttributes(change, victim) }
            throw error
        }
    }

    public func rename(from source: FileHandle, name: String, to target: FileHandle, newName: String, credentials: Credentials) async throws(VFSError) -> (from: DirectoryChange, to: DirectoryChange) {
        try NameRules.validateEntryName(name)
        try NameRules.validateEntryName(newName)
        let from = try writable(source)
        guard try writable(target).id == from.id else { throw .crossDevice }
        try await checkDirectory(from.backend, source, [.write, .execute], credentials)
        if source != target { try await checkDirectory(from.backend, target, [.write, .execute], credentials) }
        guard let change = beginChange(source) else {
            return try await from.backend.rename(from: source, name: name, to: target, newName: newName, credentials: credentials)
        }
        let oldKey = cache.key(source, name), newKey = cache.key(target, newName)
        let moved = oldKey.flatMap { cache.cachedChild($0) }
        let replaced = newKey.flatMap { cache.cachedChild($0) }
        do throws(VFSError) {
            let result = try await from.backend.rename(from: source, name: name, to: target, newName: newName, credentials: credentials)
            let end = monotonicNanoseconds()
            changed(change, source, to: result.from.after, end: end)
            if source != target { changed(change, target, to: result.to.after, end: end) }
            // The old name is dropped rather than made negative: renaming one hard link of a
            // file onto another succeeds and changes nothing.
            if let oldKey { cache.removeName(oldKey, mutationEnd: end) }
            if let newKey {
                if let moved {
                    cache.storeName(newKey, child: moved, startedAt: change.start, expires: change.start &+ change.ttl, mutationEnd: end)
                } else {
                    cache.removeName(newKey, mutationEnd: end)
                }
            }
            // Renaming changes the moved object's ctime and the replaced one's link count.
            if let moved { cache.removeAttributes(moved, mutationEnd: end) }
            if let replaced, replaced != moved { cache.removeAttributes(replaced, mutationEnd: end) }
            return result
        } catch {
            dropAttributes(change, source)
            dropAttributes(change, target)
            dropName(change, name, in: source)
            dropName(change, newName, in: target)
            if let moved { dropAttributes(change, moved) }
            if let replaced { dropAttributes(change, replaced) }
            throw error
        }
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
        // An xattr change moves the ctime and the change attribute.
        try await changingAttributes(of: handle) { () async throws(VFSError) in
            try await backend.setxattr(handle, name: name, value: value, mode: mode, credentials: credentials)
        }
    }

    public func listxattr(_ handle: FileHandle, credentials: Credentials) async throws(VFSError) -> [String] {
        let backend = try mount(for: handle).backend
        try await check(backend, handle, .read, credentials)
        return try await backend.listxattr(handle, credentials: credentials)
    }

    public func removexattr(_ handle: FileHandle, name: String, credentials: Credentials) async throws(VFSError) {
        let backend = try writable(handle).backend
        try await check(backend, handle, .write, credentials)
        try await changingAttributes(of: handle) { () async throws(VFSError) in
            try await backend.removexattr(handle, name: name, credentials: credentials)
        }
    }

    public func allocate(_ handle: FileHandle, offset: UInt64, length: UInt64, credentials: Credentials) async throws(VFSError) {
        let backend = try writable(handle).backend
        try await check(backend, handle, .write, credentials)
        try await changingAttributes(of: handle) { () async throws(VFSError) in
            try await backend.allocate(handle, offset: offset, length: length, credentials: credentials)
        }
    }

    public func deallocate(_ handle: FileHandle, offset: UInt64, length: UInt64, credentials: Credentials) async throws(VFSError) {
        let backend = try writable(handle).backend
        try await check(backend, handle, .write, credentials)
        try await changingAttributes(of: handle) { () async throws(VFSError) in
            try await backend.deallocate(handle, offset: offset, length: length, credentials: credentials)
        }
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
        return try await changingAttributes(of: target) { () async throws(VFSError) -> UInt64 in
            try await to.backend.copyRange(from: source, offset: sourceOffset, to: target, offset: targetOffset, count: count, credentials: credentials)
        }
    }

    /// Like `check`, for an object that must be a directory: `notDirectory` comes first, as in
    /// the kernel's path walk.
    @inline(__always)
    private func checkDirectory(_ backend: FileSystemBackend, _ handle: FileHandle, _ wanted: AccessMask, _ credentials: Credentials) async throws(VFSError) {
        guard !backend.checksPermissions else { return }
        let attributes = try await getattr(handle, mask: Self.permissionMask)
        guard attributes.type == .directory else { throw .notDirectory }
        try Permissions.check(wanted, attributes: attributes, credentials: credentials)
    }

    /// Mode-bit check for backends that do not check themselves.
    @inline(__always)
    private func check(_ backend: FileSystemBackend, _ handle: FileHandle, _ wanted: AccessMask, _ credentials: Credentials) async throws(VFSError) {
        guard !backend.checksPermissions else { return }
        let attributes = try await getattr(handle, mask: Self.permissionMask)
        try Permissions.check(wanted, attributes: attributes, credentials: credentials)
    }

    // MARK: Cache bookkeeping of mutations

    /// A mutation of a cached mount: when it started (before the backend call) and the TTL.
    private struct Change {
        let ttl: UInt64
        let start: UInt64
    }

    /// Starts the bookkeeping of a mutation of `handle`'s mount; nil when it is not cached.
    @inline(__always)
    private func beginChange(_ handle: FileHandle) -> Change? {
        let ttl = cache.ttl(handle)
        return ttl == 0 ? nil : Change(ttl: ttl, start: monotonicNanoseconds())
    }

    /// The mask attributes returned by a mutation answer: only what is valid, since nobody
    /// said what was asked (a missing birth time may be one the backend did not look up).
    @inline(__always)
    private func answered(by attributes: Attributes, _ handle: FileHandle) -> AttributeMask {
        attributes.valid
    }

    /// A mutation that ended at `end` left `handle` with `attributes`.
    @inline(__always)
    private func changed(_ change: Change, _ handle: FileHandle, to attributes: Attributes, end: UInt64) {
        cache.storeAttributes(handle, attributes, answered: answered(by: attributes, handle), startedAt: change.start,
                              expires: change.start &+ change.ttl, mutationEnd: end)
    }

    /// A mutation that ended at `end` made `name` in `directory` name `child`.
    @inline(__always)
    private func changed(_ change: Change, name: String, in directory: FileHandle, to child: FileHandle, end: UInt64) {
        guard let key = cache.key(directory, name) else { return }
        cache.storeName(key, child: child, startedAt: change.start, expires: change.start &+ change.ttl, mutationEnd: end)
    }

    /// A mutation that failed may have changed `handle` anyway: forget it.
    private func dropAttributes(_ change: Change, _ handle: FileHandle) {
        cache.removeAttributes(handle, mutationEnd: monotonicNanoseconds())
    }

    private func dropName(_ change: Change, _ name: String, in directory: FileHandle) {
        guard let key = cache.key(directory, name) else { return }
        cache.removeName(key, mutationEnd: monotonicNanoseconds())
    }

    /// Runs a mutation of `handle` whose result says nothing of its new attributes: they are
    /// dropped when it ends, successful or not.
    @inline(__always)
    private func changingAttributes<T>(of handle: FileHandle, _ body: () async throws(VFSError) -> T) async throws(VFSError) -> T {
        guard cache.ttl(handle) != 0 else { return try await body() }
        do throws(VFSError) {
            let result = try await body()
            cache.removeAttributes(handle, mutationEnd: monotonicNanoseconds())
            return result
        } catch {
            cache.removeAttributes(handle, mutationEnd: monotonicNanoseconds())
            throw error
        }
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
