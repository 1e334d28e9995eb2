import Glibc
@testable import VFS
import Testing

@Suite("File handles, signing and error mapping")
struct HandleTests {
    @Test("handles keep their mount id and body; oversized ones are refused")
    func layout() {
        let handle = FileHandle(mount: 7, words: 42, 99)
        #expect(handle.mountID == 7 && handle.word(0) == 42 && handle.word(1) == 99 && handle.count == 18)
        #expect(FileHandle(bytes: handle.bytes) == handle)
        #expect(FileHandle(bytes: [UInt8](repeating: 1, count: FileHandle.capacity + 1)) == nil)
        #expect(FileHandle(bytes: [1]) == nil)
    }

    @Test("signed handles verify, and tampering, another export or another key fail")
    func signing() {
        let signer = HandleSigner.random()
        let handle = FileHandle(mount: 3, words: 1234, 5678)
        let signed = signer.sign(handle, export: 1).bytes
        #expect(signed.count == handle.count + HandleSigner.macLength && signed.count <= 64)
        #expect(signer.verify(signed, export: 1) == handle)
        #expect(signer.verify(signed, export: 2) == nil)
        #expect(HandleSigner.random().verify(signed, export: 1) == nil)
        for i in signed.indices {
            var tampered = signed
            tampered[i] ^= 0x01
            #expect(signer.verify(tampered, export: 1) == nil, "flipping byte \(i) was not detected")
        }
        #expect(signer.verify(Array(signed.dropLast()), export: 1) == nil)
        #expect(signer.verify([UInt8](repeating: 0, count: 80), export: 1) == nil)
        let biggest = FileHandle(bytes: [UInt8](repeating: 9, count: FileHandle.capacity))!
        #expect(signer.sign(biggest, export: 1).bytes.count == HandleSigner.signedCapacity && HandleSigner.signedCapacity < 64)
    }

    @Test("errno values map both ways", arguments: [ENOENT, EEXIST, ENOTEMPTY, EISDIR, ENOTDIR, EXDEV, ENAMETOOLONG, EACCES, EPERM, EROFS, ENOSPC, EFBIG, ELOOP, ENODATA])
    func errnoMapping(_ code: Int32) {
        #expect(VFSError(errno: code).errno == code)
    }

    @Test("unknown errno values become io")
    func unknownErrno() {
        #expect(VFSError(errno: EHOSTDOWN) == .io)
    }

    @Test("POSIX permission rules")
    func permissionRules() {
        var attributes = Attributes()
        attributes.mode = 0o640
        attributes.uid = 10
        attributes.gid = 20
        #expect(Permissions.allowed([.read, .write], attributes: attributes, credentials: Credentials(uid: 10, gid: 1)) == [.read, .write])
        #expect(Permissions.allowed([.read, .write], attributes: attributes, credentials: Credentials(uid: 11, gid: 1, groups: [20])) == [.read])
        #expect(Permissions.allowed([.read], attributes: attributes, credentials: Credentials(uid: 11, gid: 1)) == [])
        #expect(Permissions.allowed([.read, .write, .execute], attributes: attributes, credentials: .root) == [.read, .write])
        #expect(throws: VFSError.accessDenied) { try Permissions.check(.write, attributes: attributes, credentials: Credentials(uid: 11, gid: 20)) }
    }
}

@Suite("SipHash-2-4-128")
struct SipHashTests {
    /// Reference vectors from the SipHash authors (vectors.h, 128-bit output, key 00..0f,
    /// message 00..n-1).
    @Test("matches the reference vectors")
    func referenceVectors() {
        let key = (0..<16).map { UInt8($0) }
        let expected: [Int: String] = [
            0: "a3817f04ba25a8e66df67214c7550293",
            1: "da87c1d86b99af44347659119b22fc45",
            7: "a1f1ebbed8dbc153c0b84aa61ff08239",
            8: "3b62a9ba6258f5610f83e264f31497b4",
            15: "5493e99933b0a8117e08ec0f97cfc3d9",
            63: "5150d1772f50834a503e069a973fbd7c",
        ]
        for (length, hex) in expected {
            let tag = HandleSigner.sipHash(key: key, message: (0..<length).map { UInt8($0) })
            #expect(tag.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() == hex, "length \(length)")
        }
    }
}
