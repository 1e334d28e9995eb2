import COpenSSL
import Glibc

/// Signs handles before they leave the server and checks them when they come back, so a client
/// cannot forge a handle for an object it was never given (lessons.md: unforgeable handles).
///
/// The MAC is HMAC-SHA256 over the export id and the handle, truncated to `macLength` bytes,
/// keyed with a secret the server draws at start (so handles of memfs, which live only as long
/// as the server, die with it) or loads from a file (so linux handles survive restarts).
public final class HandleSigner: @unchecked Sendable {
    public static let macLength = 12

    public static let signedCapacity = FileHandle.capacity + macLength

    private let key: [UInt8]

    public init(key: [UInt8]) {
        precondition(key.count >= 16, "handle signing key must be at least 16 bytes")
        self.key = key
    }

    /// A signer with a fresh random 32-byte key.
    public static func random() -> HandleSigner {
        var key = [UInt8](repeating: 0, count: 32)
        let ok = key.withUnsafeMutableBytes { RAND_bytes($0.baseAddress!.assumingMemoryBound(to: UInt8.self), 32) }
        precondition(ok == 1, "RAND_bytes failed")
        return HandleSigner(key: key)
    }

    /// The handle's bytes followed by its MAC (bound to `export`, so a handle from one export is
    /// refused on another).
    public func sign(_ handle: FileHandle, export: UInt32) -> [UInt8] {
        var out = handle.bytes
        out.append(contentsOf: mac(handle, export: export))
        return out
    }

    /// The handle inside `signed` if its MAC is right for `export`; nil for anything else.
    public func verify(_ signed: UnsafeRawBufferPointer, export: UInt32) -> FileHandle? {
        guard signed.count > Self.macLength + 2, signed.count <= Self.signedCapacity else { return nil }
        let bodyCount = signed.count - Self.macLength
        guard let handle = FileHandle(bytes: UnsafeRawBufferPointer(rebasing: signed[0..<bodyCount])) else { return nil }
        let expected = mac(handle, export: export)
        // Constant-time comparison: no early exit on the first differing byte.
        var difference: UInt8 = 0
        for i in 0..<Self.macLength { difference |= expected[i] ^ signed[bodyCount + i] }
        return difference == 0 ? handle : nil
    }

    public func verify(_ signed: [UInt8], export: UInt32) -> FileHandle? {
        signed.withUnsafeBytes { verify($0, export: export) }
    }

    private func mac(_ handle: FileHandle, export: UInt32) -> [UInt8] {
        var message = [UInt8]()
        message.reserveCapacity(4 + handle.count)
        withUnsafeBytes(of: export.littleEndian) { message.append(contentsOf: $0) }
        message.append(contentsOf: handle.bytes)
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 32
        key.withUnsafeBytes { k in
            message.withUnsafeBytes { m in
                digest.withUnsafeMutableBytes { d in
                    _ = HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), m.baseAddress!.assumingMemoryBound(to: UInt8.self), m.count,
                             d.baseAddress!.assumingMemoryBound(to: UInt8.self), &length)
                }
            }
        }
        return Array(digest[0..<Self.macLength])
    }
}
