import ONCRPC
import VFS

extension NFS3Program {
    /// READ (RFC 1813 §3.3.6). The data goes out by reference: the reply header is encoded,
    /// then the VFS's segments (memfs blocks, or the buffer a backend read into) follow as
    /// gathered iovecs, then the XDR padding.
    func read(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let handle = try request.handle()
        let offset = try request.uint64()
        let count = Int(min(try request.uint32(), UInt32(NFS3.maxTransfer)))
        let credentials = request.credentials
        do {
            let result = try await vfs.read(handle, offset: offset, count: count, credentials: credentials)
            var data: [(UnsafeRawBufferPointer, AnyObject)] = []
            data.reserveCapacity(result.segments.count)
            for segment in result.segments { data.append((segment.bytes, segment.owner)) }
            request.context.reply(capacity: 16 + NFS3XDR.postOpSize, header: { encoder in
                encoder.uint32(NFS3Status.ok.rawValue)
                NFS3XDR.postOp(&encoder, result.attributes)
                encoder.uint32(UInt32(result.count))
                encoder.bool(result.eof)
                encoder.uint32(UInt32(result.count))
            }, data: data, dataCount: result.count)
        } catch {
            let attributes = await request.attributes(handle)
            request.context.reply(capacity: 4 + NFS3XDR.postOpSize, failed: true) { encoder in
                encoder.uint32(NFS3Status(error).rawValue)
                NFS3XDR.postOp(&encoder, attributes)
            }
        }
    }
}
