import Glibc
import Synchronization
import VFS

/// The in-memory filesystem module. One instance per mount, shared by every loop thread.
///
/// All state sits behind one mutex per filesystem; no operation waits for anything while
/// holding it (no I/O, no await), so critical sections are short. Reads copy block references
/// out under the lock and the bytes are sent after it is released.
public final class MemFS: FileSystemBackend, @unchecked Sendable {
    private struct State {
        var inodes: [UInt64: MemInode] = [:]
        var nextID: UInt64 = 2
        var change: UInt64 = 1
        var bytesUsed: Int = 0
    }

    private let state = Mutex<State>(State())
    private let fsid: UInt64
    /// Handles carry (fileid, generation); the generation differs per instance, so a handle from
    /// an earlier server run never names a new file.
    private let generation: UInt64
    /// Bytes the filesystem reports as its capacity (statfs).
    public let capacity: UInt64

    public init(capacity: UInt64? = nil) {
        let random = UInt64.random(in: 1...UInt64.max)
        generation = random | 1
        fsid = random >> 8
        self.capacity = capacity ?? UInt64(sysconf(Int32(_SC_PHYS_PAGES))) * UInt64(sysconf(Int32(_SC_PAGESIZE)))
        super.init(moduleName: "memfs")
        let now = Self.now()
        let root = MemInode(id: 1, generation: generation, type: .directory, mode: 0o777, uid: 0, gid: 0, now: now, change: 1)
        root.parent = 1
        state.withLock { $0.inodes[1] = root }
    }

    public override var rootHandle: FileHandle { handle(for: 1) }

    private func handle(for id: UInt64) -> FileHandle {
        FileHandle(mount: mountID, words: id, generation)
    }

    static func now() -> Timespec {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timespec(seconds: Int64(ts.tv_sec), nanoseconds: UInt32(ts.tv_nsec))
    }

    // MARK: Helpers (called with the lock held)

    private func inode(_ handle: FileHandle, in state: inout State) throws(VFSError) -> MemInode {
        guard handle.bodyCount == 16 else { throw .badHandle }
        guard handle.word(1) == generation, let inode = state.inodes[handle.word(0)] else { throw .stale }
        return inode
    }

    private func directory(_ handle: FileHandle, in state: inout State) throws(VFSError) -> MemInode {
        let dir = try inode(handle, in: &state)
        guard dir.type == .directory else { throw .notDirectory }
        return dir
    }

    private func touch(_ inode: MemInode, in state: inout State, data: Bool = false, now: Timespec) {
        state.change += 1
        inode.change = state.change
        inode.ctime = now
        if data { inode.mtime = now }
    }

    private func attributes(_ inode: MemInode, _ mask: AttributeMask) -> Attributes {
        inode.attributes(mask: mask, fsid: fsid)
    }

    private func release(_ inode: MemInode, in state: inout State) {
        if inode.nlink == 0 || (inode.type == .directory && inode.nlink <= 1) {
            state.bytesUsed -= inode.blocks.count * MemBlock.size
            state.inodes[inode.id] = nil
        }
    }

    // MARK: Operations

    public override func getattr(_ handle: FileHandle, mask: AttributeMask) async throws(VFSError) -> Attributes {
        try state.withLock { (s: inout State) throws(VFSError) -> Attributes in
            attributes(try inode(handle, in: &s), mask)
        }
    }

    public override func lookup(_ directoryHandle: FileHandle, name: String, mask: AttributeMask, credentials: Credentials) async throws(VFSError) -> (FileHandle, Attributes) {
        try state.withLock { (s: inout State) throws(VFSError) -> (FileHandle, Attributes) in
            let dir = try directory(directoryHandle, in: &s)
            let id: UInt64
            switch name {
            case ".": id = dir.id
            case "..": id = dir.parent
            default:
                guard let found = dir.entry(named: name) else { throw .notFound }
                id = found
            }
            guard let target = s.inodes[id] else { throw .stale }
            return (handle(for: id), attributes(target, mask))
        }
    }

