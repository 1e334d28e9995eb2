import ONCRPC
import VFS

extension NFS3Program {
    /// FSSTAT (RFC 1813 §3.3.18).
    func fsstat(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let handle = try request.handle()
        let stats = try await request.vfsCall { () async throws(VFSError) in try await vfs.statfs(handle) }
        let attributes = await request.attributes(handle)
        request.context.reply(capacity: 4 + NFS3XDR.postOpSize + 52) { encoder in
            encoder.uint32(NFS3Status.ok.rawValue)
            NFS3XDR.postOp(&encoder, attributes)
            encoder.uint64(stats.totalBytes)
            encoder.uint64(stats.freeBytes)
            encoder.uint64(stats.availableBytes)
            encoder.uint64(stats.totalFiles)
            encoder.uint64(stats.freeFiles)
            encoder.uint64(stats.availableFiles)
            encoder.uint32(0)  // invarsec: the figures may change at any time
        }
    }

    /// FSINFO (RFC 1813 §3.3.19): 1 MiB transfers, nanosecond times, links and symlinks.
    func fsinfo(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let handle = try request.handle()
        let attributes = try await request.vfsCall { () async throws(VFSError) in try await vfs.getattr(handle, mask: .nfs3) }
        request.context.reply(capacity: 4 + NFS3XDR.postOpSize + 48) { encoder in
            encoder.uint32(NFS3Status.ok.rawValue)
            NFS3XDR.postOp(&encoder, attributes)
            encoder.uint32(UInt32(NFS3.maxTransfer))        // rtmax
            encoder.uint32(UInt32(NFS3.preferredTransfer))  // rtpref
            encoder.uint32(4096)                            // rtmult
            encoder.uint32(UInt32(NFS3.maxTransfer))        // wtmax
            encoder.uint32(UInt32(NFS3.preferredTransfer))  // wtpref
            encoder.uint32(4096)                            // wtmult
            encoder.uint32(64 * 1024)                       // dtpref
            encoder.uint64(UInt64(Int64.max))               // maxfilesize
            encoder.uint32(0)                               // time_delta: 1 ns
            encoder.uint32(1)
            encoder.uint32(0x1 | 0x2 | 0x8 | 0x10)          // FSF3_LINK | SYMLINK | HOMOGENEOUS | CANSETTIME
        }
    }

    /// PATHCONF (RFC 1813 §3.3.20).
    func pathconf(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let handle = try request.handle()
        let attributes = try await request.vfsCall { () async throws(VFSError) in try await vfs.getattr(handle, mask: .nfs3) }
        request.context.reply(capacity: 4 + NFS3XDR.postOpSize + 24) { encoder in
            encoder.uint32(NFS3Status.ok.rawValue)
            NFS3XDR.postOp(&encoder, attributes)
            encoder.uint32(65_000)                          // linkmax
            encoder.uint32(UInt32(NameRules.maxNameLength)) // name_max
            encoder.bool(true)                              // no_trunc: long names are refused
            encoder.bool(true)                              // chown_restricted
            encoder.bool(false)                             // case_insensitive
            encoder.bool(true)                              // case_preserving
        }
    }
}
