import Glibc
import ONCRPC
import Runtime
import VFS

/// Why a procedure could not produce its normal result: bad arguments (GARBAGE_ARGS) or an
/// NFS status sent with the procedure's "resfail" body.
enum NFS3Failure: Error {
    case garbage
    case status(NFS3Status)

    init(_ error: VFSError) { self = .status(NFS3Status(error)) }
}

/// NFS version 3 (RFC 1813): the 22 procedures over the shared VFS.
public final class NFS3Program: RPCProgram, @unchecked Sendable {
    enum Procedure: UInt32, CaseIterable {
        case null = 0, getattr, setattr, lookup, access, readlink, read, write, create, mkdir, symlink, mknod,
             remove, rmdir, rename, link, readdir, readdirplus, fsstat, fsinfo, pathconf, commit

        /// XDR words after the status in this procedure's failure reply: each empty post_op_attr
        /// or pre_op_attr is one FALSE (RFC 1813 "resfail" arms).
        var failureWords: Int {
            switch self {
            case .null, .getattr: 0
            case .lookup, .access, .readlink, .read, .readdir, .readdirplus, .fsstat, .fsinfo, .pathconf: 1
            case .setattr, .write, .create, .mkdir, .symlink, .mknod, .remove, .rmdir, .commit: 2
            case .link: 3
            case .rename: 4
            }
        }

        var name: String { String(describing: self).uppercased() }

        var mutates: Bool {
            switch self {
            case .setattr, .write, .create, .mkdir, .symlink, .mknod, .remove, .rmdir, .rename, .link, .commit: true
            default: false
            }
        }
    }

    let vfs: VirtualFileSystem
    let exports: NFSExports
    /// Changes at every start so clients notice that unstable writes may be lost (RFC 1813 §3.3.7).
    let writeVerifier: UInt64

    public init(vfs: VirtualFileSystem, exports: NFSExports) {
        self.vfs = vfs
        self.exports = exports
        writeVerifier = UInt64.random(in: 1...UInt64.max)
        super.init(number: NFS3.program, versions: 3...3, name: "NFSv3", procedureNames: Procedure.allCases.map(\.name))
    }

    public override func hasProcedure(_ procedure: UInt32, version: UInt32) -> Bool {
        Procedure(rawValue: procedure) != nil
    }

    /// Everything that changes state goes through the duplicate-request cache (COMMIT too: it
    /// is harmless to repeat, but cheap to cache and keeps the verifier of the first answer).
    public override func isNonIdempotent(_ procedure: UInt32, version: UInt32) -> Bool {
        Procedure(rawValue: procedure)?.mutates ?? false
    }

    public override func serve(_ call: RPCCall, arguments: XDRDecoder, context: RPCContext) async {
        guard let procedure = Procedure(rawValue: call.procedure) else { return context.fail(.procedureUnavailable) }
        var request = NFS3Request(call: call, arguments: arguments, context: context, program: self)
        do throws(NFS3Failure) {
            switch procedure {
            case .null: context.reply(capacity: 0) { _ in }
            case .getattr: try await getattr(&request)
            case .setattr: try await setattr(&request)
            case .lookup: try await lookup(&request)
            case .access: try await access(&request)
            case .readlink: try await readlink(&request)
            case .read: try await read(&request)
            case .write: try await write(&request)
            case .create: try await create(&request)
            case .mkdir: try await mkdir(&request)
            case .symlink: try await symlink(&request)
            case .mknod: try await mknod(&request)
            case .remove: try await remove(&request)
            case .rmdir: try await rmdir(&request)
            case .rename: try await rename(&request)
            case .link: try await link(&request)
            case .readdir: try await readdir(&request, plus: false)
            case .readdirplus: try await readdir(&request, plus: true)
            case .fsstat: try await fsstat(&request)
            case .fsinfo: try await fsinfo(&request)
            case .pathconf: try await pathconf(&request)
            case .commit: try await commit(&request)
            }
        } catch {
            switch error {
            case .garbage:
                context.fail(.garbageArguments)
            case let .status(status):
                let words = procedure.failureWords
                context.reply(capacity: 4 + words * 4, failed: true) { encoder in
                    encoder.uint32(status.rawValue)
                    for _ in 0..<words { encoder.bool(false) }
                }
            }
        }
    }
}

/// One call being served: its arguments, caller and export.
struct NFS3Request {
    let call: RPCCall
    var arguments: XDRDecoder
    let context: RPCContext
    unowned let program: NFS3Program
    /// The export of the first handle decoded, and the caller's credentials under it.
    var export: NFSExport?
    var credentials = Credentials(uid: 65534, gid: 65534)

    init(call: RPCCall, arguments: XDRDecoder, context: RPCContext, program: NFS3Program) {
        self.call = call
        self.arguments = arguments
        self.context = context
        self.program = program
    }

    var vfs: VirtualFileSystem { program.vfs }

    mutating func uint32() throws(NFS3Failure) -> UInt32 {
        do { return try arguments.uint32() } catch { throw .garbage }
    }

    mutating func uint64() throws(NFS3Failure) -> UInt64 {
        do { return try arguments.uint64() } catch { throw .garbage }
    }

    mutating func bool() throws(NFS3Failure) -> Bool {
        do { return try arguments.bool() } catch { throw .garbage }
    }

    mutating func name() throws(NFS3Failure) -> String {
        do { return try NFS3XDR.name(&arguments) } catch { throw .garbage }
    }

    mutating func sattr() throws(NFS3Failure) -> SetAttributes {
        do { return try NFS3XDR.sattr(&arguments) } catch { throw .garbage }
    }

    mutating func opaque(maximum: Int) throws(NFS3Failure) -> UnsafeRawBufferPointer {
        do { return try arguments.opaque(maximum: maximum) } catch { throw .garbage }
    }

    mutating func fixed(_ count: Int) throws(NFS3Failure) -> UnsafeRawBufferPointer {
        do { return try arguments.fixedOpaque(count) } catch { throw .garbage }
    }

    /// Reads an nfs_fh3 and checks it: export known and admitting this client, MAC valid.
    /// `write` additionally refuses read-only exports with ROFS.
    mutating func handle(write: Bool = false) throws(NFS3Failure) -> FileHandle {
        let raw = try opaque(maximum: NFS3.maxHandleSize)
        switch program.exports.decode(raw) {
        case let .failure(status):
            throw .status(status)
        case let .success((export, handle)):
            guard export.admits(context.peer) else { throw .status(.acces) }
            if let current = self.export, current.id != export.id { throw .status(.xdev) }
            if write && export.readOnly { throw .status(.rofs) }
            self.export = export
            credentials = export.credentials(for: call.auth)
            return handle
        }
    }

    /// The wire handle for `handle` in the current export.
    func wire(_ handle: FileHandle) -> SignedHandle {
        program.exports.encode(handle, export: export!)
    }

    /// Runs a VFS call, turning its error into the NFS status.
    func vfsCall<T>(_ body: () async throws(VFSError) -> T) async throws(NFS3Failure) -> T {
        do { return try await body() } catch { throw NFS3Failure(error) }
    }

    /// Post-operation attributes when they can be had, nil otherwise (never fails the call).
    func attributes(_ handle: FileHandle) async -> Attributes? {
        try? await vfs.getattr(handle, mask: .nfs3)
    }
}
