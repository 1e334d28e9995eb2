import CLinuxFS
import LinuxFS
import Runtime
import VFS

/// The io_uring module: the linux module (same handles, containment, credentials and
/// caches; every metadata operation is inherited) with file data moved through the ring of
/// the loop serving the request instead of a delegation thread.
///
/// READ and WRITE on a loop thread take the open descriptor from the shared cache (a miss
/// opens it on a delegation thread, with the caller's credentials) and submit the transfer to
/// `EventLoop.current`'s ring; the task resumes on the same loop when it completes. Off a loop
/// (EventLoop.current is nil) they fall back to the linux module's delegation path. Making
/// data durable (stable writes, COMMIT) is an fsync through the ring too: the kernel runs many
/// at once, so concurrent syncs share journal commits instead of queueing behind the few
/// delegation threads.
///
/// One deliberate exception to "no system call on the loop": the fstat of the open
/// descriptor that sizes a read and gives the reply's attributes and the write's WCC data.
/// It reads an inode pinned in memory by the open descriptor and never waits for a disk on
/// local filesystems; a hop to a delegation thread for it would cost more than the read.
public final class URingFS: LinuxFS, @unchecked Sendable {
    public init(root: String, delegation: DelegationPool, openFiles: Int = 256, handleTable: Bool = false) throws(VFSError) {
        try super.init(root: root, delegation: delegation, moduleName: "io_uring", openFiles: openFiles, handleTable: handleTable)
    }

    /// The cached descriptor, or one opened on a delegation thread.
    private func file(_ handle: FileHandle, _ credentials: Credentials, writable: Bool) async throws(VFSError) -> Descriptor {
        if let cached = files.lookup(OpenKey(handle: handle, credentials: credentials, writable: writable)) { return cached }
        return try await blocking { () throws(VFSError) -> Descriptor in try self.openFile(handle, credentials, writable: writable) }
    }

    public override func read(_ handle: FileHandle, offset: UInt64, count: Int, credentials: Credentials) async throws(VFSError) -> ReadResult {
        guard let loop = EventLoop.current else {
            return try await super.read(handle, offset: offset, count: count, credentials: credentials)
        }
        let file = try await file(handle, credentials, writable: false)
        let st = try stat(file)
        let wanted = Self.readLength(offset: offset, count: count, size: st.size)
        guard wanted > 0 else { return Self.readResult(nil, count: 0, offset: offset, st) }
        let block = HeapBlock(capacity: wanted)
        var done = 0
        while done < wanted {
            let space = UnsafeMutableRawBufferPointer(start: block.base + done, count: wanted - done)
            let n = await loop.read(fd: file.fd, into: space, offset: offset + UInt64(done))
            if n < 0 { throw VFSError(errno: Int32(-n)) }
            if n == 0 { break }
            done += n
        }
        // `file` stays referenced (so open) until here.
        return withExtendedLifetime(file) { Self.readResult(block, count: done, offset: offset, st) }
    }

    private func sync(_ fd: Int32, dataOnly: Bool, on loop: EventLoop) async throws(VFSError) {
        let result = await loop.fsync(fd: fd, dataOnly: dataOnly)
        if result < 0 { throw VFSError(errno: -result) }
    }

    public override func commit(_ handle: FileHandle, offset: UInt64, count: UInt64) async throws(VFSError) -> Attributes {
        guard let loop = EventLoop.current, loop.hasRing else {
            return try await super.commit(handle, offset: offset, count: count)
        }
        let file: Descriptor
        do {
            // The descriptor that wrote the data is usually still cached: no reopen for the sync.
            if let cached = cachedOpenFile(handle) {
                file = cached
            } else {
                file = try await self.file(handle, .root, writable: false)
            }
        } catch {
            // Not a file this module opens for I/O (a directory, say): the linux module's way.
            return try await super.commit(handle, offset: offset, count: count)
        }
        try await sync(file.fd, dataOnly: false, on: loop)
        let after = try stat(file)
        return withExtendedLifetime(file) { after.attributes(.all) }
    }

    public override func write(_ handle: FileHandle, offset: UInt64, data: UnsafeRawBufferPointer, stability: WriteStability, credentials: Credentials) async throws(VFSError) -> WriteResult {
        guard let loop = EventLoop.current else {
            return try await super.write(handle, offset: offset, data: data, stability: stability, credentials: credentials)
        }
        try Self.checkRange(offset: offset, length: UInt64(data.count))
        let file = try await file(handle, credentials, writable: true)
        let before = try stat(file)
        var done = 0
        while done < data.count {
            let chunk = UnsafeRawBufferPointer(start: data.baseAddress! + done, count: data.count - done)
            let n = await loop.write(fd: file.fd, from: chunk, offset: offset + UInt64(done))
            if n < 0 { throw VFSError(errno: Int32(-n)) }
            if n == 0 { throw .io }
            done += n
        }
        if stability > .unstable {
            try await sync(file.fd, dataOnly: stability == .dataSync, on: loop)
        }
        let after = try stat(file)
        return withExtendedLifetime(file) {
            WriteResult(count: done, stability: stability, before: before.attributes(.all), after: after.attributes(.all))
        }
    }
}
