import Glibc
import Runtime
import Synchronization
import VFS

/// The `faults` mount module, a test facility: it wraps another backend and, per its rules,
/// makes calls fail with an errno (EIO, ENOSPC, ...) or hang on a delegation thread for a
/// while (a stuck system call), so tests can see what every protocol reports when the disk
/// misbehaves. Calls no rule fires on go to the wrapped backend unchanged.
///
/// Rule counters and the handle-to-path table sit behind one mutex: this module is for tests,
/// not for the hot path of a production mount.
public final class FaultFS: FileSystemBackend, @unchecked Sendable {
    public let inner: FileSystemBackend
    public let rules: [FaultRule]
    private let delegation: DelegationPool
    private let tracksPaths: Bool
    private let state: Mutex<State>

    private struct State {
        var calls: [UInt64]
        var bytes: [UInt64]
        var paths: [FileHandle: String] = [:]
        var fired: UInt64 = 0
    }

    /// Paths remembered for `path_prefix` rules; the table starts over when it is full.
    static let maxTrackedHandles = 100_000

    public init(wrapping inner: FileSystemBackend, rules: [FaultRule], delegation: DelegationPool) {
        self.inner = inner
        self.rules = rules
        self.delegation = delegation
        tracksPaths = rules.contains { $0.pathPrefix != nil }
        state = Mutex(State(calls: Array(repeating: 0, count: rules.count), bytes: Array(repeating: 0, count: rules.count)))
        super.init(moduleName: "faults")
    }

    /// How many times a rule has fired so far.
    public var firedCount: UInt64 { state.withLock { $0.fired } }

    public override func assignMountID(_ id: UInt16) {
        super.assignMountID(id)
        inner.assignMountID(id)
    }

    public override var checksPermissions: Bool { inner.checksPermissions }
    public override var metadataCachePolicy: MetadataCachePolicy? { inner.metadataCachePolicy }
    public override var rootHandle: FileHandle { inner.rootHandle }

    // MARK: Rules

    private func path(of handle: FileHandle) -> String? {
        guard tracksPaths else { return nil }
        if handle == inner.rootHandle { return "" }
        return state.withLock { $0.paths[handle] }
    }

    private func path(in directory: FileHandle, _ name: String) -> String? {
        guard tracksPaths, let parent = path(of: directory) else { return nil }
        return parent + "/" + name
    }

    private func remember(_ handle: FileHandle, at path: String?) {
        guard tracksPaths, let path else { return }
        state.withLock { state in
            if state.paths.count >= Self.maxTrackedHandles { state.paths.removeAll(keepingCapacity: true) }
            state.paths[handle] = path
        }
    }

    /// Applies the rules to one call: counts it, waits out the longest delay that fired on a
    /// delegation thread, then throws the first error that fired.
    private func intercept(_ operation: FaultOperation, path: String?, bytes: Int = 0) async throws(VFSError) {
        if rules.isEmpty { return }
        let (delay, error) = state.withLock { state -> (Int, VFSError?) in
            var delay = 0
            var error: VFSError?
            for (index, rule) in rules.enumerated() where rule.operation == .any || rule.operation == operation {
                guard rule.covers(path) else { continue }
                state.calls[index] += 1
                var fires = true
                if let n = rule.everyN, state.calls[index] % UInt64(n) != 0 { fires = false }
                if let limit = rule.afterBytes {
                    if state.bytes[index] + UInt64(bytes) <= limit {
                        fires = false
                        state.bytes[index] += UInt64(bytes)
                    }
                }
                guard fires else { continue }
                state.fired += 1
                delay = max(delay, rule.delayMilliseconds ?? 0)
                if error == nil { error = rule.error }
            }
            return (delay, error)
        }
        if delay > 0 {
            await delegation.run { _ = usleep(UInt32(delay) * 1000) }
        }
        if let error { throw error }
    }

    // MARK: Calls

    public override func getattr(_ handle: FileHandle, mask: AttributeMask) async throws(VFSError) -> Attributes {
        try await intercept(.getattr, path: path(of: handle))
        return try await inner.getattr(handle, mask: mask)
    }

    public override func lookup(_ directory: FileHandle, name: String, mask: AttributeMask, credentials: Credentials) async throws(VFSError) -> (FileHandle, Attributes) {
        let path = name == "." || name == ".." ? nil : path(in: directory, name)
        try await intercept(.lookup, path: path)
        let result = try await inner.lookup(directory, name: name, mask: mask, credentials: credentials)
        remember(result.0, at: path)
        return result
    }

    public override func setattr(_ handle: FileHandle, _ changes: SetAttributes, guardCtime: Timespec?, credentials: Credentials) async throws(VFSError) -> (before: Attributes, after: Attributes) {
        try await intercept(.setattr, path: path(of: handle))
        return try await inner.setattr(handle, changes, guardCtime: guardCtime, credentials: credentials)
    }

    public override func create(in directory: FileHandle, name: String, kind: CreateKind, mode: CreateMode, attributes: SetAttributes, credentials: Credentials) async throws(VFSError) -> CreateResult {
        let path = path(in: directory, name)
        try await intercept(.create, path: path)
        let result = try await inner.create(in: directory, name: name, kind: kind, mode: mode, attributes: attributes, credentials: credentials)
        remember(result.handle, at: path)
        return result
    }

