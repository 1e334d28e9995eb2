import Glibc
import LinuxFS
import Runtime
import Testing
import URingFS
import VFS

/// The modules that serve a host directory, and the in-memory handle table of the linux one.
enum HostBackend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case linux
    case uring = "io_uring"
    case linuxTable = "linux, handle table"

    var testDescription: String { rawValue }
}

/// A scratch tree: `base/share` is served, `base/outside` holds what must stay out of reach.
final class HostFixture: @unchecked Sendable {
    let group: LoopGroup
    let vfs = VirtualFileSystem()
    let kind: HostBackend
    let base: String
    let share: String
    let outside: String
    private(set) var backend: LinuxFS!

    static let user = Credentials(uid: 1000, gid: 1000)

    init(_ kind: HostBackend) throws {
        self.kind = kind
        group = try LoopGroup(LoopGroupSettings(threads: 1, delegationThreads: 2, io: .ioUring, pollMode: .never, pinThreads: false))
        var template = Array("/tmp/dmanoel-escape-XXXXXX".utf8CString)
        base = String(cString: mkdtemp(&template)!)
        share = base + "/share"
        outside = base + "/outside"
        mkdir(share, 0o755)
        mkdir(outside, 0o755)
        Self.writeFile(outside + "/secret", "top secret")
        backend = try makeBackend()
        try vfs.mount("host", backend: backend)
    }

    /// Another instance of the same module on the same directory (a server restart).
    func makeBackend() throws -> LinuxFS {
        switch kind {
        case .linux: try LinuxFS(root: share, delegation: group.delegation)
        case .uring: try URingFS(root: share, delegation: group.delegation)
        case .linuxTable: try LinuxFS(root: share, delegation: group.delegation, handleTable: true)
        }
    }

    var root: FileHandle { backend.rootHandle }

    /// Runs `body` as a task on the loop, as protocol code does.
    func run<T: Sendable>(_ body: @escaping @Sendable (VirtualFileSystem, FileHandle) async throws -> T) async throws -> T {
        let vfs = self.vfs, root = self.root
        return try await Task(executorPreference: group.loops[0]) { try await body(vfs, root) }.value
    }

    /// A handle naming `path` the way this backend encodes handles, wherever `path` is.
    func forgedHandle(_ path: String) -> FileHandle {
        switch kind {
        case .linux, .uring:
            return LinuxFS.kernelHandle(forPath: path, mount: backend.mountID)!
        case .linuxTable:
            // Table handles are numbers: one the server never gave out.
            var body: [UInt8] = [2]
            withUnsafeBytes(of: UInt64(999_999).littleEndian) { body.append(contentsOf: $0) }
            return body.withUnsafeBytes { FileHandle(mount: backend.mountID, body: $0)! }
        }
    }

    static func writeFile(_ path: String, _ text: String) {
        let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o644)
        precondition(fd >= 0)
        _ = text.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    static func owner(_ path: String) -> (UInt32, UInt32)? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return (st.st_uid, st.st_gid)
    }

    deinit {
        backend = nil
        group.shutdown()
        _ = system("rm -rf '\(base)'")
    }
}

