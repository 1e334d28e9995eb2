import MemFS
import NFS3
import ONCRPC
import Runtime
import Testing
import VFS
@testable import NFS4

/// An NFSv4 program over one memfs export, "/memfs", run on a loop as the server does.
final class CompoundFixture: @unchecked Sendable {
    let group: LoopGroup
    let program: NFS4Program

    init() throws {
        group = try LoopGroup(LoopGroupSettings(threads: 1, delegationThreads: 1, io: .ioUring, pollMode: .never, pinThreads: false))
        let vfs = VirtualFileSystem()
        try vfs.mount("m", backend: MemFS())
        let root = vfs.mount(named: "m")!.backend.rootHandle
        let exports = NFSExports([NFSExport(id: 1, name: "/memfs", root: root)], signer: HandleSigner.random())
        program = NFS4Program(vfs: vfs, exports: exports)
    }

    deinit { group.shutdown() }

    /// Runs a COMPOUND of `ops` (operation number, encoded arguments) and decodes the reply.
    func compound(_ ops: [(UInt32, (inout XDRWriter) -> Void)], tag: String = "t", minor: UInt32 = 0) async throws -> CompoundReply {
        var w = XDRWriter()
        w.string(tag)
        w.uint32(minor)
        w.uint32(UInt32(ops.count))
        for (op, encode) in ops {
            w.uint32(op)
            encode(&w)
        }
        let arguments = w.bytes
        let program = self.program
        let reply = await Task(executorPreference: group.loops[0]) { await program.runCompound(arguments) }.value
        return try CompoundReply(try #require(reply))
    }
}

struct CompoundReply {
    var status: UInt32
    var tag: String
    /// (operation, status, the rest of the reply from this result's body on).
    var results: [(op: UInt32, status: UInt32)] = []
    var bytes: [UInt8]
    var bodyOffset: Int

    init(_ bytes: [UInt8]) throws {
        self.bytes = bytes
        var status: UInt32 = 0, tag = "", count: UInt32 = 0, offset = 0
        var first: (UInt32, UInt32)?
        try bytes.withUnsafeBytes { raw in
            var d = XDRDecoder(raw)
            status = try d.uint32()
            tag = try d.string(maximum: 1024)
            count = try d.uint32()
            offset = d.offset
            if count > 0 { first = (try d.uint32(), try d.uint32()) }
        }
        self.status = status
        self.tag = tag
        bodyOffset = offset
        if let first { results.append(first) }
        _ = count
    }
}

func none(_ w: inout XDRWriter) {}
func name(_ text: String) -> (inout XDRWriter) -> Void { { $0.string(text) } }

@Suite("NFSv4 COMPOUND engine")
struct NFS4CompoundTests {
    @Test("a minor version past 2 is refused with the tag echoed and no results")
    func minorVersion() async throws {
        let fixture = try CompoundFixture()
        let reply = try await fixture.compound([(NFS4Op.putrootfh.rawValue, none)], tag: "echo-me", minor: 3)
        #expect(reply.status == NFS4Status.minorVersMismatch.rawValue)
        #expect(reply.tag == "echo-me")
        #expect(reply.results.isEmpty)
    }

    @Test("the compound stops at the first failing operation and returns its status")
    func stopsAtFailure() async throws {
        let fixture = try CompoundFixture()
        let reply = try await fixture.compound([(24, none), (15, name("absent")), (10, none)])
        #expect(reply.status == NFS4Status.noent.rawValue)
        // status, tag "t", 2 results: PUTROOTFH OK, LOOKUP NOENT, and nothing after.
        #expect(reply.bytes.count == reply.bodyOffset + 16)
        #expect(Array(reply.bytes[reply.bodyOffset - 4..<reply.bodyOffset]) == [0, 0, 0, 2])
    }

    @Test("no current filehandle, RESTOREFH without SAVEFH, an unknown operation")
    func filehandleErrors() async throws {
        let fixture = try CompoundFixture()
        #expect(try await fixture.compound([(10, none)]).status == NFS4Status.nofilehandle.rawValue)
        #expect(try await fixture.compound([(24, none), (31, none)]).status == NFS4Status.restorefh.rawValue)
        let illegal = try await fixture.compound([(24, none), (7777, none)])
        #expect(illegal.status == NFS4Status.opIllegal.rawValue)
        // The result of the unknown operation is labelled OP_ILLEGAL.
        #expect(Array(illegal.bytes.suffix(8)) == [0, 0, 0x27, 0x3C, 0, 0, 0x27, 0x3C])
    }

