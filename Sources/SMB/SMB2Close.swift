import VFS

/// CLOSE and FLUSH (MS-SMB2 §3.3.5.10, §3.3.5.11). Closing an open marked delete-on-close
/// removes its name; FLUSH makes written data durable (a COMMIT through the VFS).
extension SMBConnection {
    func close(_ request: inout SMB2Request, reply: SMBReply) async throws(NTStatus) {
        let reader = request.reader
        guard try reader.u16(at: 64) == 24 else { throw .invalidParameter }
        let flags = try reader.u16(at: 66)
        let open = try open(request, at: 72)
        opens[open.id] = nil
        if open.deleteOnClose, let parent = open.parent, let credentials = request.session?.credentials {
            do {
                if open.isDirectory {
                    _ = try await vfs.rmdir(in: parent, name: open.name, credentials: credentials)
                } else {
                    _ = try await vfs.remove(in: parent, name: open.name, credentials: credentials)
                }
            } catch {
                // The handle is closed either way; a name that went away meanwhile is no error.
                if error != .notFound { throw NTStatus(error) }
            }
        }
        var attributes: Attributes?
        if flags & 0x1 != 0 && open.pipe == nil && !open.deleteOnClose {
            attributes = try? await vfs.getattr(open.handle, mask: SMBFileInfo.mask)
        }
        respond(request, reply: reply, bodyCapacity: 60) { writer in
            writer.u16(60)
            writer.u16(attributes == nil ? 0 : 1)
            writer.u32(0)
            if let attributes {
                SMBFileInfo.networkOpen(&writer, attributes)
            } else {
                writer.zeros(52)
            }
        }
    }

    func flush(_ request: inout SMB2Request, reply: SMBReply) async throws(NTStatus) {
        guard try request.reader.u16(at: 64) == 24 else { throw .invalidParameter }
        let open = try open(request, at: 72)
        if open.pipe == nil && !open.isDirectory {
            do {
                _ = try await vfs.commit(open.handle)
            } catch {
                throw NTStatus(error)
            }
        }
        respond(request, reply: reply, bodyCapacity: 4) { writer in
            writer.u16(4)
            writer.u16(0)
        }
    }
}