    public override func setattr(_ handle: FileHandle, _ changes: SetAttributes, guardCtime: Timespec?, credentials: Credentials) async throws(VFSError) -> (before: Attributes, after: Attributes) {
        try state.withLock { (s: inout State) throws(VFSError) -> (before: Attributes, after: Attributes) in
            let node = try inode(handle, in: &s)
            let before = attributes(node, .all)
            if let guardCtime, guardCtime != node.ctime { throw .notSync }
            if let size = changes.size {
                if node.type == .directory { throw .isDirectory }
                if node.type != .regular { throw .invalid }
                let blocksBefore = node.blocks.count
                node.truncate(to: size)
                s.bytesUsed += (node.blocks.count - blocksBefore) * MemBlock.size
            }
            let now = Self.now()
            if let mode = changes.mode { node.mode = mode & 0o7777 }
            if let uid = changes.uid { node.uid = uid }
            if let gid = changes.gid { node.gid = gid }
            switch changes.atime {
            case .unchanged: break
            case .serverTime: node.atime = now
            case let .value(t): node.atime = t
            }
            switch changes.mtime {
            case .unchanged: if changes.size != nil { node.mtime = now }
            case .serverTime: node.mtime = now
            case let .value(t): node.mtime = t
            }
            if !changes.isEmpty { touch(node, in: &s, now: now) }
            return (before, attributes(node, .all))
        }
    }

    public override func create(in directoryHandle: FileHandle, name: String, kind: CreateKind, mode: CreateMode, attributes initial: SetAttributes, credentials: Credentials) async throws(VFSError) -> CreateResult {
        try NameRules.validateEntryName(name)
        return try state.withLock { (s: inout State) throws(VFSError) -> CreateResult in
            let dir = try directory(directoryHandle, in: &s)
            let before = attributes(dir, .all)
            let now = Self.now()
            if let existingID = dir.entry(named: name), let existing = s.inodes[existingID] {
                switch (mode, kind) {
                case (.guarded, _):
                    throw .exists
                case let (.exclusive(verifier), _):
                    guard existing.createVerifier == verifier else { throw .exists }
                case (.unchecked, .regular):
                    guard existing.type == .regular else { throw existing.type == .directory ? .isDirectory : .exists }
                    if let size = initial.size {
                        let blocksBefore = existing.blocks.count
                        existing.truncate(to: size)
                        s.bytesUsed += (existing.blocks.count - blocksBefore) * MemBlock.size
                        existing.mtime = now
                        touch(existing, in: &s, now: now)
                    }
                case (.unchecked, _):
                    throw .exists
                }
                let after = attributes(dir, .all)
                return CreateResult(handle: handle(for: existingID), attributes: attributes(existing, .all),
                                    directory: DirectoryChange(before: before, after: after), created: false)
            }
            let type: FileType
            switch kind {
            case .regular: type = .regular
            case .directory: type = .directory
            case .symlink: type = .symlink
            case let .device(deviceType, _, _):
                guard deviceType == .blockDevice || deviceType == .characterDevice else { throw .invalid }
                type = deviceType
            case .fifo: type = .fifo
            case .socket: type = .socket
            }
            if type == .directory && dir.nlink >= UInt32.max - 1 { throw .tooManyLinks }
            if type == .regular || type == .directory, UInt64(s.bytesUsed) >= capacity { throw .noSpace }
            s.change += 1
            let id = s.nextID
            s.nextID += 1
            let defaultMode: UInt32 = type == .directory ? 0o755 : (type == .symlink ? 0o777 : 0o644)
            let node = MemInode(id: id, generation: generation, type: type, mode: initial.mode ?? defaultMode,
                                uid: initial.uid ?? credentials.uid, gid: initial.gid ?? credentials.gid, now: now, change: s.change)
            switch kind {
            case let .symlink(target): node.target = target
            case let .device(_, major, minor):
                node.rdevMajor = major
                node.rdevMinor = minor
            default: break
            }
            if case let .exclusive(verifier) = mode { node.createVerifier = verifier }
            if type == .directory {
                node.parent = dir.id
                dir.nlink += 1
            }
            switch initial.atime {
            case let .value(t): node.atime = t
            default: break
            }
            switch initial.mtime {
            case let .value(t): node.mtime = t
            default: break
            }
            s.inodes[id] = node
            dir.addEntry(name, inode: id)
            dir.mtime = now
            touch(dir, in: &s, now: now)
            return CreateResult(handle: handle(for: id), attributes: attributes(node, .all),
                                directory: DirectoryChange(before: before, after: attributes(dir, .all)), created: true)
        }
    }

