import ONCRPC
import VFS

extension NFS3Program {
    /// READDIR and READDIRPLUS (RFC 1813 §3.3.16-17). Entries are fetched from the VFS in one
    /// call (with attributes and handles for PLUS, so no per-entry stat) and encoded until the
    /// client's `count` / `maxcount` (and, for PLUS, `dircount`) would be exceeded.
    func readdir(_ request: inout NFS3Request, plus: Bool) async throws(NFS3Failure) {
        let directory = try request.handle()
        let cookie = try request.uint64()
        let verifier = try request.fixed(8).loadUnaligned(as: UInt64.self)
        let dircount = Int(try request.uint32())
        let maxcount = plus ? Int(try request.uint32()) : dircount
        let credentials = request.credentials
        // Reply overhead: status, post_op_attr, verifier, end-of-list and eof words.
        let overhead = 4 + NFS3XDR.postOpSize + 8 + 8
        let budget = min(maxcount, NFS3.maxTransfer) - overhead
        guard budget > 0 else { throw .status(.toosmall) }
        let wanted = min(4096, max(1, budget / (plus ? 120 : 24)))
        let mask: AttributeMask = plus ? .nfs3 : []
        let page: ReadDirResult
        do {
            page = try await vfs.readdir(directory, cookie: cookie, verifier: cookie == 0 ? 0 : verifier, maxEntries: wanted, mask: mask, credentials: credentials)
        } catch {
            throw NFS3Failure(error)
        }
        // Choose the entries that fit.
        var used = 0, dirUsed = 0, fitting = 0
        var wires: [SignedHandle?] = []
        if plus { wires.reserveCapacity(page.entries.count) }
        // ".." of the export's root is above the export: listed, but without its handle or attributes.
        let atExportRoot = directory == request.export?.root
        for entry in page.entries {
            let base = 4 + 8 + XDREncoder.opaqueSize(entry.name.utf8.count) + 8
            var size = base
            var wire: SignedHandle?
            let hidden = atExportRoot && entry.name == ".."
            if plus {
                wire = hidden ? nil : entry.handle.map { request.wire($0) }
                size += 4 + (entry.attributes == nil || hidden ? 0 : NFS3XDR.fattrSize) + 4 + (wire.map { XDREncoder.opaqueSize($0.count) } ?? 0)
            }
            if used + size > budget || (plus && dirUsed + base > dircount) { break }
            used += size
            dirUsed += base
            fitting += 1
            if plus { wires.append(wire) }
        }
        if fitting == 0 && !page.entries.isEmpty { throw .status(.toosmall) }
        let eof = page.eof && fitting == page.entries.count
        let directoryAttributes = page.directory
        let entries = page.entries
        let replyVerifier = page.verifier
        request.context.reply(capacity: overhead + used) { encoder in
            encoder.uint32(NFS3Status.ok.rawValue)
            NFS3XDR.postOp(&encoder, directoryAttributes)
            withUnsafeBytes(of: replyVerifier) { encoder.fixedOpaque($0) }
            for index in 0..<fitting {
                let entry = entries[index]
                encoder.bool(true)
                encoder.uint64(entry.fileid)
                encoder.string(entry.name)
                encoder.uint64(entry.cookie)
                if plus {
                    NFS3XDR.postOp(&encoder, atExportRoot && entry.name == ".." ? nil : entry.attributes)
                    NFS3XDR.postOpHandle(&encoder, wires[index])
                }
            }
            encoder.bool(false)
            encoder.bool(eof)
        }
    }
}
