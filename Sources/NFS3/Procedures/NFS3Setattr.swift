import ONCRPC
import VFS

extension NFS3Program {
    /// SETATTR with the optional ctime guard (RFC 1813 §3.3.2): NOT_SYNC when the guard fails.
    func setattr(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let handle = try request.handle(write: true)
        let changes = try request.sattr()
        var guardCtime: Timespec?
        if try request.bool() {
            do { guardCtime = try NFS3XDR.decodeTime(&request.arguments) } catch { throw .garbage }
        }
        let credentials = request.credentials
        if changes.size != nil { await vfs.fileStates.recallLeases(handle) }
        do {
            let (before, after) = try await vfs.setattr(handle, changes, guardCtime: guardCtime, credentials: credentials)
            request.context.reply(capacity: 4 + NFS3XDR.wccSize) { encoder in
                encoder.uint32(NFS3Status.ok.rawValue)
                NFS3XDR.wcc(&encoder, before: before, after: after)
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
}