@Suite("linux and io_uring modules: no escape from the share, credentials per request")
struct LinuxEscapeTests {
    @Test("'..' never leaves the root; names with '/' are refused", arguments: HostBackend.allCases)
    func dotDot(_ kind: HostBackend) async throws {
        let fixture = try HostFixture(kind)
        try await fixture.run { vfs, root in
            let (up, attributes) = try await vfs.lookup(root, name: "..", mask: .all, credentials: .root)
            #expect(up == root)
            #expect(attributes.type == .directory)
            let rootAttributes = try await vfs.getattr(root, mask: [.fileid])
            #expect(attributes.fileid == rootAttributes.fileid)
            let sub = try await vfs.makeDirectory(root, "sub")
            let deeper = try await vfs.makeDirectory(sub, "deeper")
            #expect(try await vfs.lookup(deeper, name: "..", mask: [], credentials: .root).0 == sub)
            #expect(try await vfs.lookup(sub, name: "..", mask: [], credentials: .root).0 == root)
            #expect(try await vfs.lookup(try await vfs.lookup(sub, name: "..", mask: [], credentials: .root).0, name: "..", mask: [], credentials: .root).0 == root)
            for name in ["../outside", "../outside/secret", "a/../..", "/etc"] {
                await expectVFSError(.invalid) { _ = try await vfs.lookup(root, name: name, mask: [], credentials: .root) }
                await expectVFSError(.invalid) { _ = try await vfs.makeFile(root, name) }
            }
            await expectVFSError(.invalid) { _ = try await vfs.rename(from: root, name: "sub", to: root, newName: "../moved", credentials: .root) }
            // The backend refuses the same names when called directly, without the VFS in front.
            let backend = fixture.backend!
            await expectVFSError(.invalid) { _ = try await backend.lookup(root, name: "../outside", mask: [], credentials: .root) }
            await expectVFSError(.invalid) { _ = try await backend.create(in: root, name: "../x", kind: .regular, mode: .guarded, attributes: SetAttributes(), credentials: .root) }
            await expectVFSError(.invalid) { _ = try await backend.remove(in: root, name: "../outside/secret", credentials: .root) }
            // A listing never shows "." or "..".
            #expect(try await vfs.names(root) == ["sub"])
        }
        #expect(HostFixture.exists(fixture.outside + "/secret"))
        #expect(!HostFixture.exists(fixture.base + "/x") && !HostFixture.exists(fixture.base + "/moved"))
    }

    @Test("symlinks are objects, never followed: '/etc', '../../..', absolute inside the tree", arguments: HostBackend.allCases)
    func symlinks(_ kind: HostBackend) async throws {
        let fixture = try HostFixture(kind)
        mkdir(fixture.share + "/inside", 0o755)
        HostFixture.writeFile(fixture.share + "/inside/file", "inside")
        symlink("/etc", fixture.share + "/etc")
        symlink("../../..", fixture.share + "/up")
        symlink(fixture.share + "/inside", fixture.share + "/abs")
        symlink(fixture.outside, fixture.share + "/out")
        try await fixture.run { vfs, root in
            for (name, target) in [("etc", "/etc"), ("up", "../../.."), ("abs", fixture.share + "/inside"), ("out", fixture.outside)] {
                let (link, attributes) = try await vfs.lookup(root, name: name, mask: .all, credentials: .root)
                #expect(attributes.type == .symlink, "\(name) must be the link itself")
                #expect(try await vfs.readlink(link, credentials: .root) == target)
                // Used as a directory, a link is not one: nothing behind it is reachable.
                await expectVFSError(.notDirectory) { _ = try await vfs.lookup(link, name: "passwd", mask: [], credentials: .root) }
                await expectVFSError(.notDirectory) { _ = try await vfs.lookup(link, name: "..", mask: [], credentials: .root) }
                await expectVFSError(.notDirectory) { _ = try await vfs.lookup(link, name: "file", mask: [], credentials: .root) }
                await expectVFSError(.notDirectory) { _ = try await vfs.readdir(link, maxEntries: 10, credentials: .root) }
                await expectVFSError(.notDirectory) { _ = try await vfs.makeFile(link, "planted") }
                await expectVFSError(.notDirectory) { _ = try await vfs.makeDirectory(link, "planted") }
                await expectVFSError(.notDirectory) { _ = try await vfs.remove(in: link, name: "secret", credentials: .root) }
                await expectVFSError(.invalid) { _ = try await vfs.read(link, offset: 0, count: 100, credentials: .root) }
                await expectVFSError(.invalid) { _ = try await vfs.setattr(link, SetAttributes(size: 0), credentials: .root) }
            }
            // Path resolution in the namespace stops at the link as well.
            await expectVFSError(.notDirectory) { _ = try await vfs.resolve("/host/etc/passwd") }
            await expectVFSError(.notDirectory) { _ = try await vfs.resolve("/host/out/secret") }
            // READDIRPLUS reports the links themselves.
            let page = try await vfs.readdir(root, maxEntries: 100, mask: [.type, .size], credentials: .root)
            for entry in page.entries where entry.name != "inside" {
                #expect(entry.type == .symlink && entry.attributes?.type == .symlink)
            }
            // Exclusive, guarded and unchecked creates over a link never write through it.
            await expectVFSError(.exists) { _ = try await vfs.create(in: root, name: "out", kind: .regular, mode: .unchecked, attributes: SetAttributes(size: 0), credentials: .root) }
            await expectVFSError(.exists) { _ = try await vfs.makeFile(root, "etc") }
        }
        #expect(HostFixture.exists(fixture.outside + "/secret"))
        #expect(!HostFixture.exists(fixture.outside + "/planted"))
        var st = stat()
        #expect(stat(fixture.outside + "/secret", &st) == 0 && st.st_size == 10, "the outside file must be untouched")
    }

