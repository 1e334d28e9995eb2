import ONCRPC
import VFS

extension NFS3Program {
    /// GETATTR (RFC 1813 §3.3.1).
    func getattr(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let handle = try request.handle()
        let attributes = try await request.vfsCall { () async throws(VFSError) in try await vfs.getattr(handle, mask: .nfs3) }
        request.context.reply(capacity: 4 + NFS3XDR.fattrSize) { encoder in
            encoder.uint32(NFS3Status.ok.rawValue)
            NFS3XDR.fattr(&encoder, attributes)
        }
    }
}