    @Test("SAVEFH and RESTOREFH carry the filehandle across PUTROOTFH; LOOKUPP leaves the export")
    func savedFilehandle() async throws {
        let fixture = try CompoundFixture()
        let direct = try await fixture.compound([(24, none), (15, name("memfs")), (10, none)])
        let restored = try await fixture.compound([(24, none), (15, name("memfs")), (32, none), (24, none), (31, none), (10, none)])
        #expect(direct.status == 0 && restored.status == 0)
        #expect(Array(direct.bytes.suffix(40)) == Array(restored.bytes.suffix(40)))
        let up = try await fixture.compound([(24, none), (15, name("memfs")), (16, none), (10, none)])
        let root = try await fixture.compound([(24, none), (10, none)])
        #expect(Array(up.bytes.suffix(12)) == Array(root.bytes.suffix(12)))
    }

    @Test("more operations than the limit: RESOURCE in 4.0, TOO_MANY_OPS in 4.1")
    func operationLimit() async throws {
        let fixture = try CompoundFixture()
        let many = Array(repeating: (UInt32(24), { (w: inout XDRWriter) in }), count: NFS4Compound.maxOperations + 1)
        #expect(try await fixture.compound(many).status == NFS4Status.resource.rawValue)
        #expect(try await fixture.compound(many, minor: 1).status == NFS4Status.tooManyOps.rawValue)
    }

    @Test("4.1 compounds must start with SEQUENCE, and SEQUENCE must come first")
    func sequenceRules() async throws {
        let fixture = try CompoundFixture()
        #expect(try await fixture.compound([(24, none)], minor: 1).status == NFS4Status.opNotInSession.rawValue)
        let seq: (inout XDRWriter) -> Void = { w in
            for _ in 0..<4 { w.uint32(0) }
            w.uint32(1); w.uint32(0); w.uint32(0); w.bool(false)
        }
        #expect(try await fixture.compound([(53, seq)], minor: 1).status == NFS4Status.badsession.rawValue)
    }

    @Test("the pseudo filesystem joins export paths and marks junctions")
    func pseudoFS() {
        let root = FileHandle(mount: 1, words: 1)
        let pseudo = NFS4PseudoFS(exports: [NFSExport(id: 1, name: "/a/b", root: root), NFSExport(id: 2, name: "/c", root: root)])
        #expect(pseudo.nodes[0].children.keys.sorted() == ["a", "c"])
        let a = pseudo.nodes[0].children["a"]!
        #expect(pseudo.nodes[a].export == nil)
        let b = pseudo.nodes[a].children["b"]!
        #expect(pseudo.nodes[b].export?.id == 1 && pseudo.nodes[b].parent == a)
        #expect(pseudo.junction(of: NFSExport(id: 2, name: "/c", root: root)) == pseudo.nodes[0].children["c"])
    }

    @Test("a session slot runs a new seqid, replays the same one, refuses others")
    func slotTable() {
        let client = NFS4Client(id: 1, ownerID: [1], verifier: 1, minor: 1, now: 0)
        let session = NFS4Session(id: SessionID(high: 1, low: 2), client: client, slotCount: 2, maxOperations: 16,
                                  maxRequestSize: 1 << 20, maxResponseSize: 1 << 20, maxResponseSizeCached: 1 << 16)
        guard case .execute = session.begin(slot: 0, seqid: 1) else { Issue.record("first request not run"); return }
        guard case .error(.delay) = session.begin(slot: 0, seqid: 1) else { Issue.record("retry while running"); return }
        session.finish(slot: 0, reply: [1, 2, 3])
        guard case let .replay(bytes) = session.begin(slot: 0, seqid: 1), bytes == [1, 2, 3] else { Issue.record("no replay"); return }
        guard case .error(.seqMisordered) = session.begin(slot: 0, seqid: 5) else { Issue.record("misordered"); return }
        guard case .error(.badslot) = session.begin(slot: 2, seqid: 1) else { Issue.record("bad slot"); return }
        guard case .execute = session.begin(slot: 1, seqid: 1) else { Issue.record("slots are independent"); return }
        session.finish(slot: 1, reply: nil)
        guard case .error(.retryUncachedRep) = session.begin(slot: 1, seqid: 1) else { Issue.record("uncached"); return }
    }
}

@Suite("NFSv4 state through the COMPOUND engine")
struct NFS4StateEngineTests {
    static func bytes(_ reply: CompoundReply, at offset: Int, count: Int) -> [UInt8] {
        Array(reply.bytes[(reply.bodyOffset + offset)..<(reply.bodyOffset + offset + count)])
    }