    @Test("renames and links cannot move anything out of the tree", arguments: HostBackend.allCases)
    func renameAndLink(_ kind: HostBackend) async throws {
        let fixture = try HostFixture(kind)
        symlink(fixture.outside, fixture.share + "/out")
        let forged = fixture.forgedHandle(fixture.outside)
        try await fixture.run { vfs, root in
            let file = try await vfs.makeFile(root, "f", [1, 2, 3])
            let (out, _) = try await vfs.lookup(root, name: "out", mask: [], credentials: .root)
            // Through a symlinked directory pointing outside.
            await expectVFSError(.notDirectory) { _ = try await vfs.rename(from: root, name: "f", to: out, newName: "stolen", credentials: .root) }
            await expectVFSError(.notDirectory) { _ = try await vfs.link(file, into: out, name: "stolen", credentials: .root) }
            await expectVFSError(.notDirectory) { _ = try await vfs.rename(from: out, name: "secret", to: root, newName: "taken", credentials: .root) }
            // Into (or out of) a directory outside the root named by a forged handle.
            let refused: Set<VFSError> = [.stale, .badHandle]
            for attempt in 0..<5 {
                do {
                    switch attempt {
                    case 0: _ = try await vfs.rename(from: root, name: "f", to: forged, newName: "stolen", credentials: .root)
                    case 1: _ = try await vfs.link(file, into: forged, name: "stolen", credentials: .root)
                    case 2: _ = try await vfs.rename(from: forged, name: "secret", to: root, newName: "taken", credentials: .root)
                    case 3: _ = try await vfs.makeFile(forged, "planted")
                    default: _ = try await vfs.remove(in: forged, name: "secret", credentials: .root)
                    }
                    Issue.record("attempt \(attempt) through a forged handle succeeded")
                } catch let error as VFSError {
                    #expect(refused.contains(error), "attempt \(attempt): \(error)")
                }
            }
            // Still here, still intact.
            #expect(try await vfs.contents(file) == [1, 2, 3])
            #expect(try await vfs.names(root).sorted() == ["f", "out"])
        }
        #expect(!HostFixture.exists(fixture.outside + "/stolen"))
        #expect(!HostFixture.exists(fixture.outside + "/planted"))
        #expect(HostFixture.exists(fixture.outside + "/secret"))
        #expect(!HostFixture.exists(fixture.share + "/taken"))
    }

