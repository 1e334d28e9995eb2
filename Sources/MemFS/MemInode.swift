import VFS

/// A 64 KiB block of file data. Reads hand out references to blocks (zero copy); a write to a
/// block someone still holds copies it first, so an in-flight reply never sees later data.
final class MemBlock: @unchecked Sendable {
    static let size = 64 * 1024
    let base: UnsafeMutableRawPointer

    init() {
        base = .allocate(byteCount: Self.size, alignment: 4096)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: Self.size)
    }

    init(copying other: MemBlock) {
        base = .allocate(byteCount: Self.size, alignment: 4096)
        base.copyMemory(from: other.base, byteCount: Self.size)
    }

    deinit { base.deallocate() }
}

/// One directory entry, with the cookie READDIR resumes from. Cookies are handed out in
/// increasing order and never reused in a directory, so a listing resumes correctly across
/// creates and removes.
struct MemDirEntry {
    var name: String
    var inode: UInt64
    var cookie: UInt64
}

/// A file, directory, symlink or special file of a memfs.
/// Only touched with its filesystem's mutex held, hence the unchecked conformance.
final class MemInode: @unchecked Sendable {
    let id: UInt64
    let generation: UInt64
    var type: FileType
    var mode: UInt32
    var uid: UInt32
    var gid: UInt32
    var nlink: UInt32
    var size: UInt64 = 0
    var atime: Timespec
    var mtime: Timespec
    var ctime: Timespec
    let birthTime: Timespec
    var change: UInt64
    var rdevMajor: UInt32 = 0
    var rdevMinor: UInt32 = 0
    /// Verifier of an EXCLUSIVE create, to recognise its retry.
    var createVerifier: UInt64?
    var xattrs: [String: [UInt8]] = [:]

    // Regular files: sparse block map.
    var blocks: [Int: MemBlock] = [:]
    // Symlinks.
    var target: String = ""
    // Directories.
    var parent: UInt64 = 0
    var entries: [MemDirEntry] = []          // ordered by cookie; removed ones are compacted away
    var index: [String: Int] = [:]           // name → position in `entries`
    var nextCookie: UInt64 = 1

    init(id: UInt64, generation: UInt64, type: FileType, mode: UInt32, uid: UInt32, gid: UInt32, now: Timespec, change: UInt64) {
        self.id = id
        self.generation = generation
        self.type = type
        self.mode = mode & 0o7777
        self.uid = uid
        self.gid = gid
        self.nlink = type == .directory ? 2 : 1
        atime = now
        mtime = now
        ctime = now
        birthTime = now
        self.change = change
    }

    func attributes(mask: AttributeMask, fsid: UInt64) -> Attributes {
        var a = Attributes()
        a.valid = mask
        a.type = type
        a.mode = mode
        a.nlink = nlink
        a.uid = uid
        a.gid = gid
        a.size = type == .symlink ? UInt64(target.utf8.count) : size
        a.spaceUsed = UInt64(blocks.count * MemBlock.size)
        a.fsid = fsid
        a.fileid = id
        a.atime = atime
        a.mtime = mtime
        a.ctime = ctime
        a.birthTime = birthTime
        a.change = change
        a.rdevMajor = rdevMajor
        a.rdevMinor = rdevMinor
        return a
    }

    // MARK: Directory entries

    func entry(named name: String) -> UInt64? {
        index[name].map { entries[$0].inode }
    }

    func addEntry(_ name: String, inode: UInt64) {
        index[name] = entries.count
        entries.append(MemDirEntry(name: name, inode: inode, cookie: nextCookie))
        nextCookie += 1
    }

    func removeEntry(_ name: String) {
        guard let position = index.removeValue(forKey: name) else { return }
        entries.remove(at: position)
        for i in position..<entries.count { index[entries[i].name] = i }
    }

    /// Position of the first entry whose cookie is greater than `cookie`.
    func firstEntry(after cookie: UInt64) -> Int {
        var low = 0, high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].cookie <= cookie { low = mid + 1 } else { high = mid }
        }
        return low
    }

    // MARK: File data

    /// Writes `data` at `offset`, copying shared blocks before changing them.
    func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) {
        var done = 0
        while done < data.count {
            let position = offset + UInt64(done)
            let blockIndex = Int(position / UInt64(MemBlock.size))
            let within = Int(position % UInt64(MemBlock.size))
            let chunk = min(MemBlock.size - within, data.count - done)
            // Take the block out of the map first so the map's own reference does not count.
            var block = blocks.removeValue(forKey: blockIndex) ?? MemBlock()
            if !isKnownUniquelyReferenced(&block) { block = MemBlock(copying: block) }
            (block.base + within).copyMemory(from: data.baseAddress! + done, byteCount: chunk)
            blocks[blockIndex] = block
            done += chunk
        }
        size = max(size, offset + UInt64(data.count))
    }

    /// Segments covering `offset..<offset+count` (clamped to the size): block references, and
    /// the shared zero block for holes.
    func read(offset: UInt64, count: Int) -> (segments: [DataSegment], count: Int, eof: Bool) {
        guard offset < size else { return ([], 0, true) }
        let end = min(size, offset + UInt64(count))
        var segments: [DataSegment] = []
        var position = offset
        while position < end {
            let blockIndex = Int(position / UInt64(MemBlock.size))
            let within = Int(position % UInt64(MemBlock.size))
            let chunk = Int(min(UInt64(MemBlock.size - within), end - position))
            if let block = blocks[blockIndex] {
                segments.append(DataSegment(bytes: UnsafeRawBufferPointer(start: block.base + within, count: chunk), owner: block))
            } else {
                segments.append(DataSegment(bytes: UnsafeRawBufferPointer(start: ZeroBlock.shared.base, count: chunk), owner: ZeroBlock.shared))
            }
            position += UInt64(chunk)
        }
        return (segments, Int(end - offset), end == size)
    }

    /// Zeroes `offset..<end` inside existing blocks and drops blocks that become all hole.
    func zero(from offset: UInt64, to end: UInt64) {
        guard offset < end else { return }
        var position = offset
        while position < end {
            let blockIndex = Int(position / UInt64(MemBlock.size))
            let within = Int(position % UInt64(MemBlock.size))
            let chunk = Int(min(UInt64(MemBlock.size - within), end - position))
            if var block = blocks.removeValue(forKey: blockIndex) {
                if within != 0 || chunk != MemBlock.size {
                    if !isKnownUniquelyReferenced(&block) { block = MemBlock(copying: block) }
                    (block.base + within).initializeMemory(as: UInt8.self, repeating: 0, count: chunk)
                    blocks[blockIndex] = block
                }
            }
            position += UInt64(chunk)
        }
    }

    /// Sets the size; shrinking drops blocks past the end and zeroes the tail of the last one.
    func truncate(to newSize: UInt64) {
        if newSize < size {
            zero(from: newSize, to: min(size, (newSize / UInt64(MemBlock.size) + 1) * UInt64(MemBlock.size)))
            let firstDropped = Int((newSize + UInt64(MemBlock.size) - 1) / UInt64(MemBlock.size))
            for key in blocks.keys where key >= firstDropped { blocks[key] = nil }
        }
        size = newSize
    }
}
