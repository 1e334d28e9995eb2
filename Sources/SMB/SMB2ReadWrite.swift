import VFS

/// READ and WRITE (MS-SMB2 §3.3.5.12, §3.3.5.13). READ data leaves by reference (memfs blocks
/// go straight into the send's iovecs); WRITE data is used where it was received (or where
/// it was decrypted, in place). Both also carry named-pipe traffic on IPC$.
extension SMBConnection {
    func read(_ request: inout SMB2Request, reply: SMBReply) async throws(NTStatus) -> Int {
        let reader = request.reader
        guard try reader.u16(at: 64) == 49 else { throw .invalidParameter }
        let length = Int(try reader.u32(at: 68))
        let offset = try reader.u64(at: 72)
        let open = try open(request, at: 80)
        let minimum = Int(try reader.u32(at: 96))
        guard length <= maxIOSize else { throw .invalidParameter }
        // Offsets are signed 64-bit in the file system: a range past that is no file's.
        let (readEnd, readOverflow) = offset.addingReportingOverflow(UInt64(length))
        guard !readOverflow, readEnd <= UInt64(Int64.max) else { throw .invalidParameter }
        if let pipe = open.pipe {
            let data = pipe.read(maximum: length)
            guard !data.isEmpty else { throw .pipeEmpty }
            let block = HeapBlock(capacity: data.count)
            data.withUnsafeBytes { block.base.copyMemory(from: $0.baseAddress!, byteCount: data.count) }
            respondRead(request, reply: reply, data: [DataSegment(bytes: UnsafeRawBufferPointer(start: block.base, count: data.count), owner: block)],
                        count: data.count, remaining: pipe.pending)
            return data.count
        }
        if open.isDirectory { throw .invalidDeviceRequest }
        guard open.access & (SMBAccess.readData | SMBAccess.execute) != 0 else { throw .accessDenied }
        guard let credentials = request.session?.credentials else { throw .invalidParameter }
        if lockConflict(open, offset: offset, length: length, write: false) { throw .fileLockConflict }
        let result: ReadResult
        do {
            result = try await vfs.read(open.handle, offset: offset, count: length, credentials: credentials)
        } catch {
            throw NTStatus(error)
        }
        if result.count == 0 && length > 0 || result.count < minimum { throw .endOfFile }
        open.position = offset + UInt64(result.count)
        respondRead(request, reply: reply, data: result.segments, count: result.count, remaining: 0)
        return result.count
    }

    private func respondRead(_ request: SMB2Request, reply: SMBReply, data: [DataSegment], count: Int, remaining: Int) {
        respond(request, reply: reply, bodyCapacity: 16, data: data, dataCount: count) { writer in
            writer.u16(17)
            writer.u8(0x50)  // data right after this 16-byte body
            writer.u8(0)
            writer.u32(UInt32(count))
            writer.u32(UInt32(remaining))
            writer.u32(0)
        }
    }

    /// The largest file end Windows accepts (MAXFILESIZE, 16 TiB - 64 KiB).
    static let maxFileSize: UInt64 = 0xFFF_FFFF_0000

    func write(_ request: inout SMB2Request, reply: SMBReply) async throws(NTStatus) -> Int {
        let reader = request.reader
        guard try reader.u16(at: 64) == 49 else { throw .invalidParameter }
        let dataOffset = Int(try reader.u16(at: 66))
        let length = Int(try reader.u32(at: 68))
        var offset = try reader.u64(at: 72)
        let open = try open(request, at: 80)
        let flags = try reader.u32(at: 108)
        guard length <= maxIOSize else { throw .invalidParameter }
        let data = try reader.slice(at: dataOffset, count: length)
        if let pipe = open.pipe {
            try pipe.write(data, connection: self)
            respondWrite(request, reply: reply, count: length)
            return length
        }
        if open.isDirectory { throw .invalidDeviceRequest }
        guard open.access & (SMBAccess.writeData | SMBAccess.appendData) != 0 else { throw .accessDenied }
        guard let credentials = request.session?.credentials else { throw .invalidParameter }
        if offset == .max && open.access & SMBAccess.writeData == 0 {
            // Append-only opens write at the end of the file (MS-SMB2 §3.3.5.13).
            offset = try await getattr(open.handle).size
        }
        let (end, overflow) = offset.addingReportingOverflow(UInt64(length))
        guard !overflow, end <= UInt64(Int64.max), length == 0 || end <= Self.maxFileSize else { throw .invalidParameter }
        if length == 0 {
            respondWrite(request, reply: reply, count: 0)
            return 0
        }
        if lockConflict(open, offset: offset, length: length, write: true) { throw .fileLockConflict }
        let stability: WriteStability = flags & 0x1 != 0 || open.writeThrough ? .fileSync : .unstable
        breakReadCaching(open)
        let result: WriteResult
        do {
            result = try await vfs.write(open.handle, offset: offset, data: data, stability: stability, credentials: credentials)
        } catch {
            throw NTStatus(error)
        }
        open.position = offset + UInt64(result.count)
        postChange(in: open.parent, .modified, name: open.name, isDirectory: false, filter: NotifyFilter.size | NotifyFilter.lastWrite)
        respondWrite(request, reply: reply, count: result.count)
        return result.count
    }

    private func respondWrite(_ request: SMB2Request, reply: SMBReply, count: Int) {
        respond(request, reply: reply, bodyCapacity: 16) { writer in
            writer.u16(17)
            writer.u16(0)
            writer.u32(UInt32(count))
            writer.u32(0)
            writer.u16(0)
            writer.u16(0)
        }
    }
}