    public override func read(_ handle: FileHandle, offset: UInt64, count: Int, credentials: Credentials) async throws(VFSError) -> ReadResult {
        try state.withLock { (s: inout State) throws(VFSError) -> ReadResult in
            let node = try inode(handle, in: &s)
            guard node.type != .directory else { throw .isDirectory }
            guard node.type == .regular else { throw .invalid }
            let (segments, n, eof) = node.read(offset: offset, count: max(0, count))
            node.atime = Self.now()
            return ReadResult(segments: segments, count: n, eof: eof, attributes: attributes(node, .all))
        }
    }

    public override func write(_ handle: FileHandle, offset: UInt64, data: UnsafeRawBufferPointer, stability: WriteStability, credentials: Credentials) async throws(VFSError) -> WriteResult {
        try state.withLock { (s: inout State) throws(VFSError) -> WriteResult in
            let node = try inode(handle, in: &s)
            guard node.type != .directory else { throw .isDirectory }
            guard node.type == .regular else { throw .invalid }
            let (end, overflow) = offset.addingReportingOverflow(UInt64(data.count))
            guard !overflow, end <= UInt64(Int64.max) else { throw .fileTooBig }
            let before = attributes(node, .all)
            let blocksBefore = node.blocks.count
            if UInt64(s.bytesUsed) + UInt64(data.count) > capacity { throw .noSpace }
            if !data.isEmpty { node.write(data, at: offset) }
            s.bytesUsed += (node.blocks.count - blocksBefore) * MemBlock.size
            touch(node, in: &s, data: true, now: Self.now())
            // Memory is all the durability memfs has: every write is as stable as it gets.
            return WriteResult(count: data.count, stability: .fileSync, before: before, after: attributes(node, .all))
        }
    }

    public override func commit(_ handle: FileHandle, offset: UInt64, count: UInt64) async throws(VFSError) -> Attributes {
        try await getattr(handle, mask: .all)
    }

    public override func readdir(_ directoryHandle: FileHandle, cookie: UInt64, verifier: UInt64, maxEntries: Int, mask: AttributeMask, credentials: Credentials) async throws(VFSError) -> ReadDirResult {
        try state.withLock { (s: inout State) throws(VFSError) -> ReadDirResult in
            let dir = try directory(directoryHandle, in: &s)
            // Cookies are never reused in a directory, so one verifier per directory suffices.
            let directoryVerifier = dir.id &* 0x9E37_79B9_7F4A_7C15 ^ generation
            if cookie != 0 && verifier != 0 && verifier != directoryVerifier { throw .badCookie }
            if cookie >= dir.nextCookie { throw .badCookie }
            var position = dir.firstEntry(after: cookie)
            var entries: [DirectoryEntry] = []
            entries.reserveCapacity(min(maxEntries, dir.entries.count - position))
            while position < dir.entries.count && entries.count < maxEntries {
                let entry = dir.entries[position]
                if let node = s.inodes[entry.inode] {
                    entries.append(DirectoryEntry(
                        name: entry.name, fileid: node.id, cookie: entry.cookie, type: node.type,
                        attributes: mask.isEmpty ? nil : attributes(node, mask),
                        handle: mask.isEmpty ? nil : handle(for: node.id)))
                }
                position += 1
            }
            return ReadDirResult(entries: entries, verifier: directoryVerifier, eof: position == dir.entries.count,
                                 directory: attributes(dir, .all))
        }
    }

