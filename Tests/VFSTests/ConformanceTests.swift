import Glibc
import Runtime
import Testing
import VFS

/// One suite, every backend: the behaviour protocols rely on, error cases included.
@Suite("VFS conformance")
struct ConformanceTests {
    @Test("create, lookup and getattr agree; masks limit what is reported", arguments: Backend.allCases)
    func createLookupGetattr(_ backend: Backend) async throws {
        let fixture = try Fixture(backend)
        try await fixture.run { vfs, root in
            let dir = try await vfs.makeDirectory(root, "d", mode: 0o777)
            let created = try await vfs.create(in: dir, name: "f", kind: .regular, mode: .guarded,
                                               attributes: SetAttributes(mode: 0o640), credentials: Fixture.user)
            #expect(created.created)
            #expect(created.attributes.type == .regular)
            #expect(created.attributes.mode == 0o640)
            #expect(created.attributes.uid == 1000 && created.attributes.gid == 1000)
            #expect(created.attributes.size == 0 && created.attributes.nlink == 1)
            #expect(created.directory.after.change != created.directory.before.change || created.directory.after.mtime >= created.directory.before.mtime)
            let (handle, attributes) = try await vfs.lookup(dir, name: "f", mask: .all, credentials: .root)
            #expect(handle == created.handle)
            #expect(attributes.fileid == created.attributes.fileid)
            let small = try await vfs.getattr(handle, mask: [.size, .mode])
            #expect(small.valid == [.size, .mode])
            let (dot, _) = try await vfs.lookup(dir, name: ".", mask: [], credentials: .root)
            let (parent, _) = try await vfs.lookup(dir, name: "..", mask: [], credentials: .root)
            let (rootParent, _) = try await vfs.lookup(root, name: "..", mask: [], credentials: .root)
            #expect(dot == dir && parent == root && rootParent == root)
        }
    }

    @Test("reads return what was written; EOF, holes and offsets past 4 GiB", arguments: Backend.allCases)
    func readWrite(_ backend: Backend) async throws {
        let fixture = try Fixture(backend)
        try await fixture.run { vfs, root in
            let data = pattern(300_000)
            let file = try await vfs.makeFile(root, "data", data)
            #expect(try await vfs.contents(file) == data)
            let middle = try await vfs.read(file, offset: 100_000, count: 1000, credentials: .root)
            #expect(middle.bytes == Array(data[100_000..<101_000]) && !middle.eof)
            let tail = try await vfs.read(file, offset: 299_000, count: 5000, credentials: .root)
            #expect(tail.count == 1000 && tail.eof)
            let past = try await vfs.read(file, offset: 1_000_000, count: 10, credentials: .root)
            #expect(past.count == 0 && past.eof)

            // Sparse: a write past 5 GiB leaves a hole that reads as zeros and takes no space.
            let sparse = try await vfs.makeFile(root, "sparse")
            let far: UInt64 = 5 << 30
            let written = try await [UInt8](repeating: 0xAB, count: 4096).withUnsafeBytesAsync {
                try await vfs.write(sparse, offset: far, data: $0, stability: .fileSync, credentials: .root)
            }
            #expect(written.count == 4096 && written.after.size == far + 4096 && written.before.size == 0)
            #expect(written.stability >= .fileSync)
            #expect(try await vfs.contents(sparse, offset: far - 2, count: 4) == [0, 0, 0xAB, 0xAB])
            #expect(try await vfs.contents(sparse, offset: 1 << 30, count: 8192) == [UInt8](repeating: 0, count: 8192))
            let attributes = try await vfs.getattr(sparse, mask: .all)
            #expect(attributes.spaceUsed < 4 << 20, "a 5 GiB sparse file uses \(attributes.spaceUsed) bytes")
        }
    }

