import ONCRPC
import VFS

extension NFS3Program {
    /// REMOVE (RFC 1813 §3.3.12).
    func remove(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let directory = try request.handle(write: true)
        let name = try request.name()
        let credentials = request.credentials
        await vfs.recallLeases(in: directory, name: name, credentials: credentials)
        let change = try await request.vfsCall { () async throws(VFSError) in try await vfs.remove(in: directory, name: name, credentials: credentials) }
        replyWCC(request, change)
    }

    /// RMDIR (RFC 1813 §3.3.13).
    func rmdir(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let directory = try request.handle(write: true)
        let name = try request.name()
        let credentials = request.credentials
        let change = try await request.vfsCall { () async throws(VFSError) in try await vfs.rmdir(in: directory, name: name, credentials: credentials) }
        replyWCC(request, change)
    }

    func replyWCC(_ request: NFS3Request, _ change: DirectoryChange) {
        request.context.reply(capacity: 4 + NFS3XDR.wccSize) { encoder in
            encoder.uint32(NFS3Status.ok.rawValue)
            NFS3XDR.wcc(&encoder, change)
        }
    }

    /// RENAME (RFC 1813 §3.3.14): both directories' wcc_data.
    func rename(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let from = try request.handle(write: true)
        let fromName = try request.name()
        let to = try request.handle(write: true)
        let toName = try request.name()
        let credentials = request.credentials
        // Both the file moved and one it replaces may be cached by SMB clients.
        await vfs.recallLeases(in: from, name: fromName, credentials: credentials)
        await vfs.recallLeases(in: to, name: toName, credentials: credentials)
        let (fromChange, toChange) = try await request.vfsCall { () async throws(VFSError) in
            try await vfs.rename(from: from, name: fromName, to: to, newName: toName, credentials: credentials)
        }
        request.context.reply(capacity: 4 + 2 * NFS3XDR.wccSize) { encoder in
            encoder.uint32(NFS3Status.ok.rawValue)
            NFS3XDR.wcc(&encoder, fromChange)
            NFS3XDR.wcc(&encoder, toChange)
        }
    }

    /// LINK (RFC 1813 §3.3.15).
    func link(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let file = try request.handle()
        let directory = try request.handle(write: true)
        let name = try request.name()
        let credentials = request.credentials
        let (attributes, change) = try await request.vfsCall { () async throws(VFSError) in
            try await vfs.link(file, into: directory, name: name, credentials: credentials)
        }
        request.context.reply(capacity: 4 + NFS3XDR.postOpSize + NFS3XDR.wccSize) { encoder in
            encoder.uint32(NFS3Status.ok.rawValue)
            NFS3XDR.postOp(&encoder, attributes)
            NFS3XDR.wcc(&encoder, change)
        }
    }
}
