import VFS
@testable import SMB
import Testing

@Suite("SMB wire: bounds-checked reading, SPNEGO, wildcards, file times")
struct SMBWireTests {
    @Test("Reads past the end throw INVALID_PARAMETER instead of reading out of bounds")
    func readerBounds() {
        let bytes: [UInt8] = [1, 2, 3, 4, 5]
        bytes.withUnsafeBytes { raw in
            let reader = SMBReader(raw)
            #expect((try? reader.u32(at: 0)) == 0x0403_0201)
            #expect(throws: NTStatus.invalidParameter) { try reader.u32(at: 2) }
            #expect(throws: NTStatus.invalidParameter) { try reader.slice(at: 4, count: 2) }
            #expect(throws: NTStatus.invalidParameter) { try reader.slice(at: Int.max - 1, count: 4) }
            #expect(throws: NTStatus.invalidParameter) { try reader.utf16(at: 0, count: 3) }
        }
    }

    @Test("SPNEGO: the negotiate hint parses back, and truncated or lying DER is refused")
    func spnego() throws {
        let hint = SPNEGO.negotiateHint()
        let parsed = try SPNEGO.parse(hint)
        #expect(parsed.offersNTLM && parsed.wrapped && parsed.mechToken == nil)
        let response = SPNEGO.response(.acceptIncomplete, token: Array("NTLMSSP".utf8) + [0, 2, 0, 0, 0], includeMechanism: true)
        #expect(try SPNEGO.parse(response).mechToken?.count == 12)
        for cut in 1..<hint.count {
            _ = try? SPNEGO.parse(Array(hint[0..<cut]))  // must not crash
        }
        #expect(throws: NTStatus.invalidParameter) { try SPNEGO.parse([0x60, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]) }
        #expect(throws: NTStatus.invalidParameter) { try SPNEGO.parse([0xA1, 0x7F, 0x30]) }
    }

    @Test("Wildcards: * ? and the DOS forms, without case")
    func wildcards() {
        #expect(WildcardPattern("*").matches("anything"))
        #expect(WildcardPattern("*.TXT").matches("notes.txt"))
        #expect(!WildcardPattern("*.txt").matches("notes.txt.bak"))
        #expect(WildcardPattern("a?c").matches("abc"))
        #expect(!WildcardPattern("a?c").matches("abbc"))
        #expect(WildcardPattern("File").matches("file"))
        #expect(WildcardPattern("<.*").matches("x.y"))
    }

    @Test("FILETIME round-trips and 0 / -1 mean unchanged")
    func fileTimes() {
        let time = Timespec(seconds: 1_700_000_000, nanoseconds: 123_456_700)
        #expect(FileTime.timespec(FileTime.from(time)) == time)
        #expect(FileTime.timespec(0) == nil)
        #expect(FileTime.timespec(UInt64.max) == nil)
    }
}

@Suite("SMB byte-range lock geometry")
struct SMBLockGeometryTests {
    /// smbtorture smb2.lock.zerobytelength's table: a zero-byte lock at 10 against others.
    @Test("Zero-byte locks collide only with ranges that start before them and reach them")
    func zeroByteTable() {
        func collide(_ a: (UInt64, UInt64), _ b: (UInt64, UInt64)) -> Bool {
            ByteRange(offset: a.0, length: a.1).overlaps(ByteRange(offset: b.0, length: b.1))
        }
        let cases: [((UInt64, UInt64), (UInt64, UInt64), Bool)] = [
            ((10, 0), (10, 0), false), ((10, 0), (9, 1), false), ((10, 0), (10, 1), false), ((10, 0), (11, 1), false),
            ((10, 0), (9, 2), true), ((10, 0), (10, 2), false), ((10, 0), (9, 3), true), ((0, 0), (0, 0), false),
            ((100, 10), (102, 0), true), ((100, 10), (109, 1), true), ((100, 10), (110, 5), false),
            ((UInt64.max, 1), (UInt64.max, 1), true), ((UInt64.max - 1, 1), (UInt64.max, 1), false),
        ]
        for (first, second, expected) in cases {
            #expect(collide(first, second) == expected, "\(first) vs \(second)")
            #expect(collide(second, first) == expected, "\(second) vs \(first)")
        }
    }
}