    @Test("error cases map to the VFS errors protocols expect", arguments: Backend.allCases)
    func errors(_ backend: Backend) async throws {
        let fixture = try Fixture(backend)
        try await fixture.run { vfs, root in
            let dir = try await vfs.makeDirectory(root, "dir")
            let file = try await vfs.makeFile(root, "file", [1, 2, 3])
            _ = try await vfs.makeFile(dir, "inside")
            await expectVFSError(.notFound) { _ = try await vfs.lookup(root, name: "missing", mask: [], credentials: .root) }
            await expectVFSError(.exists) { _ = try await vfs.makeFile(root, "file") }
            await expectVFSError(.exists) { _ = try await vfs.makeDirectory(root, "dir") }
            await expectVFSError(.notEmpty) { _ = try await vfs.rmdir(in: root, name: "dir", credentials: .root) }
            await expectVFSError(.isDirectory) { _ = try await vfs.remove(in: root, name: "dir", credentials: .root) }
            await expectVFSError(.notDirectory) { _ = try await vfs.rmdir(in: root, name: "file", credentials: .root) }
            await expectVFSError(.notDirectory) { _ = try await vfs.lookup(file, name: "x", mask: [], credentials: .root) }
            await expectVFSError(.notDirectory) { _ = try await vfs.makeFile(file, "x") }
            await expectVFSError(.isDirectory) { _ = try await vfs.read(dir, offset: 0, count: 10, credentials: .root) }
            await expectVFSError(.notFound) { _ = try await vfs.remove(in: root, name: "missing", credentials: .root) }
            let long = String(repeating: "n", count: 256)
            await expectVFSError(.nameTooLong) { _ = try await vfs.makeFile(root, long) }
            await expectVFSError(.nameTooLong) { _ = try await vfs.lookup(root, name: long, mask: [], credentials: .root) }
            _ = try await vfs.makeFile(root, String(repeating: "n", count: 255))
            await expectVFSError(.invalid) { _ = try await vfs.makeFile(root, "a/b") }
            await expectVFSError(.invalid) { _ = try await vfs.makeFile(root, "..") }
        }
    }

    @Test("permission bits are enforced for other users", arguments: Backend.allCases)
    func permissions(_ backend: Backend) async throws {
        let fixture = try Fixture(backend)
        try await fixture.run { vfs, root in
            let secret = try await vfs.makeFile(root, "secret", [42], mode: 0o600)
            let closed = try await vfs.makeDirectory(root, "closed", mode: 0o755)
            let open = try await vfs.makeDirectory(root, "open", mode: 0o777)
            await expectVFSError(.accessDenied) { _ = try await vfs.read(secret, offset: 0, count: 1, credentials: Fixture.user) }
            await expectVFSError(.accessDenied) {
                _ = try await [1].withUnsafeBytesAsync { try await vfs.write(secret, offset: 0, data: $0, stability: .fileSync, credentials: Fixture.user) }
            }
            await expectVFSError(.accessDenied) { _ = try await vfs.makeFile(closed, "x", as: Fixture.user) }
            await expectVFSError(.notPermitted) { _ = try await vfs.setattr(secret, SetAttributes(mode: 0o666), credentials: Fixture.user) }
            // In a directory they may write to, users create files they own.
            let mine = try await vfs.makeFile(open, "mine", [7], as: Fixture.user)
            let attributes = try await vfs.getattr(mine, mask: [.uid, .gid])
            #expect(attributes.uid == 1000 && attributes.gid == 1000)
            #expect(try await vfs.contents(mine, as: Fixture.user) == [7])
            let granted = try await vfs.access(secret, wanted: [.read, .write], credentials: Fixture.user)
            #expect(granted.isEmpty)
            #expect(try await vfs.access(mine, wanted: [.read, .write], credentials: Fixture.user) == [.read, .write])
        }
    }

