/// A filesystem module (memfs, linux, io_uring, a plugin). The VFS calls it through this base
/// class's vtable — one indirect call, no existential boxes — on the loop thread that received
/// the request; a backend that blocks hands the work to delegation threads and resumes there.
///
/// Every call carries the caller's credentials. Backends whose `checksPermissions` is false
/// rely on the VFS to check mode bits for them. Every mutation returns its directory's
/// attributes before and after, so protocols never need a second round trip for WCC data.
/// Default implementations throw `notSupported`.
open class FileSystemBackend: @unchecked Sendable {
    /// The module name as configured ("memfs", "linux", "io_uring", or a plugin's name).
    public let moduleName: String
    /// Set by the VFS when the backend is mounted (`assignMountID`); the first two bytes of
    /// every handle.
    public private(set) var mountID: UInt16 = 0

    public init(moduleName: String) {
        self.moduleName = moduleName
    }

    /// Called by the VFS when the backend is mounted. A backend that wraps another (the faults
    /// module) passes the id on, so the handles the inner backend makes route to the wrapper.
    open func assignMountID(_ id: UInt16) {
        mountID = id
    }

    /// True when the backend enforces permissions itself (the linux modules do, through the
    /// kernel with the caller's fsuid/fsgid).
    open var checksPermissions: Bool { false }

    open var rootHandle: FileHandle { preconditionFailure("\(moduleName) has no root handle") }

    /// Whether and how the VFS caches this backend's names and attributes (see
    /// `MetadataCachePolicy`); nil, the default, means not at all. A backend that already
    /// answers from memory (memfs) gains nothing from it; one that pays a system call or a
    /// thread hop per lookup (linux, io_uring) does. A cached backend must return, from
    /// every mutation, the attributes it changed (the directory's after-attributes, the
    /// object's new ones), and must have no way of changing but through its own calls other
    /// than the ones the TTL covers.
    open var metadataCachePolicy: MetadataCachePolicy? { nil }

    open func getattr(_ handle: FileHandle, mask: AttributeMask) async throws(VFSError) -> Attributes {
        throw .notSupported
    }

    /// Looks up `name` in `directory` ("." and ".." included; ".." of the root is the root).
    open func lookup(_ directory: FileHandle, name: String, mask: AttributeMask, credentials: Credentials) async throws(VFSError) -> (FileHandle, Attributes) {
        throw .notSupported
    }

    /// Applies `changes`; with `guardCtime` the change happens only if ctime still matches
    /// (`notSync` otherwise). Returns attributes before and after.
    open func setattr(_ handle: FileHandle, _ changes: SetAttributes, guardCtime: Timespec?, credentials: Credentials) async throws(VFSError) -> (before: Attributes, after: Attributes) {
        throw .notSupported
    }

    /// Creates (or, per `mode`, opens) `name` in `directory` with initial `attributes`
    /// (mode, owner, and for regular files a size of 0 to truncate an existing one).
    open func create(in directory: FileHandle, name: String, kind: CreateKind, mode: CreateMode, attributes: SetAttributes, credentials: Credentials) async throws(VFSError) -> CreateResult {
        throw .notSupported
    }

    open func read(_ handle: FileHandle, offset: UInt64, count: Int, credentials: Credentials) async throws(VFSError) -> ReadResult {
        throw .notSupported
    }

    /// Writes `data`, which stays valid only for the duration of the call.
    open func write(_ handle: FileHandle, offset: UInt64, data: UnsafeRawBufferPointer, stability: WriteStability, credentials: Credentials) async throws(VFSError) -> WriteResult {
        throw .notSupported
    }

    /// Makes earlier unstable writes durable; returns the file's attributes after.
    open func commit(_ handle: FileHandle, offset: UInt64, count: UInt64) async throws(VFSError) -> Attributes {
        throw .notSupported
    }

    /// Up to `maxEntries` entries after `cookie` (0 = from the start). A non-zero cookie needs
    /// the verifier of the listing it came from (`badCookie` if the directory cannot honour it).
    /// Entries carry attributes and handles when `mask` is not empty (READDIRPLUS).
    open func readdir(_ directory: FileHandle, cookie: UInt64, verifier: UInt64, maxEntries: Int, mask: AttributeMask, credentials: Credentials) async throws(VFSError) -> ReadDirResult {
        throw .notSupported
    }

    open func readlink(_ handle: FileHandle, credentials: Credentials) async throws(VFSError) -> String {
        throw .notSupported
    }

    /// Makes `name` in `directory` another link to `handle`; returns the file's new attributes.
    open func link(_ handle: FileHandle, into directory: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> (Attributes, DirectoryChange) {
        throw .notSupported
    }

    /// Removes a non-directory.
    open func remove(in directory: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> DirectoryChange {
        throw .notSupported
    }

    /// Removes an empty directory.
    open func rmdir(in directory: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> DirectoryChange {
        throw .notSupported
    }

    /// Renames, replacing a compatible target (file over file, empty directory over directory).
    open func rename(from source: FileHandle, name: String, to target: FileHandle, newName: String, credentials: Credentials) async throws(VFSError) -> (from: DirectoryChange, to: DirectoryChange) {
        throw .notSupported
    }

    open func statfs(_ handle: FileHandle) async throws(VFSError) -> FileSystemStats {
        throw .notSupported
    }

    open func getxattr(_ handle: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> [UInt8] {
        throw .notSupported
    }

    open func setxattr(_ handle: FileHandle, name: String, value: [UInt8], mode: XattrSetMode, credentials: Credentials) async throws(VFSError) {
        throw .notSupported
    }

    open func listxattr(_ handle: FileHandle, credentials: Credentials) async throws(VFSError) -> [String] {
        throw .notSupported
    }

    open func removexattr(_ handle: FileHandle, name: String, credentials: Credentials) async throws(VFSError) {
        throw .notSupported
    }

    /// Reserves space (fallocate without punching); extends the size if needed.
    open func allocate(_ handle: FileHandle, offset: UInt64, length: UInt64, credentials: Credentials) async throws(VFSError) {
        throw .notSupported
    }

    /// Punches a hole: the range reads as zeros afterwards, the size does not change.
    open func deallocate(_ handle: FileHandle, offset: UInt64, length: UInt64, credentials: Credentials) async throws(VFSError) {
        throw .notSupported
    }

    /// The next offset at or after `offset` that starts data or a hole (the end of file counts
    /// as a hole); `noData`-style end is reported as `(size, eof: true)`.
    open func seek(_ handle: FileHandle, offset: UInt64, target: SeekTarget) async throws(VFSError) -> (offset: UInt64, eof: Bool) {
        throw .notSupported
    }

    /// Copies `count` bytes between files of this backend; returns bytes copied.
    open func copyRange(from source: FileHandle, offset sourceOffset: UInt64, to target: FileHandle, offset targetOffset: UInt64, count: UInt64, credentials: Credentials) async throws(VFSError) -> UInt64 {
        throw .notSupported
    }

    /// Called once when the server stops.
    open func shutdown() async {}
}

/// Name rules every backend applies before touching a name (lessons.md: bound every name).
public enum NameRules {
    public static let maxNameLength = 255

    /// Throws for empty names, names with "/" or NUL, "." / ".." where a real entry is needed,
    /// and names longer than 255 bytes.
    public static func validateEntryName(_ name: String) throws(VFSError) {
        let utf8 = name.utf8
        if utf8.count > maxNameLength { throw .nameTooLong }
        if utf8.isEmpty || name == "." || name == ".." { throw .invalid }
        for byte in utf8 where byte == UInt8(ascii: "/") || byte == 0 { throw .invalid }
    }
}
