import ONCRPC
import VFS

extension NFS3Program {
    /// Encodes the reply shared by CREATE, MKDIR, SYMLINK and MKNOD: the new handle and
    /// attributes, and the directory's wcc_data.
    func replyCreated(_ request: NFS3Request, _ result: CreateResult) {
        let wire = request.wire(result.handle)
        request.context.reply(capacity: 4 + NFS3XDR.postOpHandleSize + NFS3XDR.postOpSize + NFS3XDR.wccSize) { encoder in
            encoder.uint32(NFS3Status.ok.rawValue)
            NFS3XDR.postOpHandle(&encoder, wire)
            NFS3XDR.postOp(&encoder, result.attributes)
            NFS3XDR.wcc(&encoder, result.directory)
        }
    }

    /// Runs a create-like VFS call and answers it, with the directory's attributes on failure.
    func createObject(_ request: inout NFS3Request, directory: FileHandle, name: String, kind: CreateKind, mode: CreateMode, attributes: SetAttributes) async throws(NFS3Failure) {
        let credentials = request.credentials
        let result = try await request.vfsCall { () async throws(VFSError) in
            try await vfs.create(in: directory, name: name, kind: kind, mode: mode, attributes: attributes, credentials: credentials)
        }
        if !result.created, case .guarded = mode { throw .status(.exist) }
        replyCreated(request, result)
    }

    /// CREATE (RFC 1813 §3.3.8): UNCHECKED, GUARDED, or EXCLUSIVE with a verifier so a
    /// retransmitted create finds the file it made.
    func create(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let directory = try request.handle(write: true)
        let name = try request.name()
        let how = try request.uint32()
        var attributes = SetAttributes()
        let mode: CreateMode
        switch how {
        case 0:
            attributes = try request.sattr()
            mode = .unchecked
        case 1:
            attributes = try request.sattr()
            mode = .guarded
        case 2:
            let verifier = try request.fixed(8)
            mode = .exclusive(verifier: verifier.loadUnaligned(as: UInt64.self))
        default:
            throw .garbage
        }
        try await createObject(&request, directory: directory, name: name, kind: .regular, mode: mode, attributes: attributes)
    }

    /// MKDIR (RFC 1813 §3.3.9).
    func mkdir(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let directory = try request.handle(write: true)
        let name = try request.name()
        let attributes = try request.sattr()
        try await createObject(&request, directory: directory, name: name, kind: .directory, mode: .guarded, attributes: attributes)
    }

    /// SYMLINK (RFC 1813 §3.3.10).
    func symlink(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let directory = try request.handle(write: true)
        let name = try request.name()
        let attributes = try request.sattr()
        let target: String
        do { target = try request.arguments.string(maximum: NFS3.maxPath) } catch { throw .garbage }
        try await createObject(&request, directory: directory, name: name, kind: .symlink(target: target), mode: .guarded, attributes: attributes)
    }

    /// MKNOD (RFC 1813 §3.3.11): devices, sockets and FIFOs.
    func mknod(_ request: inout NFS3Request) async throws(NFS3Failure) {
        let directory = try request.handle(write: true)
        let name = try request.name()
        let type = try request.uint32()
        let kind: CreateKind
        let attributes: SetAttributes
        switch type {
        case 3, 4:
            attributes = try request.sattr()
            let major = try request.uint32()
            let minor = try request.uint32()
            kind = .device(type == 3 ? .blockDevice : .characterDevice, major: major, minor: minor)
        case 6:
            attributes = try request.sattr()
            kind = .socket
        case 7:
            attributes = try request.sattr()
            kind = .fifo
        case 1, 2, 5:
            throw .status(.badtype)
        default:
            throw .garbage
        }
        try await createObject(&request, directory: directory, name: name, kind: kind, mode: .guarded, attributes: attributes)
    }
}
