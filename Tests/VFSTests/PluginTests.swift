import Glibc
import PluginFS
import Runtime
import Testing
import VFS

/// External plugins through the C ABI, with the example plugin demofs
/// (`swift build --product dmanoel-NAS_vfs_demofs` builds it; `swift build --build-tests` too).
@Suite("Plugins (demofs through PluginFS)")
struct PluginTests {
    static let root = Credentials.root

    // MARK: Fixtures

    /// The built demofs library: next to the test bundle, else under the repository's .build.
    static func demofsLibrary() throws -> String {
        let name = "libdmanoel-NAS_vfs_demofs.so"
        var candidates: [String] = []
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if n > 0 {
            let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if let slash = exe.lastIndex(of: "/") { candidates.append(String(exe[..<slash]) + "/" + name) }
        }
        let repo = String(#filePath).split(separator: "/").dropLast(3).joined(separator: "/")
        for configuration in ["debug", "release"] { candidates.append("/\(repo)/.build/\(configuration)/\(name)") }
        guard let found = candidates.first(where: { access($0, R_OK) == 0 }) else {
            Issue.record("demofs is not built (looked in \(candidates)); run `swift build --product dmanoel-NAS_vfs_demofs`")
            throw VFSError.notFound
        }
        return found
    }

    /// A fresh directory with a demofs config naming a data file inside it.
    final class Scratch {
        let directory: String
        let config: String
        let data: String

        init(sync: Bool = false) {
            var template = Array("/tmp/demofs-test-XXXXXX".utf8CString)
            directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
            config = directory + "/demofs.json"
            data = directory + "/data.log"
            Self.write(config, "{\"path\": \"\(data)\", \"sync\": \(sync)}\n")
        }

        static func write(_ path: String, _ text: String) {
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            precondition(fd >= 0)
            _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
            close(fd)
        }

        deinit {
            for file in [config, data, directory + "/other.json", directory + "/empty.json"] { unlink(file) }
            rmdir(directory)
        }
    }

    /// A demofs instance mounted at /demofs in a new namespace.
    struct Mounted {
        let backend: PluginFS
        let vfs: VirtualFileSystem
        var root: FileHandle { backend.rootHandle }
    }

    static func mount(_ scratch: Scratch, _ pool: DelegationPool) throws -> Mounted {
        let backend = try PluginFS(name: "demofs", libraryPath: try demofsLibrary(), configPath: scratch.config, delegation: pool)
        let vfs = VirtualFileSystem()
        try vfs.mount("demofs", backend: backend)
        return Mounted(backend: backend, vfs: vfs)
    }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    static func write(_ vfs: VirtualFileSystem, _ file: FileHandle, _ data: [UInt8], at offset: UInt64 = 0,
                      stability: WriteStability = .fileSync, as credentials: Credentials = root) async throws -> WriteResult {
        // the bytes must outlive the await: copy them into a heap block
        let block = HeapBlock(capacity: data.count)
        if !data.isEmpty { data.withUnsafeBytes { block.base.copyMemory(from: $0.baseAddress!, byteCount: data.count) } }
        let result = try await vfs.write(file, offset: offset, data: UnsafeRawBufferPointer(start: block.base, count: data.count),
                                         stability: stability, credentials: credentials)
        withExtendedLifetime(block) {}
        return result
    }

    static func readAll(_ vfs: VirtualFileSystem, _ file: FileHandle, from offset: UInt64 = 0, count: Int = 1 << 20) async throws -> [UInt8] {
        try await vfs.read(file, offset: offset, count: count, credentials: root).bytes
    }

    static func names(_ vfs: VirtualFileSystem, _ directory: FileHandle, pageSize: Int = 1000) async throws -> [String] {
        var names: [String] = []
        var cookie: UInt64 = 0
        var verifier: UInt64 = 0
        while true {
            let page = try await vfs.readdir(directory, cookie: cookie, verifier: verifier, maxEntries: pageSize, credentials: root)
            names += page.entries.map(\.name)
            verifier = page.verifier
            if page.eof { return names }
            guard let last = page.entries.last else { return names }
            cookie = last.cookie
        }
    }

    static func file(_ vfs: VirtualFileSystem, _ directory: FileHandle, _ name: String) async throws -> FileHandle {
        try await vfs.lookup(directory, name: name, mask: [], credentials: root).0
    }

    // MARK: The round trip

    @Test("create, write (also past 5 GiB), read, link, rename, list, remove; all of it survives a restart")
    func roundTripAndRestart() async throws {
        let scratch = Scratch()
        let pool = try DelegationPool(threads: 2)
        defer { pool.shutdown() }
        let fiveGiB: UInt64 = 5 << 30

        var m = try Self.mount(scratch, pool)
        var vfs = m.vfs
        let root = m.root
        let docs = try await vfs.create(in: root, name: "docs", kind: .directory, mode: .guarded, credentials: Self.root)
        #expect(docs.created && docs.attributes.type == .directory && docs.attributes.nlink == 2)
        #expect(docs.directory.after.nlink == 3)
        let a = try await vfs.create(in: docs.handle, name: "a.txt", kind: .regular, mode: .guarded,
                                     attributes: SetAttributes(mode: 0o640), credentials: Self.root)
        #expect(a.attributes.mode == 0o640 && a.attributes.size == 0)

        let hello = Self.bytes("hello, demofs")
        let w1 = try await Self.write(vfs, a.handle, hello)
        #expect(w1.count == hello.count && w1.after.size == UInt64(hello.count))
        #expect(w1.after.change > w1.before.change)
        let w2 = try await Self.write(vfs, a.handle, Self.bytes("tail"), at: fiveGiB, stability: .unstable)
        #expect(w2.stability == .unstable && w2.after.size == fiveGiB + 4)
        _ = try await vfs.commit(a.handle)

        #expect(try await Self.readAll(vfs, a.handle) == hello + [UInt8](repeating: 0, count: (1 << 20) - hello.count))
        let end = try await vfs.read(a.handle, offset: fiveGiB - 4, count: 100, credentials: Self.root)
        #expect(end.bytes == [0, 0, 0, 0] + Self.bytes("tail") && end.eof)
        let hole = try await vfs.read(a.handle, offset: 3 << 30, count: 4096, credentials: Self.root)
        #expect(hole.bytes == [UInt8](repeating: 0, count: 4096) && !hole.eof)
        let past = try await vfs.read(a.handle, offset: fiveGiB + 100, count: 10, credentials: Self.root)
        #expect(past.count == 0 && past.eof)
        let attributes = try await vfs.getattr(a.handle, mask: .all)
        #expect(attributes.size == fiveGiB + 4 && attributes.spaceUsed < 1 << 20)
        // overwrite in the middle of the first extent
        _ = try await Self.write(vfs, a.handle, Self.bytes("HELLO"), at: 0)
        #expect(try await vfs.read(a.handle, offset: 0, count: hello.count, credentials: Self.root).bytes == Self.bytes("HELLO, demofs"))

        // symlink, hard link
        let link = try await vfs.create(in: root, name: "link", kind: .symlink(target: "docs/a.txt"), credentials: Self.root)
        #expect(link.attributes.type == .symlink && link.attributes.size == 10)
        #expect(try await vfs.readlink(link.handle, credentials: Self.root) == "docs/a.txt")
        let (linked, _) = try await vfs.link(a.handle, into: root, name: "hard", credentials: Self.root)
        #expect(linked.nlink == 2)

        // rename across directories, and rename replacing a file
        _ = try await vfs.rename(from: docs.handle, name: "a.txt", to: root, newName: "renamed.txt", credentials: Self.root)
        await #expect(throws: VFSError.notFound) { try await vfs.lookup(docs.handle, name: "a.txt", mask: [], credentials: Self.root) }
        let old = try await vfs.create(in: root, name: "old", kind: .regular, credentials: Self.root)
        _ = try await Self.write(vfs, old.handle, Self.bytes("OLD"))
        let new = try await vfs.create(in: root, name: "new", kind: .regular, credentials: Self.root)
        _ = try await Self.write(vfs, new.handle, Self.bytes("NEW"))
        _ = try await vfs.rename(from: root, name: "new", to: root, newName: "old", credentials: Self.root)
        await #expect(throws: VFSError.stale) { try await vfs.getattr(old.handle, mask: .all) }
        #expect(try await Self.readAll(vfs, try await Self.file(vfs, root, "old")) == Self.bytes("NEW"))

        // a directory that comes and goes, a removed link, an xattr
        _ = try await vfs.create(in: root, name: "gone", kind: .directory, credentials: Self.root)
        _ = try await vfs.rmdir(in: root, name: "gone", credentials: Self.root)
        _ = try await vfs.remove(in: root, name: "hard", credentials: Self.root)
        try await vfs.setxattr(a.handle, name: "user.colour", value: Self.bytes("blue"), credentials: Self.root)
        #expect(try await vfs.getxattr(a.handle, name: "user.colour", credentials: Self.root) == Self.bytes("blue"))

        // listing: "." and ".." excluded, paging by cookie gives the same names
        let expected: Set<String> = ["docs", "link", "renamed.txt", "old"]
        let listed = try await Self.names(vfs, root)
        #expect(Set(listed) == expected && listed.count == expected.count)
        #expect(try await Self.names(vfs, root, pageSize: 1) == listed)
        #expect(try await Self.names(vfs, docs.handle).isEmpty)
        let plus = try await vfs.readdir(root, maxEntries: 10, mask: .all, credentials: Self.root)
        #expect(plus.entries.allSatisfy { $0.handle != nil && $0.attributes?.fileid == $0.fileid })

        let stats = try await vfs.statfs(root)
        #expect(stats.totalBytes > 0 && stats.maxNameLength == 255)

        // what must survive
        let fileid = try await vfs.getattr(a.handle, mask: .all).fileid
        let changeBefore = try await vfs.getattr(a.handle, mask: .all).change
        let rootBefore = try await vfs.getattr(root, mask: .all)
        await m.backend.shutdown()

        // restart: a new instance replays the data file
        m = try Self.mount(scratch, pool)
        vfs = m.vfs
        #expect(m.root == root)
        #expect(Set(try await Self.names(vfs, m.root)) == expected)
        let again = try await Self.file(vfs, m.root, "renamed.txt")
        #expect(again == a.handle)   // handles are persistent
        let after = try await vfs.getattr(again, mask: .all)
        #expect(after.fileid == fileid && after.size == fiveGiB + 4 && after.mode == 0o640 && after.nlink == 1)
        #expect(after.change == changeBefore)
        let rootAfter = try await vfs.getattr(m.root, mask: .all)
        #expect(rootAfter.nlink == rootBefore.nlink && rootAfter.mtime == rootBefore.mtime && rootAfter.change == rootBefore.change)
        #expect(try await vfs.read(again, offset: 0, count: hello.count, credentials: Self.root).bytes == Self.bytes("HELLO, demofs"))
        #expect(try await vfs.read(again, offset: fiveGiB, count: 10, credentials: Self.root).bytes == Self.bytes("tail"))
        #expect(try await Self.readAll(vfs, try await Self.file(vfs, m.root, "old")) == Self.bytes("NEW"))
        #expect(try await vfs.readlink(try await Self.file(vfs, m.root, "link"), credentials: Self.root) == "docs/a.txt")
        #expect(try await vfs.getxattr(again, name: "user.colour", credentials: Self.root) == Self.bytes("blue"))
        await #expect(throws: VFSError.notFound) { try await vfs.lookup(m.root, name: "gone", mask: [], credentials: Self.root) }
        await #expect(throws: VFSError.notFound) { try await vfs.lookup(m.root, name: "hard", mask: [], credentials: Self.root) }

        // appends after a replay land after it, and survive the next restart
        _ = try await vfs.setattr(again, SetAttributes(size: 5), credentials: Self.root)
        _ = try await vfs.create(in: docs.handle, name: "later", kind: .regular, credentials: Self.root)
        await m.backend.shutdown()
        m = try Self.mount(scratch, pool)
        #expect(try await Self.readAll(m.vfs, again) == Self.bytes("HELLO"))
        #expect(try await Self.names(m.vfs, docs.handle) == ["later"])
        await m.backend.shutdown()
    }

    @Test("a torn record at the end of the data file is dropped on restart")
    func tornTail() async throws {
        let scratch = Scratch()
        let pool = try DelegationPool(threads: 2)
        defer { pool.shutdown() }
        var m = try Self.mount(scratch, pool)
        let f = try await m.vfs.create(in: m.root, name: "f", kind: .regular, credentials: Self.root)
        _ = try await Self.write(m.vfs, f.handle, Self.bytes("kept"))
        await m.backend.shutdown()

        var st = stat()
        stat(scratch.data, &st)
        let good = st.st_size
        // half a record: a valid magic and a length running past the end
        let fd = open(scratch.data, O_WRONLY | O_APPEND)
        let junk: [UInt8] = [0x44, 0x52, 0x45, 0x43, 0x00, 0x10, 0x00, 0x00, 1, 2, 3]
        _ = junk.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)

        m = try Self.mount(scratch, pool)
        #expect(try await Self.readAll(m.vfs, f.handle) == Self.bytes("kept"))
        stat(scratch.data, &st)
        #expect(st.st_size == good)
        await m.backend.shutdown()
    }

