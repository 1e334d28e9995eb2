import VFS

/// Server-side copy (MS-SMB2 §3.3.5.15.6): a client asks for the resume key of a source open,
/// then sends chunks (source offset, target offset, length) to copy into a target open; the
/// bytes never cross the wire. Copies go through the VFS's copyRange (copy_file_range on the
/// linux and io_uring backends), within one mount.
extension SMBConnection {
    /// Windows' limits (MS-SMB2 §3.3.3: ServerSideCopyMaxNumberofChunks, ...MaxChunkSize,
    /// ...MaxDataSize), reported back to a client that exceeds them.
    enum CopyChunkLimit {
        static let chunks: UInt32 = 256
        static let chunkSize: UInt32 = 1 << 20
        static let total: UInt32 = 16 << 20
    }

    /// The 24-byte key that names `open` to a later COPYCHUNK on this connection.
    func resumeKey(_ open: SMBOpen) -> [UInt8] {
        Bytes.le64(open.id) + resumeKeyToken
    }

    /// SRV_COPYCHUNK_COPY into `target`: every chunk or, at the first failure, an error with
    /// what was written so far. Returns the status and SRV_COPYCHUNK_RESPONSE.
    func copyChunks(into target: SMBOpen, input: SMBReader, maxOutput: Int, readsTarget: Bool,
                    credentials: Credentials?) async throws(NTStatus) -> (NTStatus, [UInt8]) {
        guard let credentials, target.pipe == nil, !target.isDirectory else { throw .invalidDeviceRequest }
        guard maxOutput >= 12, input.bytes.count >= 32 else { throw .invalidParameter }
        let sourceID = try input.u64(at: 0)
        let token = try input.slice(at: 8, count: 16)
        let count = try input.u32(at: 24)
        let response = { (chunks: UInt32, chunkBytes: UInt32, total: UInt32) in Bytes.le32(chunks) + Bytes.le32(chunkBytes) + Bytes.le32(total) }
        let limits = response(CopyChunkLimit.chunks, CopyChunkLimit.chunkSize, CopyChunkLimit.total)
        guard count <= CopyChunkLimit.chunks else { return (.invalidParameter, limits) }
        guard input.bytes.count >= 32 + 24 * Int(count) else { throw .invalidParameter }
        var chunks: [(source: UInt64, target: UInt64, length: UInt32)] = []
        var total: UInt64 = 0
        for index in 0..<Int(count) {
            let base = 32 + 24 * index
            let chunk = (source: try input.u64(at: base), target: try input.u64(at: base + 8), length: try input.u32(at: base + 16))
            total += UInt64(chunk.length)
            guard chunk.length > 0, chunk.length <= CopyChunkLimit.chunkSize, total <= UInt64(CopyChunkLimit.total) else {
                return (.invalidParameter, limits)
            }
            chunks.append(chunk)
        }
        // The source: an open of this connection, named by its resume key.
        guard token.elementsEqual(resumeKeyToken), let source = opens[sourceID], source.pipe == nil, !source.isDirectory else { throw .objectNameNotFound }
        // The source is read (or executed); COPYCHUNK also reads the target, COPYCHUNK_WRITE
        // only writes it.
        guard source.access & (SMBAccess.readData | SMBAccess.execute) != 0,
              target.access & SMBAccess.writeData != 0, !readsTarget || target.access & SMBAccess.readData != 0 else { throw .accessDenied }
        let sourceSize = try await getattr(source.handle).size
        var written: UInt32 = 0
        var bytes: UInt32 = 0
        for chunk in chunks {
            // A chunk reaching past the source's end fails before anything of it is written
            // (MS-SMB2 §3.3.5.15.6.2); earlier chunks stay written.
            let (end, overflow) = chunk.source.addingReportingOverflow(UInt64(chunk.length))
            guard !overflow, end <= sourceSize else { return (.invalidViewSize, response(written, 0, bytes)) }
            if lockConflict(source, offset: chunk.source, length: Int(chunk.length), write: false)
                || lockConflict(target, offset: chunk.target, length: Int(chunk.length), write: true) {
                return (.fileLockConflict, response(written, 0, bytes))
            }
            breakReadCaching(target)
            do {
                try await copyChunk(from: source.handle, chunk.source, to: target.handle, chunk.target, length: chunk.length, credentials: credentials)
            } catch {
                return (NTStatus(error), response(written, 0, bytes))
            }
            written += 1
            bytes += chunk.length
        }
        if written > 0 {
            postChange(in: target.parent, .modified, name: target.name, isDirectory: false, filter: NotifyFilter.size | NotifyFilter.lastWrite)
        }
        return (.success, response(written, 0, bytes))
    }

    /// Copies one chunk: copyRange in the VFS, or through memory when source and target are
    /// the same file and the ranges overlap (copy_file_range refuses that).
    private func copyChunk(from source: FileHandle, _ sourceOffset: UInt64, to target: FileHandle, _ targetOffset: UInt64, length: UInt32,
                           credentials: Credentials) async throws(VFSError) {
        let count = UInt64(length)
        if source == target && ByteRange(offset: sourceOffset, length: count).overlaps(ByteRange(offset: targetOffset, length: count)) {
            let data = try await vfs.read(source, offset: sourceOffset, count: Int(length), credentials: credentials)
            guard data.count == Int(length) else { throw .io }
            let block = HeapBlock(capacity: data.count)
            var filled = 0
            for segment in data.segments {
                (block.base + filled).copyMemory(from: segment.bytes.baseAddress!, byteCount: segment.bytes.count)
                filled += segment.bytes.count
            }
            _ = try await vfs.write(target, offset: targetOffset, data: UnsafeRawBufferPointer(start: block.base, count: data.count),
                                    stability: .unstable, credentials: credentials)
            withExtendedLifetime(block) {}
            return
        }
        var done: UInt64 = 0
        while done < count {
            let copied = try await vfs.copyRange(from: source, offset: sourceOffset + done, to: target, offset: targetOffset + done,
                                                 count: count - done, credentials: credentials)
            guard copied > 0 else { throw .io }
            done += copied
        }
    }
}
