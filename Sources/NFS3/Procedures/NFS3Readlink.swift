import ONCRPC
import VFS

extension NFS3Program {
    /// READLINK (RFC 1813 §3.3.5).
    func readlink(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let handle = try request.handle()
        let credentials = request.credentials
        let target = try await request.vfsCall { () async throws(VFSError) in try await vfs.readlink(handle, credentials: credentials) }
        let attributes = await request.attributes(handle)
        request.context.reply(capacity: 4 + NFS3XDR.postOpSize + XDREncoder.opaqueSize(target.utf8.count)) { encoder in
            encoder.uint32(NFS3Status.ok.rawValue)
            NFS3XDR.postOp(&encoder, attributes)
            encoder.string(target)
        }
    }
}
