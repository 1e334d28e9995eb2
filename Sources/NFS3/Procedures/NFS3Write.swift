import ONCRPC
import VFS

extension NFS3Program {
    /// WRITE (RFC 1813 §3.3.7). The data is used where it was received (a view into the
    /// record's receive buffer); the reply carries the stability achieved and the server's
    /// write verifier, which changes on every start.
    func write(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let handle = try request.handle(write: true)
        let offset = try request.uint64()
        let count = Int(try request.uint32())
        guard let stability = WriteStability(rawValue: Int(try request.uint32())) else { throw .garbage }
        let data = try request.opaque(maximum: NFS3.maxTransfer)
        guard data.count >= count else { throw .garbage }
        let credentials = request.credentials
        let verifier = writeVerifier
        // SMB clients caching the file (oplocks, leases) are told first.
        await vfs.fileStates.recallLeases(handle)
        do {
            let result = try await vfs.write(handle, offset: offset, data: UnsafeRawBufferPointer(rebasing: data[0..<count]),
                                             stability: stability, credentials: credentials)
            request.context.reply(capacity: 4 + NFS3XDR.wccSize + 16, bytes: result.count) { encoder in
                encoder.uint32(NFS3Status.ok.rawValue)
                NFS3XDR.wcc(&encoder, before: result.before, after: result.after)
                encoder.uint32(UInt32(result.count))
                encoder.uint32(UInt32(result.stability.rawValue))
                encoder.uint64(verifier)
            }
        } catch {
            let after = await request.attributes(handle)
            request.context.reply(capacity: 4 + NFS3XDR.wccSize, failed: true) { encoder in
                encoder.uint32(NFS3Status(error).rawValue)
                NFS3XDR.preOp(&encoder, nil)
                NFS3XDR.postOp(&encoder, after)
            }
        }
    }

    /// COMMIT (RFC 1813 §3.3.21): unstable writes become durable; the verifier tells the client
    /// whether the server restarted since it wrote.
    func commit(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let handle = try request.handle()
        let offset = try request.uint64()
        let count = UInt64(try request.uint32())
        let before = await request.attributes(handle)
        let after = try await request.vfsCall { () async throws(VFSError) in try await vfs.commit(handle, offset: offset, count: count) }
        let verifier = writeVerifier
        request.context.reply(capacity: 4 + NFS3XDR.wccSize + 8) { encoder in
            encoder.uint32(NFS3Status.ok.rawValue)
            NFS3XDR.preOp(&encoder, before)
            NFS3XDR.postOp(&encoder, after)
            encoder.uint64(verifier)
        }
    }
}