    // MARK: Semantics the VFS relies on

    @Test("error cases and create modes behave like memfs")
    func semantics() async throws {
        let scratch = Scratch()
        let pool = try DelegationPool(threads: 2)
        defer { pool.shutdown() }
        let m = try Self.mount(scratch, pool)
        let vfs = m.vfs
        let root = m.root

        let (parent, _) = try await vfs.lookup(root, name: "..", mask: [], credentials: Self.root)
        #expect(parent == root)
        let first = try await vfs.create(in: root, name: "x", kind: .regular, mode: .exclusive(verifier: 42), credentials: Self.root)
        let retry = try await vfs.create(in: root, name: "x", kind: .regular, mode: .exclusive(verifier: 42), credentials: Self.root)
        #expect(first.created && !retry.created && retry.handle == first.handle)
        await #expect(throws: VFSError.exists) {
            try await vfs.create(in: root, name: "x", kind: .regular, mode: .exclusive(verifier: 43), credentials: Self.root)
        }
        await #expect(throws: VFSError.exists) { try await vfs.create(in: root, name: "x", kind: .regular, mode: .guarded, credentials: Self.root) }
        _ = try await Self.write(vfs, first.handle, Self.bytes("data"))
        let reopened = try await vfs.create(in: root, name: "x", kind: .regular, mode: .unchecked, attributes: SetAttributes(size: 0), credentials: Self.root)
        #expect(!reopened.created && reopened.attributes.size == 0)