    public override func read(_ handle: FileHandle, offset: UInt64, count: Int, credentials: Credentials) async throws(VFSError) -> ReadResult {
        try await intercept(.read, path: path(of: handle), bytes: count)
        return try await inner.read(handle, offset: offset, count: count, credentials: credentials)
    }

    public override func write(_ handle: FileHandle, offset: UInt64, data: UnsafeRawBufferPointer, stability: WriteStability, credentials: Credentials) async throws(VFSError) -> WriteResult {
        try await intercept(.write, path: path(of: handle), bytes: data.count)
        return try await inner.write(handle, offset: offset, data: data, stability: stability, credentials: credentials)
    }

    public override func commit(_ handle: FileHandle, offset: UInt64, count: UInt64) async throws(VFSError) -> Attributes {
        try await intercept(.commit, path: path(of: handle))
        return try await inner.commit(handle, offset: offset, count: count)
    }

    public override func readdir(_ directory: FileHandle, cookie: UInt64, verifier: UInt64, maxEntries: Int, mask: AttributeMask, credentials: Credentials) async throws(VFSError) -> ReadDirResult {
        let parent = path(of: directory)
        try await intercept(.readdir, path: parent)
        let result = try await inner.readdir(directory, cookie: cookie, verifier: verifier, maxEntries: maxEntries, mask: mask, credentials: credentials)
        if let parent {
            for entry in result.entries where entry.name != "." && entry.name != ".." {
                if let handle = entry.handle { remember(handle, at: parent + "/" + entry.name) }
            }
        }
        return result
    }

    public override func readlink(_ handle: FileHandle, credentials: Credentials) async throws(VFSError) -> String {
        try await intercept(.readlink, path: path(of: handle))
        return try await inner.readlink(handle, credentials: credentials)
    }

    public override func link(_ handle: FileHandle, into directory: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> (Attributes, DirectoryChange) {
        try await intercept(.link, path: path(in: directory, name))
        return try await inner.link(handle, into: directory, name: name, credentials: credentials)
    }

    public override func remove(in directory: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> DirectoryChange {
        try await intercept(.remove, path: path(in: directory, name))
        return try await inner.remove(in: directory, name: name, credentials: credentials)
    }

    public override func rmdir(in directory: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> DirectoryChange {
        try await intercept(.rmdir, path: path(in: directory, name))
        return try await inner.rmdir(in: directory, name: name, credentials: credentials)
    }

    public override func rename(from source: FileHandle, name: String, to target: FileHandle, newName: String, credentials: Credentials) async throws(VFSError) -> (from: DirectoryChange, to: DirectoryChange) {
        try await intercept(.rename, path: path(in: source, name))
        return try await inner.rename(from: source, name: name, to: target, newName: newName, credentials: credentials)
    }

    public override func statfs(_ handle: FileHandle) async throws(VFSError) -> FileSystemStats {
        try await intercept(.statfs, path: path(of: handle))
        return try await inner.statfs(handle)
    }

    public override func getxattr(_ handle: FileHandle, name: String, credentials: Credentials) async throws(VFSError) -> [UInt8] {
        try await intercept(.getxattr, path: path(of: handle))
        return try await inner.getxattr(handle, name: name, credentials: credentials)
    }

    public override func setxattr(_ handle: FileHandle, name: String, value: [UInt8], mode: XattrSetMode, credentials: Credentials) async throws(VFSError) {
        try await intercept(.setxattr, path: path(of: handle))
        try await inner.setxattr(handle, name: name, value: value, mode: mode, credentials: credentials)
    }

    public override func listxattr(_ handle: FileHandle, credentials: Credentials) async throws(VFSError) -> [String] {
        try await intercept(.listxattr, path: path(of: handle))
        return try await inner.listxattr(handle, credentials: credentials)
    }

    public override func removexattr(_ handle: FileHandle, name: String, credentials: Credentials) async throws(VFSError) {
        try await intercept(.removexattr, path: path(of: handle))
        try await inner.removexattr(handle, name: name, credentials: credentials)
    }

    public override func allocate(_ handle: FileHandle, offset: UInt64, length: UInt64, credentials: Credentials) async throws(VFSError) {
        try await intercept(.allocate, path: path(of: handle))
        try await inner.allocate(handle, offset: offset, length: length, credentials: credentials)
    }

    public override func deallocate(_ handle: FileHandle, offset: UInt64, length: UInt64, credentials: Credentials) async throws(VFSError) {
        try await intercept(.deallocate, path: path(of: handle))
        try await inner.deallocate(handle, offset: offset, length: length, credentials: credentials)
    }

    public override func seek(_ handle: FileHandle, offset: UInt64, target: SeekTarget) async throws(VFSError) -> (offset: UInt64, eof: Bool) {
        try await intercept(.seek, path: path(of: handle))
        return try await inner.seek(handle, offset: offset, target: target)
    }

    public override func copyRange(from source: FileHandle, offset sourceOffset: UInt64, to target: FileHandle, offset targetOffset: UInt64, count: UInt64, credentials: Credentials) async throws(VFSError) -> UInt64 {
        try await intercept(.copy, path: path(of: target), bytes: Int(clamping: count))
        return try await inner.copyRange(from: source, offset: sourceOffset, to: target, offset: targetOffset, count: count, credentials: credentials)
    }

    public override func shutdown() async {
        await inner.shutdown()
    }
}