    public override func readlink(_ handle: FileHandle, credentials: Credentials) async throws(VFSError) -> String {
        try state.withLock { (s: inout State) throws(VFSError) -> String in
            let node = try inode(handle, in: &s)
            guard node.type == .symlink else { throw .invalid }
            return node.target
        }
    }

    public override func link(_ handle: FileHandle, into directoryHandle: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> (Attributes, DirectoryChange) {
        try NameRules.validateEntryName(name)
        return try state.withLock { (s: inout State) throws(VFSError) -> (Attributes, DirectoryChange) in
            let node = try inode(handle, in: &s)
            let dir = try directory(directoryHandle, in: &s)
            guard node.type != .directory else { throw .isDirectory }
            guard dir.entry(named: name) == nil else { throw .exists }
            guard node.nlink < 65_000 else { throw .tooManyLinks }
            let before = attributes(dir, .all)
            let now = Self.now()
            node.nlink += 1
            touch(node, in: &s, now: now)
            dir.addEntry(name, inode: node.id)
            dir.mtime = now
            touch(dir, in: &s, now: now)
            return (attributes(node, .all), DirectoryChange(before: before, after: attributes(dir, .all)))
        }
    }

    public override func remove(in directoryHandle: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> DirectoryChange {
        try NameRules.validateEntryName(name)
        return try state.withLock { (s: inout State) throws(VFSError) -> DirectoryChange in
            let dir = try directory(directoryHandle, in: &s)
            guard let id = dir.entry(named: name), let node = s.inodes[id] else { throw .notFound }
            guard node.type != .directory else { throw .isDirectory }
            try checkSticky(dir, node, credentials)
            let before = attributes(dir, .all)
            let now = Self.now()
            dir.removeEntry(name)
            dir.mtime = now
            touch(dir, in: &s, now: now)
            node.nlink -= 1
            touch(node, in: &s, now: now)
            release(node, in: &s)
            return DirectoryChange(before: before, after: attributes(dir, .all))
        }
    }

    public override func rmdir(in directoryHandle: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> DirectoryChange {
        try NameRules.validateEntryName(name)
        return try state.withLock { (s: inout State) throws(VFSError) -> DirectoryChange in
            let dir = try directory(directoryHandle, in: &s)
            guard let id = dir.entry(named: name), let node = s.inodes[id] else { throw .notFound }
            guard node.type == .directory else { throw .notDirectory }
            guard node.entries.isEmpty else { throw .notEmpty }
            try checkSticky(dir, node, credentials)
            let before = attributes(dir, .all)
            let now = Self.now()
            dir.removeEntry(name)
            dir.nlink -= 1
            dir.mtime = now
            touch(dir, in: &s, now: now)
            node.nlink = 0
            release(node, in: &s)
            return DirectoryChange(before: before, after: attributes(dir, .all))
        }
    }

    public override func rename(from sourceHandle: FileHandle, name: String, to targetHandle: FileHandle, newName: String, credentials: Credentials) async throws(VFSError) -> (from: DirectoryChange, to: DirectoryChange) {
        try NameRules.validateEntryName(name)
        try NameRules.validateEntryName(newName)
        return try state.withLock { (s: inout State) throws(VFSError) -> (from: DirectoryChange, to: DirectoryChange) in
            let from = try directory(sourceHandle, in: &s)
            let to = try directory(targetHandle, in: &s)
            guard let id = from.entry(named: name), let node = s.inodes[id] else { throw .notFound }
            let beforeFrom = attributes(from, .all)
            let beforeTo = attributes(to, .all)
            if let existingID = to.entry(named: newName) {
                // Same object under both names (or the same name): nothing to do (POSIX).
                if existingID == id {
                    return (DirectoryChange(before: beforeFrom, after: beforeFrom), DirectoryChange(before: beforeTo, after: beforeTo))
                }
            }
            if node.type == .directory {
                // A directory may not move into its own subtree.
                var ancestor = to.id
                while true {
                    if ancestor == node.id { throw .invalid }
                    guard let up = s.inodes[ancestor], up.parent != ancestor else { break }
                    ancestor = up.parent
                }
            }
            try checkSticky(from, node, credentials)
            let now = Self.now()
            if let existingID = to.entry(named: newName), let existing = s.inodes[existingID] {
                switch (node.type == .directory, existing.type == .directory) {
                case (true, false): throw .notDirectory
                case (false, true): throw .isDirectory
                case (true, true): if !existing.entries.isEmpty { throw .notEmpty }
                case (false, false): break
                }
                try checkSticky(to, existing, credentials)
                to.removeEntry(newName)
                if existing.type == .directory {
                    existing.nlink = 0
                    to.nlink -= 1
                } else {
                    existing.nlink -= 1
                    touch(existing, in: &s, now: now)
                }
                release(existing, in: &s)
            }
            from.removeEntry(name)
            to.addEntry(newName, inode: id)
            if node.type == .directory && from.id != to.id {
                node.parent = to.id
                from.nlink -= 1
                to.nlink += 1
            }
            touch(node, in: &s, now: now)
            from.mtime = now
            touch(from, in: &s, now: now)
            if to.id != from.id {
                to.mtime = now
                touch(to, in: &s, now: now)
            }
            return (DirectoryChange(before: beforeFrom, after: attributes(from, .all)),
                    DirectoryChange(before: beforeTo, after: attributes(to, .all)))
        }
    }

    /// In a sticky directory only the owner of the entry or of the directory (or root) may
    /// remove or rename it.
    private func checkSticky(_ dir: MemInode, _ node: MemInode, _ credentials: Credentials) throws(VFSError) {
        if dir.mode & 0o1000 != 0 && !credentials.isRoot && credentials.uid != node.uid && credentials.uid != dir.uid {
            throw .notPermitted
        }
    }

    public override func statfs(_ handle: FileHandle) async throws(VFSError) -> FileSystemStats {
        try state.withLock { (s: inout State) throws(VFSError) -> FileSystemStats in
            _ = try inode(handle, in: &s)
            let used = UInt64(max(0, s.bytesUsed))
            let free = capacity > used ? capacity - used : 0
            let files = UInt64(1) << 32
            return FileSystemStats(totalBytes: capacity, freeBytes: free, availableBytes: free, totalFiles: files,
                                   freeFiles: files - UInt64(s.inodes.count), availableFiles: files - UInt64(s.inodes.count))
        }
    }

    // MARK: Extended attributes

    public static let maxXattrValue = 64 * 1024

    public override func getxattr(_ handle: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> [UInt8] {
        try state.withLock { (s: inout State) throws(VFSError) -> [UInt8] in
            guard let value = try inode(handle, in: &s).xattrs[name] else { throw .noData }
            return value
        }
    }

    public override func setxattr(_ handle: FileHandle, name: String, value: [UInt8], mode: XattrSetMode, credentials: Credentials) async throws(VFSError) {
        guard !name.isEmpty, name.utf8.count <= NameRules.maxNameLength else { throw .invalid }
        guard value.count <= Self.maxXattrValue else { throw .rangeTooBig }
        try state.withLock { (s: inout State) throws(VFSError) in
            let node = try inode(handle, in: &s)
            let exists = node.xattrs[name] != nil
            if mode == .create && exists { throw .exists }
            if mode == .replace && !exists { throw .noData }
            node.xattrs[name] = value
            touch(node, in: &s, now: Self.now())
        }
    }

    public override func listxattr(_ handle: FileHandle, credentials: Credentials) async throws(VFSError) -> [String] {
        try state.withLock { (s: inout State) throws(VFSError) -> [String] in
            try inode(handle, in: &s).xattrs.keys.sorted()
        }
    }

    public override func removexattr(_ handle: FileHandle, name: String, credentials: Credentials) async throws(VFSError) {
        try state.withLock { (s: inout State) throws(VFSError) in
            let node = try inode(handle, in: &s)
            guard node.xattrs.removeValue(forKey: name) != nil else { throw .noData }
            touch(node, in: &s, now: Self.now())
        }
    }

    // MARK: Space management

    public override func allocate(_ handle: FileHandle, offset: UInt64, length: UInt64, credentials: Credentials) async throws(VFSError) {
        try state.withLock { (s: inout State) throws(VFSError) in
            let node = try inode(handle, in: &s)
            guard node.type == .regular else { throw node.type == .directory ? .isDirectory : .invalid }
            let (end, overflow) = offset.addingReportingOverflow(length)
            guard !overflow, end <= UInt64(Int64.max) else { throw .fileTooBig }
            let first = Int(offset / UInt64(MemBlock.size))
            let last = length == 0 ? first - 1 : Int((end - 1) / UInt64(MemBlock.size))
            var added = 0
            if last >= first {
                for index in first...last where node.blocks[index] == nil { added += 1 }
            }
            guard UInt64(s.bytesUsed + added * MemBlock.size) <= capacity else { throw .noSpace }
            if last >= first {
                for index in first...last where node.blocks[index] == nil { node.blocks[index] = MemBlock() }
            }
            s.bytesUsed += added * MemBlock.size
            node.size = max(node.size, end)
            touch(node, in: &s, now: Self.now())
        }
    }

    public override func deallocate(_ handle: FileHandle, offset: UInt64, length: UInt64, credentials: Credentials) async throws(VFSError) {
        try state.withLock { (s: inout State) throws(VFSError) in
            let node = try inode(handle, in: &s)
            guard node.type == .regular else { throw node.type == .directory ? .isDirectory : .invalid }
            let end = min(node.size, offset &+ length < offset ? UInt64.max : offset + length)
            let blocksBefore = node.blocks.count
            node.zero(from: offset, to: end)
            s.bytesUsed += (node.blocks.count - blocksBefore) * MemBlock.size
            touch(node, in: &s, data: true, now: Self.now())
        }
    }

    public override func seek(_ handle: FileHandle, offset: UInt64, target: SeekTarget) async throws(VFSError) -> (offset: UInt64, eof: Bool) {
        try state.withLock { (s: inout State) throws(VFSError) -> (offset: UInt64, eof: Bool) in
            let node = try inode(handle, in: &s)
            guard node.type == .regular else { throw node.type == .directory ? .isDirectory : .invalid }
            guard offset < node.size else { throw .noData }
            var position = offset
            while position < node.size {
                let isData = node.blocks[Int(position / UInt64(MemBlock.size))] != nil
                if isData == (target == .data) { return (position, false) }
                position = (position / UInt64(MemBlock.size) + 1) * UInt64(MemBlock.size)
            }
            // No more data: SEEK_DATA fails (ENXIO in POSIX); the end of file is a hole.
            if target == .data { throw .noData }
            return (node.size, true)
        }
    }

    public override func copyRange(from source: FileHandle, offset sourceOffset: UInt64, to target: FileHandle, offset targetOffset: UInt64, count: UInt64, credentials: Credentials) async throws(VFSError) -> UInt64 {
        let data = try await read(source, offset: sourceOffset, count: Int(min(count, UInt64(Int32.max))), credentials: credentials)
        let buffer = HeapBlock(capacity: data.count)
        var offset = 0
        for segment in data.segments {
            (buffer.base + offset).copyMemory(from: segment.bytes.baseAddress!, byteCount: segment.bytes.count)
            offset += segment.bytes.count
        }
        _ = try await write(target, offset: targetOffset, data: UnsafeRawBufferPointer(start: buffer.base, count: data.count),
                            stability: .fileSync, credentials: credentials)
        return UInt64(data.count)
    }
}
