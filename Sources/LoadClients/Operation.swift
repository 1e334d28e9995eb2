import Runtime

/// The protocol-neutral operation vocabulary. Each client maps the names it understands onto
/// its protocol (S3: read = GET, write = PUT, stat = HEAD, readdir = LIST, remove = DELETE) and
/// answers the rest with `OpStatus.unsupported`.
public enum OpKind: String, CaseIterable, Sendable, Hashable {
    case read, write, create, stat, lookup, readdir, mkdir, rmdir, remove, commit, rename, setattr, lock
    case get, put, head, list, delete, multipart

    /// The name the S3 client gives the operation (nil: S3 has no such operation).
    public var s3Equivalent: OpKind? {
        switch self {
        case .read, .get: .get
        case .write, .put, .create: .put
        case .stat, .head, .lookup: .head
        case .readdir, .list: .list
        case .remove, .delete: .delete
        case .multipart: .multipart
        case .mkdir, .rmdir, .commit, .rename, .setattr, .lock: nil
        }
    }

    /// The name the NFS client gives the operation.
    public var fileEquivalent: OpKind {
        switch self {
        case .get: .read
        case .put: .write
        case .head: .stat
        case .list: .readdir
        case .delete: .remove
        default: self
        }
    }
}

/// One operation for a client: `path` is relative to the target's root (export or bucket),
/// components separated by "/".
public struct Operation: Sendable {
    public var kind: OpKind
    public var path: String
    public var offset: UInt64
    public var length: Int
    /// For writes: also COMMIT (NFS) after the write (sequential-write workloads ending a file).
    public var stable: Bool
    /// For rename: the new path.
    public var newPath: String

    public init(kind: OpKind, path: String, offset: UInt64 = 0, length: Int = 0, stable: Bool = false, newPath: String = "") {
        self.kind = kind
        self.path = path
        self.offset = offset
        self.length = length
        self.stable = stable
        self.newPath = newPath
    }
}

/// How an operation ended. 0 is success; positive values are the protocol's status (NFS3
/// status, HTTP status for S3); negative values are the client's own.
public struct OpStatus: Sendable, Equatable {
    public var code: Int32
    public init(_ code: Int32) { self.code = code }
    public static let ok = OpStatus(0)
    /// The connection failed or closed with the operation in flight.
    public static let connectionLost = OpStatus(-1)
    /// The reply could not be decoded.
    public static let badReply = OpStatus(-2)
    /// The client does not implement this operation.
    public static let unsupported = OpStatus(-3)
    /// An RPC-level rejection (not an NFS status).
    public static let rpcError = OpStatus(-4)
    /// A response's signature did not verify (SMB).
    public static let badSignature = OpStatus(-6)
    public var isOK: Bool { code == 0 }
    /// "No such file or directory" in any protocol (NFS 2, HTTP 404, SMB's two NOT_FOUNDs).
    public var isNotFound: Bool { code == 2 || code == 404 || code == Int32(bitPattern: 0xC000_0034) || code == Int32(bitPattern: 0xC000_003A) }
    /// "Already exists" (NFS 17, SMB OBJECT_NAME_COLLISION).
    public var isExists: Bool { code == 17 || code == Int32(bitPattern: 0xC000_0035) }
}

/// What one operation measured: monotonic nanoseconds for start, first reply byte and end.
public struct OpResult: Sendable {
    public var status: OpStatus
    public var bytes: Int
    public var start: UInt64
    public var firstByte: UInt64
    public var end: UInt64

    public init(status: OpStatus, bytes: Int, start: UInt64, firstByte: UInt64, end: UInt64) {
        self.status = status
        self.bytes = bytes
        self.start = start
        self.firstByte = firstByte
        self.end = end
    }
}

/// A client connection of any protocol: a class with overridable methods (a vtable, not an
/// existential), driven by the workload engine on the connection's loop thread.
open class LoadClient: @unchecked Sendable {
    public let loop: EventLoop
    public init(loop: EventLoop) { self.loop = loop }

    /// Performs `operation` and returns what it measured. Runs on `loop` (the task's executor).
    open func perform(_ operation: Operation) async -> OpResult {
        let now = monotonicNanoseconds()
        return OpResult(status: .unsupported, bytes: 0, start: now, firstByte: now, end: now)
    }

    /// Closes the files the client keeps open between operations (NFSv4 opens, SMB handles);
    /// the runner calls it when a phase ends.
    open func closeFiles() async {}

    /// Closes the connection.
    open func close() {}

    /// Why the connection ended, once it has: 0 for an orderly close by the peer, else an
    /// errno value; nil while it is open.
    open var closeError: Int32? { nil }
}

/// The bytes written by WRITE and PUT: one pattern buffer shared by every connection of a
/// loop, sent by reference (zero copy, like the server's replies).
public final class PayloadBuffer: @unchecked Sendable {
    public let bytes: UnsafeMutableRawBufferPointer

    public init(size: Int = 16 * 1024 * 1024) {
        bytes = .allocate(byteCount: size, alignment: 4096)
        var x: UInt32 = 0x9E37_79B9
        for i in 0..<size {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5
            bytes[i] = UInt8(truncatingIfNeeded: x)
        }
    }

    deinit { bytes.deallocate() }

    public func prefix(_ count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[0..<min(count, bytes.count)])
    }
}

/// Connects `handler` to `target` (or another `port` of its host) on `loop`; a failure names
/// the target and `what` was being connected.
func connect<Handler: ConnectionHandler & Sendable>(_ target: Target, port: Int? = nil, what: String = "", loop: EventLoop, handler: Handler) throws(LoadClientError) -> Connection {
    do {
        return try loop.connect(host: target.host, port: port ?? target.port) { _ in handler }
    } catch {
        throw LoadClientError("\(target): \(what)\(error)")
    }
}

public struct LoadClientError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