    @Test("forged handles for objects outside the root are stale", arguments: HostBackend.allCases)
    func forgedHandles(_ kind: HostBackend) async throws {
        let fixture = try HostFixture(kind)
        let targets = ["/etc/passwd", "/etc", fixture.outside + "/secret", fixture.outside, fixture.base, "/"]
        let refused: Set<VFSError> = [.stale, .badHandle]
        try await fixture.run { vfs, root in
            var handles = targets.compactMap { path -> FileHandle? in
                fixture.kind == .linuxTable ? nil : LinuxFS.kernelHandle(forPath: path, mount: root.mountID)
            }
            if fixture.kind == .linuxTable {
                // Table handles are numbers: one never given out, and one of the wrong length.
                handles.append(fixture.forgedHandle(fixture.outside))
                handles.append(FileHandle(mount: root.mountID, words: 999_999))
                // A kernel handle is refused outright in table mode.
                handles.append(LinuxFS.kernelHandle(forPath: "/etc/passwd", mount: root.mountID)!)
            } else {
                #expect(handles.count == targets.count)
            }
            // Garbage after a valid format byte, and an empty body.
            handles.append(FileHandle(mount: root.mountID, body: UnsafeRawBufferPointer(start: nil, count: 0))!)
            handles.append([UInt8]([1, 1, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0]).withUnsafeBytes { FileHandle(mount: root.mountID, body: $0)! })
            for handle in handles {
                for operation in 0..<6 {
                    do {
                        switch operation {
                        case 0: _ = try await vfs.getattr(handle, mask: .all)
                        case 1: _ = try await vfs.read(handle, offset: 0, count: 4096, credentials: .root)
                        case 2: _ = try await vfs.lookup(handle, name: "secret", mask: .all, credentials: .root)
                        case 3: _ = try await vfs.readdir(handle, maxEntries: 100, credentials: .root)
                        case 4: _ = try await vfs.getattr(handle, mask: [])
                        default: _ = try await vfs.listxattr(handle, credentials: .root)
                        }
                        Issue.record("operation \(operation) on a forged handle \(handle) succeeded")
                    } catch let error as VFSError {
                        #expect(refused.contains(error), "operation \(operation) on \(handle): \(error)")
                    }
                }
            }
            // The share's own root, named by its kernel handle, is fine.
            if fixture.kind != .linuxTable {
                let own = LinuxFS.kernelHandle(forPath: fixture.share, mount: root.mountID)!
                #expect(own == root)
                _ = try await vfs.getattr(own, mask: .all)
            }
        }
    }

    @Test("a mount below the root is not entered", arguments: [HostBackend.linux])
    func mountsBelowRoot(_ kind: HostBackend) async throws {
        let fixture = try HostFixture(kind)
        let point = fixture.share + "/mnt"
        mkdir(point, 0o755)
        // Needs CAP_SYS_ADMIN; where mounting is not possible there is nothing to test.
        guard mount("dmanoel-test", point, "tmpfs", 0, "size=1m") == 0 else { return }
        defer { umount2(point, 2) }  // MNT_DETACH
        try await fixture.run { vfs, root in
            await expectVFSError(.crossDevice) { _ = try await vfs.lookup(root, name: "mnt", mask: [], credentials: .root) }
            let page = try await vfs.readdir(root, maxEntries: 10, mask: .all, credentials: .root)
            #expect(page.entries.map(\.name) == ["mnt"])
            #expect(page.entries.first?.handle == nil, "no handle for a mount point below the root")
        }
        // The mount itself as a share: a whole filesystem, where every handle it decodes is inside.
        let whole = try LinuxFS(root: point, delegation: fixture.group.delegation)
        #expect(whole.servesWholeFilesystem && !fixture.backend.servesWholeFilesystem)
        let vfs = VirtualFileSystem()
        try vfs.mount("whole", backend: whole)
        let file = try await Task(executorPreference: fixture.group.loops[0]) { () async throws -> FileHandle in
            let dir = try await vfs.makeDirectory(whole.rootHandle, "d")
            let file = try await vfs.makeFile(dir, "f", [3])
            await expectVFSError(.stale) { _ = try await vfs.getattr(LinuxFS.kernelHandle(forPath: "/etc/passwd", mount: whole.mountID)!, mask: .all) }
            await expectVFSError(.stale) { _ = try await vfs.getattr(LinuxFS.kernelHandle(forPath: fixture.outside, mount: whole.mountID)!, mask: .all) }
            return file
        }.value
        let again = try LinuxFS(root: point, delegation: fixture.group.delegation)
        let vfs2 = VirtualFileSystem()
        try vfs2.mount("whole", backend: again)
        #expect(try await Task(executorPreference: fixture.group.loops[0]) { try await vfs2.contents(file) }.value == [3])
    }