        let d = try await vfs.create(in: root, name: "d", kind: .directory, credentials: Self.root)
        _ = try await vfs.create(in: d.handle, name: "inside", kind: .regular, credentials: Self.root)
        await #expect(throws: VFSError.isDirectory) { try await vfs.create(in: root, name: "d", kind: .regular, credentials: Self.root) }
        await #expect(throws: VFSError.notEmpty) { try await vfs.rmdir(in: root, name: "d", credentials: Self.root) }
        await #expect(throws: VFSError.isDirectory) { try await vfs.remove(in: root, name: "d", credentials: Self.root) }
        await #expect(throws: VFSError.notDirectory) { try await vfs.rmdir(in: root, name: "x", credentials: Self.root) }
        await #expect(throws: VFSError.notDirectory) { try await vfs.lookup(first.handle, name: "y", mask: [], credentials: Self.root) }
        await #expect(throws: VFSError.notFound) { try await vfs.remove(in: root, name: "nope", credentials: Self.root) }
        await #expect(throws: VFSError.nameTooLong) {
            try await vfs.create(in: root, name: String(repeating: "n", count: 256), kind: .regular, credentials: Self.root)
        }
        await #expect(throws: VFSError.isDirectory) { try await vfs.read(d.handle, offset: 0, count: 1, credentials: Self.root) }
        await #expect(throws: VFSError.invalid) { try await vfs.rename(from: root, name: "d", to: d.handle, newName: "loop", credentials: Self.root) }
        await #expect(throws: VFSError.isDirectory) { try await vfs.rename(from: root, name: "x", to: root, newName: "d", credentials: Self.root) }
        _ = try await vfs.create(in: root, name: "e", kind: .directory, credentials: Self.root)
        await #expect(throws: VFSError.notEmpty) { try await vfs.rename(from: root, name: "e", to: root, newName: "d", credentials: Self.root) }
        await #expect(throws: VFSError.notDirectory) { try await vfs.rename(from: root, name: "e", to: root, newName: "x", credentials: Self.root) }
        let guardMismatch = Timespec(seconds: 1, nanoseconds: 0)
        await #expect(throws: VFSError.notSync) {
            try await vfs.setattr(first.handle, SetAttributes(mode: 0o600), guardCtime: guardMismatch, credentials: Self.root)
        }
        await #expect(throws: VFSError.badCookie) {
            try await vfs.readdir(root, cookie: 1_000_000, verifier: 0, maxEntries: 10, credentials: Self.root)
        }
        await m.backend.shutdown()
    }

    @Test("the VFS checks mode bits for plugins: a root-owned 0600 file is closed to uid 1000")
    func permissions() async throws {
        let scratch = Scratch()
        let pool = try DelegationPool(threads: 2)
        defer { pool.shutdown() }
        let m = try Self.mount(scratch, pool)
        #expect(!m.backend.checksPermissions)
        let secret = try await m.vfs.create(in: m.root, name: "secret", kind: .regular,
                                            attributes: SetAttributes(mode: 0o600, uid: 0, gid: 0), credentials: Self.root)
        _ = try await Self.write(m.vfs, secret.handle, Self.bytes("root only"))
        let user = Credentials(uid: 1000, gid: 1000)
        await #expect(throws: VFSError.accessDenied) { try await m.vfs.read(secret.handle, offset: 0, count: 10, credentials: user) }
        await #expect(throws: VFSError.accessDenied) { try await Self.write(m.vfs, secret.handle, Self.bytes("x"), as: user) }
        await #expect(throws: VFSError.notPermitted) {
            try await m.vfs.setattr(secret.handle, SetAttributes(mode: 0o666), credentials: user)
        }
        #expect(try await m.vfs.read(secret.handle, offset: 0, count: 10, credentials: Self.root).bytes == Self.bytes("root only"))
        await m.backend.shutdown()
    }

    @Test("concurrent writers on several files (the plugin locks internally)")
    func concurrentWriters() async throws {
        let scratch = Scratch()
        let pool = try DelegationPool(threads: 4)
        defer { pool.shutdown() }
        let m = try Self.mount(scratch, pool)
        var files: [FileHandle] = []
        for i in 0..<4 {
            files.append(try await m.vfs.create(in: m.root, name: "f\(i)", kind: .regular, credentials: Self.root).handle)
        }
        let vfs = m.vfs
        let chunk = 4096
        await withThrowingTaskGroup(of: Void.self) { group in
            for (i, file) in files.enumerated() {
                group.addTask {
                    for block in 0..<32 {
                        let data = [UInt8](repeating: UInt8(i * 32 + block), count: chunk)
                        _ = try await Self.write(vfs, file, data, at: UInt64(block * chunk), stability: .unstable)
                    }
                }
            }
        }
        for (i, file) in files.enumerated() {
            let data = try await Self.readAll(vfs, file)
            #expect(data.count == 32 * chunk)
            for block in 0..<32 {
                #expect(data[block * chunk..<(block + 1) * chunk].allSatisfy { $0 == UInt8(i * 32 + block) })
            }
        }
        await m.backend.shutdown()
    }

    // MARK: Loading errors

    @Test("a missing library, a library without the entry symbol, and a bad config each say what is wrong")
    func loadErrors() throws {
        let pool = try DelegationPool(threads: 1)
        defer { pool.shutdown() }
        let library = try Self.demofsLibrary()

        let missing = "/nonexistent/libnothing.so"
        #expect(throws: PluginError.libraryNotFound(plugin: "demofs", path: missing)) {
            try PluginFS(name: "demofs", libraryPath: missing, configPath: nil, delegation: pool)
        }
        #expect(PluginError.libraryNotFound(plugin: "demofs", path: missing).description == "plugin demofs: library /nonexistent/libnothing.so not found")

        #expect(throws: PluginError.missingSymbol(plugin: "libc", path: "libc.so.6")) {
            try PluginFS(name: "libc", libraryPath: "libc.so.6", configPath: nil, delegation: pool)
        }
        #expect(PluginError.missingSymbol(plugin: "libc", path: "libc.so.6").description.hasPrefix("plugin libc: no symbol dmanoel_vfs_plugin_entry"))
        #expect(PluginError.abiMismatch(plugin: "p", pluginVersion: 2, serverVersion: 1).description == "plugin p: ABI version 2, server supports 1")

        let scratch = Scratch()
        func initError(_ config: String?) -> String {
            do {
                _ = try PluginFS(name: "demofs", libraryPath: library, configPath: config, delegation: pool)
                return "loaded"
            } catch {
                guard case let .initFailed(plugin, message) = error, plugin == "demofs" else { return "\(error)" }
                #expect(error.description == "plugin demofs: init failed: \(message)")
                return message
            }
        }
        let noPath = scratch.directory + "/other.json"
        Scratch.write(noPath, "{\"sync\": true}")
        #expect(initError(noPath).contains("missing \"path\""))
        #expect(initError(nil).contains("no config file"))
        #expect(initError(scratch.directory + "/absent.json").contains("cannot read config"))
        let notJSON = scratch.directory + "/empty.json"
        Scratch.write(notJSON, "path = x")
        #expect(initError(notJSON).contains("not a JSON object"))

        // one data file, one instance
        let first = try PluginFS(name: "demofs", libraryPath: library, configPath: scratch.config, delegation: pool)
        #expect(initError(scratch.config).contains("in use"))
        _ = first
    }
}
