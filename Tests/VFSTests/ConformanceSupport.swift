import Glibc
import LinuxFS
import MemFS
import PluginFS
import Runtime
import URingFS
import Testing
import VFS

/// The backends the conformance suite runs against.
enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memfs
    /// A host directory through blocking calls on delegation threads.
    case linux
    /// The same, with data through the serving loop's io_uring.
    case ioUring = "io_uring"
    /// The example plugin, loaded through the C ABI.
    case demofs

    var testDescription: String { rawValue }
}

/// A mounted backend plus a loop to run on: every conformance test body runs as a task on the
/// loop, as protocol code does.
final class Fixture: @unchecked Sendable {
    let group: LoopGroup
    let vfs: VirtualFileSystem
    let backend: Backend
    private var scratch: [String] = []

    static let user = Credentials(uid: 1000, gid: 1000)
    static let other = Credentials(uid: 2000, gid: 2000)

    /// `cacheTTL` (ns) replaces the mount's metadata-cache TTL (0: no cache); `vfs` replaces
    /// the default namespace (smaller caches).
    init(_ backend: Backend, threads: Int = 1, cacheTTL: UInt64? = nil, vfs: VirtualFileSystem = VirtualFileSystem()) throws {
        self.backend = backend
        self.vfs = vfs
        group = try LoopGroup(LoopGroupSettings(threads: threads, delegationThreads: 4, io: .ioUring, pollMode: .never, pinThreads: false))
        try vfs.mount("m", backend: makeBackend(name: "m"), cacheTTLNanoseconds: cacheTTL)
    }

    /// The host directory a linux or io_uring mount serves.
    var hostDirectory: String? { (vfs.mount(named: "m")?.backend as? LinuxFS)?.rootPath }

    func makeBackend(name: String) throws -> FileSystemBackend {
        switch backend {
        case .memfs:
            return MemFS()
        case .linux:
            return try LinuxFS(root: scratchDirectory(), delegation: group.delegation)
        case .ioUring:
            return try URingFS(root: scratchDirectory(), delegation: group.delegation)
        case .demofs:
            let directory = scratchDirectory()
            let config = directory + "/demofs.json"
            let file = fopen(config, "w")!
            fputs("{\"path\": \"\(directory)/data.log\", \"sync\": false}", file)
            fclose(file)
            return try PluginFS(name: "demofs", libraryPath: PluginTests.demofsLibrary(), configPath: config, delegation: group.delegation)
        }
    }

    /// A fresh directory the test owns, for backends that serve a host directory.
    func scratchDirectory() -> String {
        var template = Array("/tmp/dmanoel-vfs-XXXXXX".utf8CString)
        let path = String(cString: mkdtemp(&template)!)
        scratch.append(path)
        return path
    }

    var root: FileHandle { vfs.mount(named: "m")!.backend.rootHandle }

    /// Runs `body` on loop `index` and returns its result.
    func run<T: Sendable>(on index: Int = 0, _ body: @escaping @Sendable (VirtualFileSystem, FileHandle) async throws -> T) async throws -> T {
        let vfs = self.vfs, root = self.root
        return try await Task(executorPreference: group.loops[index]) { try await body(vfs, root) }.value
    }

    deinit {
        group.shutdown()
        for path in scratch { _ = system("rm -rf '\(path)'") }
    }
}

extension VirtualFileSystem {
    /// Creates a regular file with `contents` (test helper).
    @discardableResult
    func makeFile(_ directory: FileHandle, _ name: String, _ contents: [UInt8] = [], mode: UInt32 = 0o644, as credentials: Credentials = .root) async throws -> FileHandle {
        let created = try await create(in: directory, name: name, kind: .regular, mode: .guarded, attributes: SetAttributes(mode: mode), credentials: credentials)
        if !contents.isEmpty {
            _ = try await contents.withUnsafeBytesAsync { try await write(created.handle, offset: 0, data: $0, stability: .fileSync, credentials: credentials) }
        }
        return created.handle
    }

    func makeDirectory(_ directory: FileHandle, _ name: String, mode: UInt32 = 0o755, as credentials: Credentials = .root) async throws -> FileHandle {
        try await create(in: directory, name: name, kind: .directory, mode: .guarded, attributes: SetAttributes(mode: mode), credentials: credentials).handle
    }

    func contents(_ handle: FileHandle, offset: UInt64 = 0, count: Int = 1 << 20, as credentials: Credentials = .root) async throws -> [UInt8] {
        try await read(handle, offset: offset, count: count, credentials: credentials).bytes
    }

    /// Every name in a directory, paging `pageSize` entries at a time.
    func names(_ directory: FileHandle, pageSize: Int = 1000) async throws -> [String] {
        var names: [String] = []
        var cookie: UInt64 = 0, verifier: UInt64 = 0
        while true {
            let page = try await readdir(directory, cookie: cookie, verifier: verifier, maxEntries: pageSize, credentials: .root)
            names += page.entries.map(\.name)
            verifier = page.verifier
            if page.eof || page.entries.isEmpty { return names }
            cookie = page.entries.last!.cookie
        }
    }
}

extension Array where Element == UInt8 {
    /// An async-friendly withUnsafeBytes: the bytes are copied into a heap block that lives for
    /// the duration of `body`.
    func withUnsafeBytesAsync<R>(_ body: (UnsafeRawBufferPointer) async throws -> R) async rethrows -> R {
        let block = HeapBlock(capacity: count)
        if !isEmpty { withUnsafeBytes { block.base.copyMemory(from: $0.baseAddress!, byteCount: count) } }
        return try await body(UnsafeRawBufferPointer(start: block.base, count: count))
    }
}

func pattern(_ count: Int, seed: UInt8 = 1) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
}

/// Expects `body` to throw exactly `expected`.
func expectVFSError(_ expected: VFSError, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record("expected \(expected), but the call succeeded. \(comment?.rawValue ?? "")", sourceLocation: sourceLocation)
    } catch let error as VFSError {
        #expect(error == expected, comment, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(expected), got \(error)", sourceLocation: sourceLocation)
    }
}
