import NFS3
import ONCRPC
import Runtime
import VFS

/// NFSv4 (RFC 7530, RFC 8881, and the RFC 7862 operations clients send): program 100003
/// version 4, served on the NFS port beside NFSv3. Procedure 1, COMPOUND, carries the
/// operations; NFS4Compound runs them.
public final class NFS4Program: RPCProgram, @unchecked Sendable {
    let vfs: VirtualFileSystem
    let exports: NFSExports
    let pseudo: NFS4PseudoFS
    let state: NFS4State
    let writeVerifier: UInt64
    let identities: NFS4Identities
    /// Open stateids one client may hold (`server.nfs4_max_opens_per_client`).
    let maxOpensPerClient: Int
    /// Statistics names: 0 NULL, 1 COMPOUND, then each operation at its own number.
    static let statNames: [String] = {
        var names = ["NULL", "COMPOUND", "-"]
        for op in 3...NFS4Op.maxOp { names.append(NFS4Op(rawValue: op).map { operationName($0) } ?? "OP\(op)") }
        return names
    }()

    /// `openConfirm` → "OPEN_CONFIRM", `exchangeID` → "EXCHANGE_ID" (the RFC's names).
    static func operationName(_ op: NFS4Op) -> String {
        var name = ""
        var previousLower = false
        for character in "\(op)" {
            if character.isUppercase && previousLower { name.append("_") }
            previousLower = character.isLowercase
            name.append(character)
        }
        return name.uppercased()
    }

    public init(vfs: VirtualFileSystem, exports: NFSExports, leaseSeconds: UInt32 = 90, graceSeconds: UInt32 = 0,
                identities: NFS4Identities = NFS4Identities(), maxOpensPerClient: Int = 16384) {
        self.identities = identities
        self.maxOpensPerClient = maxOpensPerClient
        self.vfs = vfs
        self.exports = exports
        pseudo = NFS4PseudoFS(exports: exports.exports)
        state = NFS4State(leaseSeconds: leaseSeconds, graceSeconds: graceSeconds)
        writeVerifier = UInt64.random(in: 1...UInt64.max)
        super.init(number: NFS3.program, versions: 4...4, name: "NFSv4", procedureNames: Self.statNames)
    }

    public override func hasProcedure(_ procedure: UInt32, version: UInt32) -> Bool { procedure <= 1 }

    public override func serve(_ call: RPCCall, arguments: XDRDecoder, context: RPCContext) async {
        let compound = NFS4Compound(program: self, call: call, arguments: arguments, sink: .rpc(context), peer: context.peer)
        await compound.run()
    }

    /// Runs one COMPOUND whose arguments are `arguments` and returns the COMPOUND4res bytes
    /// (nil for undecodable arguments): the engine without a connection, for tests.
    public func runCompound(_ arguments: [UInt8], auth: RPCAuth = .sys(uid: 0, gid: 0, groups: [], machine: "test"),
                            peer: String = "127.0.0.1:900") async -> [UInt8]? {
        let capture = NFS4Capture()
        let call = RPCCall(xid: 1, program: NFS3.program, version: 4, procedure: 1, auth: auth)
        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: max(arguments.count, 1), alignment: 8)
        defer { raw.deallocate() }
        raw.copyBytes(from: arguments)
        let compound = NFS4Compound(program: self, call: call, arguments: XDRDecoder(UnsafeRawBufferPointer(rebasing: raw[0..<arguments.count])),
                                    sink: .capture(capture), peer: peer)
        await compound.run()
        return capture.garbage ? nil : capture.body
    }
}

/// NFSv4 operation numbers.
public enum NFS4Op: UInt32 {
    case access = 3, close, commit, create, delegpurge, delegreturn, getattr, getfh, link, lock, lockt, locku,
         lookup, lookupp, nverify, open, openattr, openConfirm, openDowngrade, putfh, putpubfh, putrootfh, read,
         readdir, readlink, remove, rename, renew, restorefh, savefh, secinfo, setattr, setclientid,
         setclientidConfirm, verify, write, releaseLockowner
    case backchannelCtl = 40, bindConnToSession, exchangeID, createSession, destroySession, freeStateid,
         getDirDelegation, getdeviceinfo, getdevicelist, layoutcommit, layoutget, layoutreturn, secinfoNoName,
         sequence, setSSV, testStateid, wantDelegation, destroyClientid, reclaimComplete
    case allocate = 59, copy, copyNotify, deallocate, ioAdvise, layouterror, layoutstats, offloadCancel,
         offloadStatus, readPlus, seek, writeSame, clone
    /// RFC 8276 (extended attributes), minor version 2.
    case getxattr = 72, setxattr, listxattrs, removexattr

    static let maxOp: UInt32 = 75
    static let illegal: UInt32 = 10044
}
