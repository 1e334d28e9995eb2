import ONCRPC
import VFS

extension NFS3Program {
    /// LOOKUP (RFC 1813 §3.3.3): the object's handle and attributes, and the directory's.
    /// ".." of an export's root is the root itself, as with the kernel's server: the export
    /// (its client list, read-only flag, squash) covers nothing above it.
    func lookup(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let directory = try request.handle()
        let name = try request.name()
        let credentials = request.credentials
        let staysAtRoot = name == ".." && directory == request.export?.root
        do {
            let (handle, attributes) = staysAtRoot
                ? (directory, try await vfs.getattr(directory, mask: .nfs3))
                : try await vfs.lookup(directory, name: name, mask: .nfs3, credentials: credentials)
            let directoryAttributes = await request.attributes(directory)
            let wire = request.wire(handle)
            request.context.reply(capacity: 4 + 4 + NFS3.maxHandleSize + 2 * NFS3XDR.postOpSize) { encoder in
                encoder.uint32(NFS3Status.ok.rawValue)
                NFS3XDR.handle(&encoder, wire)
                NFS3XDR.postOp(&encoder, attributes)
                NFS3XDR.postOp(&encoder, directoryAttributes)
            }
        } catch {
            let directoryAttributes = await request.attributes(directory)
            request.context.reply(capacity: 4 + NFS3XDR.postOpSize, failed: true) { encoder in
                encoder.uint32(NFS3Status(error).rawValue)
                NFS3XDR.postOp(&encoder, directoryAttributes)
            }
        }
    }
}