    @Test("xattrs: only the user namespace, and the server's own are hidden", arguments: HostBackend.allCases)
    func xattrNamespaces(_ kind: HostBackend) async throws {
        let fixture = try HostFixture(kind)
        try await fixture.run { vfs, root in
            let created = try await vfs.create(in: root, name: "x", kind: .regular, mode: .exclusive(verifier: 42), credentials: .root)
            #expect(try await vfs.listxattr(created.handle, credentials: .root) == [])
            await expectVFSError(.notSupported) { try await vfs.setxattr(created.handle, name: "trusted.evil", value: [1], credentials: HostFixture.user) }
            await expectVFSError(.notSupported) { try await vfs.setxattr(created.handle, name: "security.capability", value: [1], credentials: .root) }
            await expectVFSError(.accessDenied) { _ = try await vfs.getxattr(created.handle, name: "user.dmanoel.verifier", credentials: .root) }
            await expectVFSError(.accessDenied) { try await vfs.setxattr(created.handle, name: "user.dmanoel.verifier", value: [0], credentials: .root) }
            let retry = try await vfs.create(in: root, name: "x", kind: .regular, mode: .exclusive(verifier: 42), credentials: .root)
            #expect(!retry.created && retry.handle == created.handle)
        }
    }

    @Test("credentials: the kernel checks the caller's ids and groups; files are owned by the caller", arguments: HostBackend.allCases)
    func credentials(_ kind: HostBackend) async throws {
        let fixture = try HostFixture(kind)
        let groupsBefore = Self.processGroups()
        try await fixture.run { vfs, root in
            let secret = try await vfs.makeFile(root, "secret", [42], mode: 0o600)
            await expectVFSError(.accessDenied) { _ = try await vfs.read(secret, offset: 0, count: 1, credentials: HostFixture.user) }
            await expectVFSError(.accessDenied) {
                _ = try await [1].withUnsafeBytesAsync { try await vfs.write(secret, offset: 0, data: $0, stability: .unstable, credentials: HostFixture.user) }
            }
            await expectVFSError(.accessDenied) { _ = try await vfs.setattr(secret, SetAttributes(size: 0), credentials: HostFixture.user) }
            await expectVFSError(.notPermitted) { _ = try await vfs.setattr(secret, SetAttributes(mode: 0o666), credentials: HostFixture.user) }
            await expectVFSError(.accessDenied) { _ = try await vfs.makeFile(root, "mine", as: HostFixture.user) }

            let open = try await vfs.makeDirectory(root, "open", mode: 0o777)
            let mine = try await vfs.makeFile(open, "mine", [7], as: HostFixture.user)
            _ = try await vfs.makeDirectory(open, "mydir", as: HostFixture.user)
            let attributes = try await vfs.getattr(mine, mask: [.uid, .gid, .mode])
            #expect(attributes.uid == 1000 && attributes.gid == 1000 && attributes.mode == 0o644)
            #expect(try await vfs.contents(mine, as: HostFixture.user) == [7])

            // Supplementary groups count: a directory only group 3000 may write to.
            let team = try await vfs.makeDirectory(root, "team", mode: 0o770)
            _ = try await vfs.setattr(team, SetAttributes(gid: 3000), credentials: .root)
            await expectVFSError(.accessDenied) { _ = try await vfs.makeFile(team, "no", as: HostFixture.user) }
            _ = try await vfs.makeFile(team, "yes", as: Credentials(uid: 1000, gid: 1000, groups: [3000]))
            await expectVFSError(.accessDenied) { _ = try await vfs.makeFile(team, "no", as: HostFixture.user) }

            // After all that, the delegation threads act as the server again.
            #expect(try await vfs.contents(secret) == [42])
            for i in 0..<8 { _ = try await vfs.makeFile(root, "root-\(i)") }
        }
        #expect(HostFixture.owner(fixture.share + "/open/mine")! == (1000, 1000))
        #expect(HostFixture.owner(fixture.share + "/open/mydir")! == (1000, 1000))
        #expect(HostFixture.owner(fixture.share + "/team/yes")! == (1000, 1000))
        #expect(!HostFixture.exists(fixture.share + "/team/no"))
        for i in 0..<8 { #expect(HostFixture.owner(fixture.share + "/root-\(i)")! == (0, 0)) }
        // Only the delegation thread's groups changed, never the process's.
        #expect(Self.processGroups() == groupsBefore)
    }

    @Test("kernel handles survive a restart; removed objects are stale", arguments: HostBackend.allCases)
    func restartAndRemoval(_ kind: HostBackend) async throws {
        let fixture = try HostFixture(kind)
        let (file, dir, gone) = try await fixture.run { vfs, root in
            let dir = try await vfs.makeDirectory(root, "d")
            let file = try await vfs.makeFile(dir, "f", [5, 6, 7])
            let gone = try await vfs.makeFile(root, "gone", [1])
            _ = try await vfs.remove(in: root, name: "gone", credentials: .root)
            await expectVFSError(.stale) { _ = try await vfs.getattr(gone, mask: .all) }
            await expectVFSError(.stale) { _ = try await vfs.read(gone, offset: 0, count: 1, credentials: .root) }
            return (file, dir, gone)
        }
        // A new server on the same directory.
        let restarted = try fixture.makeBackend()
        let vfs = VirtualFileSystem()
        try vfs.mount("host", backend: restarted)
        try await Task(executorPreference: fixture.group.loops[0]) { () async throws in
            if kind == .linuxTable {
                await expectVFSError(.stale) { _ = try await vfs.getattr(file, mask: .all) }
            } else {
                #expect(try await vfs.contents(file) == [5, 6, 7])
                #expect(try await vfs.lookup(dir, name: "f", mask: [], credentials: .root).0 == file)
                #expect(try await vfs.lookup(dir, name: "..", mask: [], credentials: .root).0 == restarted.rootHandle)
            }
            await expectVFSError(.stale) { _ = try await vfs.getattr(gone, mask: .all) }
        }.value
    }

    @Test("data moves through the loop's ring on a loop and through delegation off it", arguments: [HostBackend.uring, .linux])
    func dataPaths(_ kind: HostBackend) async throws {
        let fixture = try HostFixture(kind)
        let data = pattern(200_000, seed: 3)
        let file = try await fixture.run { vfs, root in
            let file = try await vfs.makeFile(root, "data", data)
            #expect(try await vfs.contents(file) == data)
            let tail = try await vfs.read(file, offset: 199_990, count: 100, credentials: .root)
            #expect(tail.count == 10 && tail.eof && tail.attributes.size == 200_000)
            let written = try await [UInt8](repeating: 9, count: 10).withUnsafeBytesAsync {
                try await vfs.write(file, offset: 200_000, data: $0, stability: .dataSync, credentials: .root)
            }
            #expect(written.before.size == 200_000 && written.after.size == 200_010 && written.stability == .dataSync)
            return file
        }
        // Not on a loop: EventLoop.current is nil and the delegation pool does the I/O.
        let vfs = fixture.vfs
        let again = try await Task { try await vfs.read(file, offset: 0, count: 300_000, credentials: .root) }.value
        #expect(again.count == 200_010 && again.eof)
        #expect(Array(again.bytes[0..<200_000]) == data)
        let offLoop = try await Task {
            try await [UInt8](repeating: 4, count: 5).withUnsafeBytesAsync {
                try await vfs.write(file, offset: 0, data: $0, stability: .fileSync, credentials: .root)
            }
        }.value
        #expect(offLoop.count == 5 && offLoop.stability == .fileSync)
        #expect(try await fixture.run { vfs, _ in try await vfs.contents(file, count: 6) } == [4, 4, 4, 4, 4, data[5]])
    }

    static func processGroups() -> [gid_t] {
        let count = getgroups(0, nil)
        var groups = [gid_t](repeating: 0, count: Int(max(count, 0)))
        _ = getgroups(count, &groups)
        return groups.sorted()
    }
}
