import COpenSSL

/// A handle as it leaves the server: an optional one-byte prefix (the NFS export id), the
/// handle, and its MAC. Stored inline (64 bytes), so signing allocates nothing.
public struct SignedHandle: Sendable {
    private var storage: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    public private(set) var count = 0

    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: storage) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    public var bytes: [UInt8] { withBytes { Array($0) } }

    fileprivate mutating func append(_ bytes: UnsafeRawBufferPointer) {
        let at = count
        count += bytes.count
        withUnsafeMutableBytes(of: &storage) { $0.baseAddress!.advanced(by: at).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
    }
}

/// Signs handles before they leave the server and checks them when they come back, so a client
/// cannot forge a handle for an object it was never given (lessons.md: unforgeable handles).
///
/// The MAC is SipHash-2-4-128 over the export id and the handle, truncated to `macLength`
/// bytes, keyed with a secret the server draws at start or loads from `server.state_dir`.
/// Comparison is constant-time.
public final class HandleSigner: Sendable {
    public static let macLength = 12
    /// Largest signed handle: `FileHandle.capacity + macLength` = 63 bytes, leaving one byte of
    /// NFSv3's 64 (FHSIZE3) for the export id the NFS layer puts in front.
    public static let signedCapacity = FileHandle.capacity + macLength

    private let sip: SipHash128

    public init(key: [UInt8]) {
        precondition(key.count >= 16, "handle signing key must be at least 16 bytes")
        sip = key.withUnsafeBytes { SipHash128(key: $0) }
    }

    /// A signer with a fresh random key.
    public static func random() -> HandleSigner {
        var key = [UInt8](repeating: 0, count: 32)
        let ok = key.withUnsafeMutableBytes { RAND_bytes($0.baseAddress!.assumingMemoryBound(to: UInt8.self), 32) }
        precondition(ok == 1, "RAND_bytes failed")
        return HandleSigner(key: key)
    }

    /// `prefix` (if any), the handle, and its MAC bound to `export` (so a handle from one export
    /// is refused on another).
    public func sign(_ handle: FileHandle, export: UInt32, prefix: UInt8? = nil) -> SignedHandle {
        var signed = SignedHandle()
        if var prefix { withUnsafeBytes(of: &prefix) { signed.append($0) } }
        handle.withBytes { signed.append($0) }
        var tag = mac(handle, export: export)
        withUnsafeBytes(of: &tag) { signed.append(UnsafeRawBufferPointer(rebasing: $0[0..<Self.macLength])) }
        return signed
    }

    /// The handle inside `signed` (handle bytes then MAC) if its MAC is right for `export`.
    public func verify(_ signed: UnsafeRawBufferPointer, export: UInt32) -> FileHandle? {
        guard signed.count > Self.macLength + 2, signed.count <= Self.signedCapacity else { return nil }
        let bodyCount = signed.count - Self.macLength
        guard let handle = FileHandle(bytes: UnsafeRawBufferPointer(rebasing: signed[0..<bodyCount])) else { return nil }
        var expected = mac(handle, export: export)
        // Constant time: no early exit on the first differing byte.
        let difference = withUnsafeBytes(of: &expected) { tag -> UInt8 in
            var difference: UInt8 = 0
            for i in 0..<Self.macLength { difference |= tag[i] ^ signed[bodyCount + i] }
            return difference
        }
        return difference == 0 ? handle : nil
    }

    public func verify(_ signed: [UInt8], export: UInt32) -> FileHandle? {
        signed.withUnsafeBytes { verify($0, export: export) }
    }

    /// The 16-byte tag (little-endian words) of export id + handle.
    private func mac(_ handle: FileHandle, export: UInt32) -> (UInt64, UInt64) {
        var message: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        let length = 4 + handle.count
        withUnsafeMutableBytes(of: &message) { raw in
            raw.storeBytes(of: export.littleEndian, toByteOffset: 0, as: UInt32.self)
            handle.withBytes { raw.baseAddress!.advanced(by: 4).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
        let (a, b) = withUnsafeBytes(of: &message) { sip.hash(UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
        return (a.littleEndian, b.littleEndian)
    }

    /// SipHash-2-4-128 of `message` under `key` (tests check the reference vectors).
    static func sipHash(key: [UInt8], message: [UInt8]) -> [UInt8] {
        let (a, b) = key.withUnsafeBytes { k in message.withUnsafeBytes { SipHash128(key: k).hash($0) } }
        var out = [UInt8]()
        withUnsafeBytes(of: a.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: b.littleEndian) { out.append(contentsOf: $0) }
        return out
    }
}