    @Test("rename replaces, refuses incompatible targets and cycles, and moves directories", arguments: Backend.allCases)
    func rename(_ backend: Backend) async throws {
        let fixture = try Fixture(backend)
        try await fixture.run { vfs, root in
            let a = try await vfs.makeDirectory(root, "a")
            let b = try await vfs.makeDirectory(root, "b")
            _ = try await vfs.makeFile(a, "one", [1])
            _ = try await vfs.makeFile(b, "two", [2])
            // File over file: replaced.
            let change = try await vfs.rename(from: a, name: "one", to: b, newName: "two", credentials: .root)
            #expect(change.from.after.change != change.from.before.change || change.from.after.mtime >= change.from.before.mtime)
            let (moved, _) = try await vfs.lookup(b, name: "two", mask: [], credentials: .root)
            #expect(try await vfs.contents(moved) == [1])
            await expectVFSError(.notFound) { _ = try await vfs.lookup(a, name: "one", mask: [], credentials: .root) }
            // Same object, same name: nothing happens.
            _ = try await vfs.rename(from: b, name: "two", to: b, newName: "two", credentials: .root)
            #expect(try await vfs.names(b) == ["two"])
            // Directory over empty directory: fine; over non-empty: notEmpty.
            let x = try await vfs.makeDirectory(a, "x")
            _ = try await vfs.makeDirectory(b, "empty")
            _ = try await vfs.rename(from: a, name: "x", to: b, newName: "empty", credentials: .root)
            let (parentOfMoved, _) = try await vfs.lookup(try await vfs.lookup(b, name: "empty", mask: [], credentials: .root).0, name: "..", mask: [], credentials: .root)
            #expect(parentOfMoved == b)
            _ = x
            let full = try await vfs.makeDirectory(a, "full")
            _ = try await vfs.makeFile(full, "f")
            _ = try await vfs.makeDirectory(a, "y")
            await expectVFSError(.notEmpty) { _ = try await vfs.rename(from: a, name: "y", to: a, newName: "full", credentials: .root) }
            // File over directory and directory over file.
            await expectVFSError(.isDirectory) { _ = try await vfs.rename(from: b, name: "two", to: a, newName: "y", credentials: .root) }
            await expectVFSError(.notDirectory) { _ = try await vfs.rename(from: a, name: "y", to: b, newName: "two", credentials: .root) }
            // A directory cannot move into its own subtree.
            await expectVFSError(.invalid) { _ = try await vfs.rename(from: root, name: "a", to: full, newName: "a", credentials: .root) }
            await expectVFSError(.notFound) { _ = try await vfs.rename(from: a, name: "nothing", to: b, newName: "z", credentials: .root) }
        }
    }

    @Test("rename across mounts is crossDevice")
    func renameAcrossMounts() async throws {
        let fixture = try Fixture(.memfs)
        let other = try fixture.makeBackend(name: "n")
        try fixture.vfs.mount("n", backend: other)
        try await fixture.run { vfs, root in
            _ = try await vfs.makeFile(root, "f")
            await expectVFSError(.crossDevice) { _ = try await vfs.rename(from: root, name: "f", to: other.rootHandle, newName: "f", credentials: .root) }
            let file = try await vfs.lookup(root, name: "f", mask: [], credentials: .root).0
            await expectVFSError(.crossDevice) { _ = try await vfs.link(file, into: other.rootHandle, name: "l", credentials: .root) }
        }
    }

