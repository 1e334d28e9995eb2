import ONCRPC
import VFS

extension NFS3Program {
    /// ACCESS (RFC 1813 §3.3.4): which of READ, LOOKUP, MODIFY, EXTEND, DELETE, EXECUTE the
    /// caller may do, from the mode bits (and ROFS for read-only exports).
    func access(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let handle = try request.handle()
        let wanted = try request.uint32()
        let credentials = request.credentials
        let readOnly = request.export?.readOnly ?? true
        let attributes = try await request.vfsCall { () async throws(VFSError) in try await vfs.getattr(handle, mask: .nfs3) }
        let granted = try await request.vfsCall { () async throws(VFSError) in
            try await vfs.access(handle, wanted: [.read, .write, .execute], credentials: credentials)
        }
        var bits: UInt32 = 0
        if granted.contains(.read) { bits |= 0x01 }
        if granted.contains(.execute) { bits |= attributes.type == .directory ? 0x02 : 0x20 }
        if granted.contains(.write) && !readOnly {
            bits |= 0x04 | 0x08
            if attributes.type == .directory { bits |= 0x10 }
        }
        let result = bits & wanted
        request.context.reply(capacity: 8 + NFS3XDR.postOpSize) { encoder in
            encoder.uint32(NFS3Status.ok.rawValue)
            NFS3XDR.postOp(&encoder, attributes)
            encoder.uint32(result)
        }
    }
}