    @Test("4.0: SETCLIENTID, OPEN (create), OPEN_CONFIRM, WRITE and READ back, CLOSE; stale and bad ids refused")
    func openWriteRead() async throws {
        let fixture = try CompoundFixture()
        // SETCLIENTID: op, status, clientid (8), confirm verifier (8).
        let set = try await fixture.compound([(35, { w in
            w.uint64(7)
            w.string("unit-test-client")
            w.uint32(0x4000_0000); w.string("tcp"); w.string("127.0.0.1.0.0"); w.uint32(1)
        })])
        #expect(set.status == 0)
        let clientid = Self.bytes(set, at: 8, count: 8)
        let verifier = Self.bytes(set, at: 16, count: 8)
        #expect(try await fixture.compound([(36, { w in w.fixedOpaque(clientid); w.fixedOpaque(verifier) })]).status == 0)
        // A verifier that does not match is a stale client id.
        #expect(try await fixture.compound([(36, { w in w.fixedOpaque(clientid); w.uint64(1) })]).status == NFS4Status.staleClientid.rawValue)

        let open: (inout XDRWriter) -> Void = { w in
            w.uint32(1); w.uint32(3); w.uint32(0)            // seqid, access both, deny none
            w.fixedOpaque(clientid); w.string("owner")
            w.uint32(1); w.uint32(0); w.uint32(0); w.uint32(0) // CREATE, UNCHECKED, empty fattr4
            w.uint32(0); w.string("f")                         // CLAIM_NULL "f"
        }
        let opened = try await fixture.compound([(24, none), (15, name("memfs")), (18, open)])
        #expect(opened.status == 0)
        // PUTROOTFH and LOOKUP results (8 bytes each), then OPEN's op and status, then the stateid.
        let stateid = Self.bytes(opened, at: 24, count: 16)
        let rflags = Self.bytes(opened, at: 40 + 20, count: 4)
        #expect(rflags[3] & 2 != 0)  // OPEN4_RESULT_CONFIRM: a new open-owner

        let confirmed = try await fixture.compound([(24, none), (15, name("memfs")), (15, name("f")),
                                                    (20, { w in w.fixedOpaque(stateid); w.uint32(2) })])
        #expect(confirmed.status == 0)
        let current = Self.bytes(confirmed, at: 32, count: 16)
        #expect(current[3] == 2)  // the stateid's seqid moved on

        let io = try await fixture.compound([(24, none), (15, name("memfs")), (15, name("f")),
                                             (38, { w in w.fixedOpaque(current); w.uint64(0); w.uint32(2); w.string("hello") }),
                                             (25, { w in w.fixedOpaque(current); w.uint64(0); w.uint32(100) })])
        #expect(io.status == 0)
        // READ is last: eof TRUE, length 5, "hello" and padding.
        #expect(Array(io.bytes.suffix(16)) == [0, 0, 0, 1, 0, 0, 0, 5] + Array("hello".utf8) + [0, 0, 0])

        // The old generation of the stateid, and a made-up one, are refused.
        let old = try await fixture.compound([(24, none), (15, name("memfs")), (15, name("f")),
                                              (25, { w in w.fixedOpaque(stateid); w.uint64(0); w.uint32(1) })])
        #expect(old.status == NFS4Status.oldStateid.rawValue)
        var forged = current
        forged[15] ^= 0xFF
        let bad = try await fixture.compound([(24, none), (15, name("memfs")), (15, name("f")),
                                              (25, { w in w.fixedOpaque(forged); w.uint64(0); w.uint32(1) })])
        #expect(bad.status == NFS4Status.badStateid.rawValue)

        let closed = try await fixture.compound([(24, none), (15, name("memfs")), (15, name("f")),
                                                 (4, { w in w.uint32(3); w.fixedOpaque(current) })])
        #expect(closed.status == 0)
        #expect(fixture.program.vfs.fileStates.count == 0)  // the VFS open is gone with it
    }
}