    @Test("readdir pages with cookies and resumes across creates and removes", arguments: Backend.allCases)
    func readdirResumption(_ backend: Backend) async throws {
        let fixture = try Fixture(backend)
        try await fixture.run { vfs, root in
            let dir = try await vfs.makeDirectory(root, "many")
            let names = (0..<1000).map { "file-\($0)" }
            for name in names { _ = try await vfs.makeFile(dir, name) }
            #expect(Set(try await vfs.names(dir, pageSize: 37)) == Set(names))
            #expect(try await vfs.names(dir, pageSize: 37).count == 1000)

            let first = try await vfs.readdir(dir, maxEntries: 100, credentials: .root)
            #expect(first.entries.count == 100 && !first.eof)
            let seen = Set(first.entries.map(\.name))
            let unseen = names.filter { !seen.contains($0) }
            // Mutations between pages: remove one listed and one unlisted entry, add new ones.
            _ = try await vfs.remove(in: dir, name: first.entries[5].name, credentials: .root)
            _ = try await vfs.remove(in: dir, name: unseen[10], credentials: .root)
            for i in 0..<20 { _ = try await vfs.makeFile(dir, "new-\(i)") }
            var rest: [String] = []
            var cookie = first.entries.last!.cookie
            while true {
                let page = try await vfs.readdir(dir, cookie: cookie, verifier: first.verifier, maxEntries: 100, credentials: .root)
                rest += page.entries.map(\.name)
                if page.eof || page.entries.isEmpty { break }
                cookie = page.entries.last!.cookie
            }
            #expect(seen.isDisjoint(with: rest), "entries listed twice")
            #expect(Set(rest).count == rest.count)
            let expectedSurvivors = Set(unseen).subtracting([unseen[10]])
            #expect(expectedSurvivors.isSubset(of: Set(rest)), "an entry present throughout was skipped")
            #expect(!rest.contains(unseen[10]))
        }
    }

