import ONCRPC
import Testing
import VFS
@testable import NFS4

@Suite("NFSv4 XDR: bitmaps and fattr4")
struct NFS4XDRTests {
    @Test("bitmaps set, test and encode bits across words, and decode what they encode")
    func bitmapRoundTrip() throws {
        let bitmap = Bitmap4([1, 4, 33, 55, 75])
        #expect(bitmap.words == [0b10010, 1 << 1 | 1 << 23, 1 << 11])
        #expect(bitmap.contains(33) && !bitmap.contains(32) && !bitmap.contains(200))
        #expect(bitmap.bits == [1, 4, 33, 55, 75])
        var writer = XDRWriter()
        bitmap.encode(&writer)
        #expect(writer.bytes == [0, 0, 0, 3, 0, 0, 0, 0x12, 0, 0x80, 0, 2, 0, 0, 0x08, 0])
        let decoded = try writer.bytes.withUnsafeBytes { raw in
            var decoder = XDRDecoder(raw)
            return try Bitmap4.decode(&decoder)
        }
        #expect(decoded == bitmap)
        #expect(bitmap.intersection(Bitmap4([4, 75, 80])).bits == [4, 75])
        #expect(bitmap.subtracting(Bitmap4([1, 55])).bits == [4, 33, 75])
    }

    @Test("a bitmap of more than 8 words is refused")
    func bitmapBound() {
        var writer = XDRWriter()
        writer.uint32(9)
        for _ in 0..<9 { writer.uint32(0) }
        #expect(throws: XDRError.self) {
            try writer.bytes.withUnsafeBytes { raw in
                var decoder = XDRDecoder(raw)
                _ = try Bitmap4.decode(&decoder)
            }
        }
    }

    func source() -> NFS4AttrSource {
        var a = Attributes()
        a.valid = [.type, .mode, .size, .fileid, .uid, .gid, .nlink, .mtime, .change]
        a.type = .regular
        a.mode = 0o100644 & 0o7777
        a.size = 1234
        a.fileid = 77
        a.uid = 1000
        a.gid = 100
        a.nlink = 1
        a.change = 9
        a.mtime = Timespec(seconds: 5, nanoseconds: 6)
        return NFS4AttrSource(attributes: a, fsid: (3, 4), handle: [1, 2, 3], mountedOnFileid: 77, statfs: nil, leaseSeconds: 90, minor: 1)
    }

    @Test("fattr4 answers the supported attributes asked for, in order, with numeric owners")
    func fattrEncoding() throws {
        var writer = XDRWriter()
        // 500 is unknown and space_total needs statfs (absent): both left out of the answer.
        let requested = Bitmap4([NFS4Attr.type, NFS4Attr.change, NFS4Attr.size, NFS4Attr.fsid, NFS4Attr.filehandle,
                                 NFS4Attr.mode, NFS4Attr.owner, NFS4Attr.ownerGroup, NFS4Attr.spaceTotal, NFS4Attr.timeModify, 200])
        NFS4Attributes.encode(&writer, requested: requested, source: source())
        try writer.bytes.withUnsafeBytes { raw in
            var d = XDRDecoder(raw)
            let answered = try Bitmap4.decode(&d)
            #expect(answered.bits == [NFS4Attr.type, NFS4Attr.change, NFS4Attr.size, NFS4Attr.fsid, NFS4Attr.filehandle,
                                      NFS4Attr.mode, NFS4Attr.owner, NFS4Attr.ownerGroup, NFS4Attr.timeModify])
            let length = Int(try d.uint32())
            #expect(length == d.remaining)
            #expect(try d.uint32() == 1)           // NF4REG
            #expect(try d.uint64() == 9)           // change
            #expect(try d.uint64() == 1234)        // size
            #expect(try d.uint64() == 3 && d.remaining > 0)
            #expect(try d.uint64() == 4)
            #expect(Array(try d.opaque(maximum: 128)) == [1, 2, 3])
            #expect(try d.uint32() == 0o644)
            #expect(try d.string(maximum: 64) == "1000")
            #expect(try d.string(maximum: 64) == "100")
            #expect(try d.int64() == 5 && d.remaining == 4)
            #expect(try d.uint32() == 6)
            #expect(d.isAtEnd)
        }
    }

    @Test("settable attributes decode; read-only ones, unknown ones and names as owners are refused")
    func settable() throws {
        func decode(_ bits: [Int], _ values: (inout XDRWriter) -> Void) -> Result<(SetAttributes, Bitmap4), NFS4Status> {
            var w = XDRWriter()
            Bitmap4(bits).encode(&w)
            var v = XDRWriter()
            values(&v)
            w.opaque(v.bytes)
            return w.bytes.withUnsafeBytes { raw in
                var d = XDRDecoder(raw)
                do throws(NFS4Error) {
                    return .success(try NFS4Attributes.decodeSettable(&d, minor: 1, identities: NFS4Identities(users: ["bob": (uid: 501, gid: 20)])))
                } catch {
                    if case let .status(s) = error { return .failure(s) }
                    return .failure(.serverfault)
                }
            }
        }
        let ok = decode([NFS4Attr.size, NFS4Attr.mode, NFS4Attr.owner, NFS4Attr.timeModifySet]) { v in
            v.uint64(10)
            v.uint32(0o600)
            v.string("42")
            v.uint32(1)
            v.int64(100)
            v.uint32(5)
        }
        let (changes, bits) = try ok.get()
        #expect(changes.size == 10 && changes.mode == 0o600 && changes.uid == 42)
        #expect(changes.mtime == .value(Timespec(seconds: 100, nanoseconds: 5)))
        #expect(bits.bits == [NFS4Attr.size, NFS4Attr.mode, NFS4Attr.owner, NFS4Attr.timeModifySet])
        #expect(decode([NFS4Attr.fileid]) { $0.uint64(1) }.failureValue == .inval)
        #expect(decode([199]) { _ in }.failureValue == .attrnotsupp)
        #expect(decode([NFS4Attr.owner]) { $0.string("alice@example") }.failureValue == .badowner)
        // Configured users may be named, with or without a domain.
        #expect(try decode([NFS4Attr.owner, NFS4Attr.ownerGroup]) { $0.string("bob@example.test"); $0.string("bob") }.get().0 == SetAttributes(uid: 501, gid: 20))
        #expect(decode([NFS4Attr.size]) { $0.uint32(1) }.failureValue == .badxdr)
    }

    @Test("operation names in the statistics follow the RFC's spelling")
    func names() {
        #expect(NFS4Program.statNames[1] == "COMPOUND")
        #expect(NFS4Program.statNames[Int(NFS4Op.openConfirm.rawValue)] == "OPEN_CONFIRM")
        #expect(NFS4Program.statNames[Int(NFS4Op.exchangeID.rawValue)] == "EXCHANGE_ID")
        #expect(NFS4Program.statNames[Int(NFS4Op.putrootfh.rawValue)] == "PUTROOTFH")
        #expect(NFS4Program.statNames.count == Int(NFS4Op.maxOp) + 1)
    }
}

extension Result {
    var failureValue: Failure? {
        if case let .failure(error) = self { return error }
        return nil
    }
}