    @Test("readdir with a mask returns attributes and usable handles", arguments: Backend.allCases)
    func readdirPlus(_ backend: Backend) async throws {
        let fixture = try Fixture(backend)
        try await fixture.run { vfs, root in
            _ = try await vfs.makeFile(root, "f", pattern(10))
            _ = try await vfs.makeDirectory(root, "d")
            let page = try await vfs.readdir(root, maxEntries: 10, mask: .all, credentials: .root)
            #expect(page.entries.map(\.name).sorted() == ["d", "f"])
            for entry in page.entries {
                let handle = try #require(entry.handle)
                let attributes = try #require(entry.attributes)
                #expect(attributes.fileid == entry.fileid)
                #expect(try await vfs.getattr(handle, mask: [.fileid]).fileid == entry.fileid)
                #expect(entry.type == (entry.name == "d" ? .directory : .regular))
                if entry.name == "f" { #expect(attributes.size == 10) }
            }
            let bare = try await vfs.readdir(root, maxEntries: 10, credentials: .root)
            #expect(bare.entries.allSatisfy { $0.attributes == nil })
        }
    }

    @Test("symlinks, hard links and removal", arguments: Backend.allCases)
    func links(_ backend: Backend) async throws {
        let fixture = try Fixture(backend)
        try await fixture.run { vfs, root in
            let symlink = try await vfs.create(in: root, name: "link", kind: .symlink(target: "some/where"), mode: .guarded, credentials: .root)
            #expect(symlink.attributes.type == .symlink)
            #expect(try await vfs.readlink(symlink.handle, credentials: .root) == "some/where")
            let file = try await vfs.makeFile(root, "orig", [9, 9])
            let (linked, _) = try await vfs.link(file, into: root, name: "hard", credentials: .root)
            #expect(linked.nlink == 2)
            _ = try await vfs.remove(in: root, name: "orig", credentials: .root)
            let (hard, attributes) = try await vfs.lookup(root, name: "hard", mask: .all, credentials: .root)
            #expect(attributes.nlink == 1)
            #expect(try await vfs.contents(hard) == [9, 9])
            _ = try await vfs.remove(in: root, name: "hard", credentials: .root)
            await expectVFSError(.stale) { _ = try await vfs.getattr(hard, mask: .all) }
            await expectVFSError(.exists) { _ = try await vfs.link(symlink.handle, into: root, name: "link", credentials: .root) }
        }
    }

    @Test("setattr: truncate, mode, times, and the ctime guard", arguments: Backend.allCases)
    func setattr(_ backend: Backend) async throws {
        let fixture = try Fixture(backend)
        try await fixture.run { vfs, root in
            let file = try await vfs.makeFile(root, "f", pattern(100_000))
            let (_, shrunk) = try await vfs.setattr(file, SetAttributes(size: 10), credentials: .root)
            #expect(shrunk.size == 10)
            let (_, grown) = try await vfs.setattr(file, SetAttributes(size: 70_000), credentials: .root)
            #expect(grown.size == 70_000)
            let back = try await vfs.contents(file)
            #expect(Array(back[0..<10]) == Array(pattern(100_000)[0..<10]))
            #expect(back[10...].allSatisfy { $0 == 0 }, "bytes past a shrink must read as zeros after growing again")
            let when = Timespec(seconds: 1_000_000_000, nanoseconds: 5000)
            let (before, after) = try await vfs.setattr(file, SetAttributes(mode: 0o600, atime: .value(when), mtime: .value(when)), credentials: .root)
            #expect(after.mode == 0o600 && after.mtime == when && after.atime == when)
            #expect(after.ctime >= before.ctime)
            await expectVFSError(.notSync) {
                _ = try await vfs.setattr(file, SetAttributes(mode: 0o644), guardCtime: Timespec(seconds: 1, nanoseconds: 0), credentials: .root)
            }
            let (_, guarded) = try await vfs.setattr(file, SetAttributes(mode: 0o644), guardCtime: after.ctime, credentials: .root)
            #expect(guarded.mode == 0o644)
            let (_, now) = try await vfs.setattr(file, SetAttributes(mtime: .serverTime), credentials: .root)
            #expect(now.mtime > when)
            let dir = try await vfs.makeDirectory(root, "d")
            await expectVFSError(.isDirectory) { _ = try await vfs.setattr(dir, SetAttributes(size: 0), credentials: .root) }
        }
    }

    @Test("create modes: unchecked opens and truncates, exclusive retries are recognised", arguments: Backend.allCases)
    func createModes(_ backend: Backend) async throws {
        let fixture = try Fixture(backend)
        try await fixture.run { vfs, root in
            let first = try await vfs.create(in: root, name: "x", kind: .regular, mode: .exclusive(verifier: 77), credentials: .root)
            #expect(first.created)
            let retry = try await vfs.create(in: root, name: "x", kind: .regular, mode: .exclusive(verifier: 77), credentials: .root)
            #expect(!retry.created && retry.handle == first.handle)
            await expectVFSError(.exists) { _ = try await vfs.create(in: root, name: "x", kind: .regular, mode: .exclusive(verifier: 78), credentials: .root) }
            let file = try await vfs.makeFile(root, "y", pattern(5000))
            let reopened = try await vfs.create(in: root, name: "y", kind: .regular, mode: .unchecked, credentials: .root)
            #expect(!reopened.created && reopened.handle == file && reopened.attributes.size == 5000)
            let truncated = try await vfs.create(in: root, name: "y", kind: .regular, mode: .unchecked, attributes: SetAttributes(size: 0), credentials: .root)
            #expect(truncated.attributes.size == 0)
        }
    }

    @Test("extended attributes", arguments: Backend.allCases)
    func xattrs(_ backend: Backend) async throws {
        let fixture = try Fixture(backend)
        try await fixture.run { vfs, root in
            let file = try await vfs.makeFile(root, "f")
            try await vfs.setxattr(file, name: "user.color", value: Array("blue".utf8), credentials: .root)
            try await vfs.setxattr(file, name: "user.size", value: [1, 2], credentials: .root)
            #expect(try await vfs.getxattr(file, name: "user.color", credentials: .root) == Array("blue".utf8))
            #expect(Set(try await vfs.listxattr(file, credentials: .root)).isSuperset(of: ["user.color", "user.size"]))
            await expectVFSError(.exists) { try await vfs.setxattr(file, name: "user.color", value: [0], mode: .create, credentials: .root) }
            await expectVFSError(.noData) { try await vfs.setxattr(file, name: "user.none", value: [0], mode: .replace, credentials: .root) }
            try await vfs.removexattr(file, name: "user.color", credentials: .root)
            await expectVFSError(.noData) { _ = try await vfs.getxattr(file, name: "user.color", credentials: .root) }
        }
    }

    @Test("allocate, punch holes and seek data/hole", arguments: Backend.allCases)
    func spaceManagement(_ backend: Backend) async throws {
        let fixture = try Fixture(backend)
        try await fixture.run { vfs, root in
            let file = try await vfs.makeFile(root, "f", pattern(512 * 1024))
            try await vfs.deallocate(file, offset: 128 * 1024, length: 128 * 1024, credentials: .root)
            let data = try await vfs.contents(file)
            #expect(data.count == 512 * 1024)
            #expect(data[(128 * 1024)..<(256 * 1024)].allSatisfy { $0 == 0 })
            #expect(Array(data[0..<1024]) == Array(pattern(512 * 1024)[0..<1024]))
            let hole = try await vfs.seek(file, offset: 0, target: .hole)
            #expect(hole.offset == 128 * 1024 && !hole.eof)
            let next = try await vfs.seek(file, offset: 128 * 1024, target: .data)
            #expect(next.offset == 256 * 1024)
            try await vfs.allocate(file, offset: 0, length: 2 << 20, credentials: .root)
            #expect(try await vfs.getattr(file, mask: [.size]).size == 2 << 20)
            let stats = try await vfs.statfs(root)
            #expect(stats.totalBytes > 0 && stats.freeBytes <= stats.totalBytes && stats.maxNameLength >= 255)
        }
    }

    @Test("several loops create and read in one directory at once, and see each other's changes", arguments: Backend.allCases)
    func concurrency(_ backend: Backend) async throws {
        let fixture = try Fixture(backend, threads: 2)
        let dir = try await fixture.run { vfs, root in try await vfs.makeDirectory(root, "shared", mode: 0o777) }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for loop in 0..<2 {
                tasks.addTask {
                    try await fixture.run(on: loop) { vfs, _ in
                        for i in 0..<200 {
                            let file = try await vfs.makeFile(dir, "l\(loop)-\(i)", [UInt8(loop), UInt8(i % 256)])
                            #expect(try await vfs.contents(file) == [UInt8(loop), UInt8(i % 256)])
                        }
                    }
                }
            }
            try await tasks.waitForAll()
        }
        // A change made on loop 0 is seen at once by a lookup on loop 1.
        let names = try await fixture.run(on: 1) { vfs, _ in try await vfs.names(dir) }
        #expect(names.count == 400)
        let handle = try await fixture.run(on: 0) { vfs, _ in try await vfs.makeFile(dir, "fresh", [5]) }
        let seen = try await fixture.run(on: 1) { vfs, _ in try await vfs.lookup(dir, name: "fresh", mask: [.size], credentials: .root) }
        #expect(seen.0 == handle && seen.1.size == 1)
        _ = try await fixture.run(on: 0) { vfs, _ in try await vfs.remove(in: dir, name: "fresh", credentials: .root) }
        await expectVFSError(.notFound) { _ = try await fixture.run(on: 1) { vfs, _ in try await vfs.lookup(dir, name: "fresh", mask: [], credentials: .root) } }
    }

    @Test("read-only mounts refuse every change with readOnly")
    func readOnlyMount() async throws {
        let fixture = try Fixture(.memfs)
        let backend = try fixture.makeBackend(name: "ro")
        let writable = VirtualFileSystem()
        try writable.mount("rw", backend: backend)
        let file = try await fixture.run { _, _ in try await writable.makeFile(backend.rootHandle, "f", [1]) }
        let vfs = VirtualFileSystem()
        try vfs.mount("ro", backend: backend, readOnly: true)
        try await fixture.run { (_: VirtualFileSystem, _: FileHandle) async throws in
            #expect(try await vfs.contents(file) == [1])
            await expectVFSError(.readOnly) { _ = try await vfs.makeFile(backend.rootHandle, "g") }
            await expectVFSError(.readOnly) { _ = try await vfs.setattr(file, SetAttributes(size: 0), credentials: .root) }
            await expectVFSError(.readOnly) { _ = try await vfs.remove(in: backend.rootHandle, name: "f", credentials: .root) }
            #expect(try await vfs.access(file, wanted: [.read, .write], credentials: .root) == [.read])
        }
    }
}
