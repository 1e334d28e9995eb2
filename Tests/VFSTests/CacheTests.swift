import Foundation
import Glibc
import LinuxFS
import Runtime
import Synchronization
import Testing
@testable import VFS

/// The VFS name and attribute caches: coherence across loops, invalidation by every kind of
/// mutation, TTL expiry for changes made behind the server's back, counters, bounded size.
@Suite("VFS metadata caches")
struct CacheTests {
    /// The backends the VFS caches (memfs is memory already).
    static let cached: [Backend] = [.linux, .ioUring]
    /// A TTL no test outlives, even on a loaded machine: whatever these tests see change, the
    /// invalidation did, not the expiry.
    static let long: UInt64 = 600_000_000_000

    @Test("a mutation on one loop is seen at once by lookups and getattrs on another", arguments: cached)
    func crossLoopCoherence(_ backend: Backend) async throws {
        let fixture = try Fixture(backend, threads: 2, cacheTTL: Self.long)
        let (dir, file) = try await fixture.run(on: 0) { vfs, root in
            let dir = try await vfs.makeDirectory(root, "d")
            return (dir, try await vfs.makeFile(dir, "f", [1, 2, 3]))
        }
        // Loop 1 fills the caches: a negative entry, a positive one, attributes of both objects.
        let before = try await fixture.run(on: 1) { vfs, _ in
            for _ in 0..<2 {
                await expectVFSError(.notFound) { _ = try await vfs.lookup(dir, name: "x", mask: .nfs3, credentials: .root) }
                #expect(try await vfs.lookup(dir, name: "f", mask: .nfs3, credentials: .root).0 == file)
                #expect(try await vfs.getattr(file, mask: .nfs3).size == 3)
            }
            return try await vfs.getattr(dir, mask: .nfs3)
        }
        let filled = fixture.vfs.cacheStatistics().loops[1]
        #expect(filled.negativeHits >= 1 && filled.lookupHits >= 1 && filled.getattrHits >= 1)

        // Loop 0 changes every one of those.
        let x = try await fixture.run(on: 0) { vfs, _ in
            let x = try await vfs.makeFile(dir, "x")
            _ = try await [UInt8](repeating: 7, count: 100).withUnsafeBytesAsync {
                try await vfs.write(file, offset: 0, data: $0, stability: .unstable, credentials: .root)
            }
            _ = try await vfs.setattr(file, SetAttributes(mode: 0o600), credentials: .root)
            _ = try await vfs.makeDirectory(dir, "sub")
            return x
        }
        // Loop 1 sees all of it on its next calls.
        try await fixture.run(on: 1) { vfs, _ in
            #expect(try await vfs.lookup(dir, name: "x", mask: [], credentials: .root).0 == x)
            let attributes = try await vfs.getattr(file, mask: .nfs3)
            #expect(attributes.size == 100 && attributes.mode == 0o600)
            let (_, viaLookup) = try await vfs.lookup(dir, name: "f", mask: [.size, .mode], credentials: .root)
            #expect(viaLookup.size == 100 && viaLookup.mode == 0o600)
            // The parent's attributes moved too (mkdir adds a link to it).
            #expect(try await vfs.getattr(dir, mask: .nfs3).nlink == before.nlink + 1)
        }
        // Removes, both kinds.
        try await fixture.run(on: 0) { vfs, _ in
            _ = try await vfs.remove(in: dir, name: "f", credentials: .root)
            _ = try await vfs.rmdir(in: dir, name: "sub", credentials: .root)
        }
        try await fixture.run(on: 1) { (vfs, _) async throws in
            await expectVFSError(.notFound) { _ = try await vfs.lookup(dir, name: "f", mask: .nfs3, credentials: .root) }
            await expectVFSError(.notFound) { _ = try await vfs.lookup(dir, name: "sub", mask: [], credentials: .root) }
            await expectVFSError(.stale) { _ = try await vfs.getattr(file, mask: .nfs3) }
            #expect(try await vfs.getattr(dir, mask: .nfs3).nlink == before.nlink)
        }
    }

    @Test("negative entries are replaced by every way of making a name", arguments: cached)
    func negativeEntriesInvalidated(_ backend: Backend) async throws {
        let fixture = try Fixture(backend, threads: 2, cacheTTL: Self.long)
        let (dir, target) = try await fixture.run(on: 0) { vfs, root in
            let dir = try await vfs.makeDirectory(root, "d")
            return (dir, try await vfs.makeFile(root, "target", [1]))
        }
        let names = ["file", "dir", "link", "hard", "moved"]
        try await fixture.run(on: 1) { vfs, _ in
            for name in names {
                for _ in 0..<2 {
                    await expectVFSError(.notFound) { _ = try await vfs.lookup(dir, name: name, mask: [], credentials: .root) }
                }
            }
        }
        #expect(fixture.vfs.cacheStatistics().loops[1].negativeHits >= UInt64(names.count))
        try await fixture.run(on: 0) { vfs, root in
            _ = try await vfs.makeFile(dir, "file")
            _ = try await vfs.makeDirectory(dir, "dir")
            _ = try await vfs.create(in: dir, name: "link", kind: .symlink(target: "file"), mode: .guarded, credentials: .root)
            _ = try await vfs.link(target, into: dir, name: "hard", credentials: .root)
            _ = try await vfs.makeFile(root, "tomove")
            _ = try await vfs.rename(from: root, name: "tomove", to: dir, newName: "moved", credentials: .root)
        }
        try await fixture.run(on: 1) { vfs, _ in
            for name in names {
                let (_, attributes) = try await vfs.lookup(dir, name: name, mask: [.type], credentials: .root)
                #expect(attributes.valid.contains(.type), "\(name)")
            }
            // The hard link's target now has two links.
            #expect(try await vfs.lookup(dir, name: "hard", mask: [.nlink], credentials: .root).1.nlink == 2)
        }
    }

    @Test("rename invalidates the old name and the new one, and the replaced object", arguments: cached)
    func renameInvalidatesBothNames(_ backend: Backend) async throws {
        let fixture = try Fixture(backend, threads: 2, cacheTTL: Self.long)
        let (dir, a, b) = try await fixture.run(on: 0) { vfs, root in
            let dir = try await vfs.makeDirectory(root, "d")
            return (dir, try await vfs.makeFile(dir, "a", [1]), try await vfs.makeFile(dir, "b", [2, 2]))
        }
        try await fixture.run(on: 1) { (vfs, _) async throws in
            for _ in 0..<2 {
                #expect(try await vfs.lookup(dir, name: "a", mask: .nfs3, credentials: .root).0 == a)
                #expect(try await vfs.lookup(dir, name: "b", mask: .nfs3, credentials: .root).0 == b)
                await expectVFSError(.notFound) { _ = try await vfs.lookup(dir, name: "c", mask: [], credentials: .root) }
            }
        }
        _ = try await fixture.run(on: 0) { vfs, _ in try await vfs.rename(from: dir, name: "a", to: dir, newName: "c", credentials: .root) }
        try await fixture.run(on: 1) { (vfs, _) async throws in
            await expectVFSError(.notFound) { _ = try await vfs.lookup(dir, name: "a", mask: [], credentials: .root) }
            #expect(try await vfs.lookup(dir, name: "c", mask: [.size], credentials: .root) .0 == a)
        }
        // Onto an existing name: the replaced file is gone, its handle stale.
        _ = try await fixture.run(on: 0) { vfs, _ in try await vfs.rename(from: dir, name: "c", to: dir, newName: "b", credentials: .root) }
        try await fixture.run(on: 1) { vfs, _ in
            await expectVFSError(.notFound) { _ = try await vfs.lookup(dir, name: "c", mask: [], credentials: .root) }
            let (handle, attributes) = try await vfs.lookup(dir, name: "b", mask: [.size], credentials: .root)
            #expect(handle == a && attributes.size == 1)
            await expectVFSError(.stale) { _ = try await vfs.getattr(b, mask: .nfs3) }
        }
        // Across directories, a directory: both parents' link counts change.
        let (other, before) = try await fixture.run(on: 0) { vfs, root in
            _ = try await vfs.makeDirectory(dir, "sub")
            let other = try await vfs.makeDirectory(root, "other")
            return (other, (try await vfs.getattr(dir, mask: .nfs3).nlink, try await vfs.getattr(other, mask: .nfs3).nlink))
        }
        try await fixture.run(on: 1) { vfs, _ in
            _ = try await vfs.lookup(dir, name: "sub", mask: .nfs3, credentials: .root)
            await expectVFSError(.notFound) { _ = try await vfs.lookup(other, name: "sub2", mask: [], credentials: .root) }
        }
        _ = try await fixture.run(on: 0) { vfs, _ in try await vfs.rename(from: dir, name: "sub", to: other, newName: "sub2", credentials: .root) }
        try await fixture.run(on: 1) { (vfs, _) async throws in
            await expectVFSError(.notFound) { _ = try await vfs.lookup(dir, name: "sub", mask: [], credentials: .root) }
            #expect(try await vfs.lookup(other, name: "sub2", mask: [.type], credentials: .root).1.type == .directory)
            #expect(try await vfs.getattr(dir, mask: .nfs3).nlink == before.0 - 1)
            #expect(try await vfs.getattr(other, mask: .nfs3).nlink == before.1 + 1)
        }
    }

    @Test("after the TTL, changes made directly in the host directory are seen", arguments: cached)
    func ttlExpiry(_ backend: Backend) async throws {
        let ttl: UInt64 = 300_000_000
        let fixture = try Fixture(backend, cacheTTL: ttl)
        let host = try #require(fixture.hostDirectory)
        try await fixture.run { vfs, root in
            let file = try await vfs.makeFile(root, "grow", [1])
            let cachedAt = monotonicNanoseconds()
            await expectVFSError(.notFound) { _ = try await vfs.lookup(root, name: "outside", mask: [], credentials: .root) }
            #expect(try await vfs.getattr(file, mask: .nfs3).size == 1)

            // Behind the server's back.
            #expect(FileManager.default.createFile(atPath: host + "/outside", contents: Data([1, 2, 3])))
            #expect(truncate(host + "/grow", 10) == 0)

            // Within the TTL the cache still answers (checked only while clearly inside it).
            if monotonicNanoseconds() + 100_000_000 < cachedAt + ttl {
                await expectVFSError(.notFound) { _ = try await vfs.lookup(root, name: "outside", mask: [], credentials: .root) }
                #expect(try await vfs.getattr(file, mask: .nfs3).size == 1)
            }
            try await Task.sleep(nanoseconds: ttl + 100_000_000)
            let (_, outside) = try await vfs.lookup(root, name: "outside", mask: [.size], credentials: .root)
            #expect(outside.size == 3)
            #expect(try await vfs.getattr(file, mask: .nfs3).size == 10)
        }
    }

    @Test("a TTL of 0 turns the cache off for that mount")
    func ttlZeroIsUncached() async throws {
        let fixture = try Fixture(.linux, cacheTTL: 0)
        let host = try #require(fixture.hostDirectory)
        try await fixture.run { (vfs, root) async throws in
            await expectVFSError(.notFound) { _ = try await vfs.lookup(root, name: "late", mask: [], credentials: .root) }
            #expect(FileManager.default.createFile(atPath: host + "/late", contents: Data([1])))
            #expect(try await vfs.lookup(root, name: "late", mask: [.size], credentials: .root).1.size == 1)
        }
        #expect(fixture.vfs.cacheStatistics().total == MetadataCacheCounters())
        #expect(fixture.vfs.mount(named: "m")?.cachePolicy == nil)
    }

    @Test("hits and misses are counted on the loop that made the calls", arguments: cached)
    func counters(_ backend: Backend) async throws {
        let fixture = try Fixture(backend, threads: 2, cacheTTL: Self.long)
        let host = try #require(fixture.hostDirectory)
        #expect(FileManager.default.createFile(atPath: host + "/made-outside", contents: Data([9])))
        let loop0Before = fixture.vfs.cacheStatistics().loops.first ?? MetadataCacheCounters()
        func loop1() -> MetadataCacheCounters {
            let loops = fixture.vfs.cacheStatistics().loops
            return loops.count > 1 ? loops[1] : MetadataCacheCounters()
        }
        let start = loop1()
        let handle = try await fixture.run(on: 1) { vfs, root in
            try await vfs.lookup(root, name: "made-outside", mask: .nfs3, credentials: .root).0
        }
        var now = loop1()
        #expect(now.lookupMisses == start.lookupMisses + 1 && now.lookupHits == start.lookupHits)
        let afterMiss = now
        try await fixture.run(on: 1) { (vfs, root) async throws in
            #expect(try await vfs.lookup(root, name: "made-outside", mask: .nfs3, credentials: .root).0 == handle)
            #expect(try await vfs.getattr(handle, mask: [.size, .mode]).size == 1)
            for _ in 0..<2 {
                await expectVFSError(.notFound) { _ = try await vfs.lookup(root, name: "nope", mask: [], credentials: .root) }
            }
        }
        now = loop1()
        #expect(now.lookupHits == afterMiss.lookupHits + 1)
        #expect(now.getattrHits >= afterMiss.getattrHits + 1)
        #expect(now.lookupMisses == afterMiss.lookupMisses + 1)
        #expect(now.negativeHits == afterMiss.negativeHits + 1)
        #expect(now.hits > 0 && now.misses > 0)
        // Loop 0 did none of it.
        #expect((fixture.vfs.cacheStatistics().loops.first ?? MetadataCacheCounters()) == loop0Before)
        let statistics = fixture.vfs.cacheStatistics()
        #expect(statistics.total.hits >= now.hits)
        #expect(statistics.nameCapacity >= VirtualFileSystem.defaultCacheEntries)
    }

    @Test("memfs is not cached: nothing is counted")
    func memfsIsNotCached() async throws {
        let fixture = try Fixture(.memfs)
        try await fixture.run { vfs, root in
            let file = try await vfs.makeFile(root, "f", [1])
            for _ in 0..<3 {
                _ = try await vfs.getattr(file, mask: .all)
                _ = try await vfs.lookup(root, name: "f", mask: .all, credentials: .root)
            }
        }
        #expect(fixture.vfs.cacheStatistics().total == MetadataCacheCounters())
        #expect(fixture.vfs.mount(named: "m")?.cachePolicy == nil)
    }

    @Test("a cached name does not let a caller search a directory it may not", arguments: cached)
    func cachedLookupChecksSearchPermission(_ backend: Backend) async throws {
        let fixture = try Fixture(backend, cacheTTL: Self.long)
        try await fixture.run { vfs, root in
            let dir = try await vfs.makeDirectory(root, "private", mode: 0o755)
            _ = try await vfs.makeFile(dir, "f", [1])
            for _ in 0..<2 {
                _ = try await vfs.lookup(dir, name: "f", mask: .nfs3, credentials: Fixture.user)
                await expectVFSError(.notFound) { _ = try await vfs.lookup(dir, name: "g", mask: [], credentials: Fixture.user) }
            }
            _ = try await vfs.setattr(dir, SetAttributes(mode: 0o700), credentials: .root)
            await expectVFSError(.accessDenied) { _ = try await vfs.lookup(dir, name: "f", mask: .nfs3, credentials: Fixture.user) }
            await expectVFSError(.accessDenied) { _ = try await vfs.lookup(dir, name: "g", mask: [], credentials: Fixture.user) }
            _ = try await vfs.lookup(dir, name: "f", mask: .nfs3, credentials: .root)
        }
    }

    @Test("a full cache recycles its slots and keeps answering correctly")
    func boundedAndRecycling() async throws {
        let small = VirtualFileSystem(nameCacheEntries: 256, attributeCacheEntries: 256)
        let fixture = try Fixture(.linux, cacheTTL: Self.long, vfs: small)
        let count = 1500
        let made = try await fixture.run { vfs, root in
            var made: [VFS.FileHandle] = []
            for i in 0..<count { made.append(try await vfs.makeFile(root, "f\(i)", [UInt8(i % 251)])) }
            return made
        }
        try await fixture.run { vfs, root in
            for _ in 0..<2 {
                for i in 0..<count {
                    let (handle, attributes) = try await vfs.lookup(root, name: "f\(i)", mask: [.size], credentials: .root)
                    #expect(handle == made[i] && attributes.size == 1)
                }
            }
        }
        let statistics = small.cacheStatistics()
        #expect(statistics.nameCapacity == 256 && statistics.attributeCapacity == 256)
        #expect(statistics.total.evictions > 0)
    }

    @Test("names longer than the inline key are served, uncached", arguments: cached)
    func longNames(_ backend: Backend) async throws {
        let fixture = try Fixture(backend, cacheTTL: Self.long)
        try await fixture.run { vfs, root in
            let name = String(repeating: "n", count: 200)
            let file = try await vfs.makeFile(root, name, [1, 2])
            for _ in 0..<2 { #expect(try await vfs.lookup(root, name: name, mask: [.size], credentials: .root).0 == file) }
            _ = try await vfs.remove(in: root, name: name, credentials: .root)
            await expectVFSError(.notFound) { _ = try await vfs.lookup(root, name: name, mask: [], credentials: .root) }
        }
    }

    @Test("concurrent writers on two loops: every loop ends with the file's real size", arguments: cached)
    func concurrentWritersEndCoherent(_ backend: Backend) async throws {
        let fixture = try Fixture(backend, threads: 2, cacheTTL: Self.long)
        let host = try #require(fixture.hostDirectory)
        let file = try await fixture.run { vfs, root in try await vfs.makeFile(root, "shared") }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for loop in 0..<2 {
                tasks.addTask {
                    try await fixture.run(on: loop) { vfs, _ in
                        let block = [UInt8](repeating: UInt8(loop), count: 512)
                        for i in 0..<150 {
                            let offset = UInt64((i * 2 + loop) * 512)
                            _ = try await block.withUnsafeBytesAsync {
                                try await vfs.write(file, offset: offset, data: $0, stability: .unstable, credentials: .root)
                            }
                            _ = try await vfs.getattr(file, mask: [.size])
                        }
                    }
                }
            }
            try await tasks.waitForAll()
        }
        var st = stat()
        #expect(stat(host + "/shared", &st) == 0)
        for loop in 0..<2 {
            let size = try await fixture.run(on: loop) { vfs, _ in try await vfs.getattr(file, mask: [.size]).size }
            #expect(size == UInt64(st.st_size) && size == 300 * 512)
        }
    }

    @Test("a value read before a mutation ended is never stored over what the mutation left")
    func fillRacingAMutationIsDropped() {
        let cache = MetadataCache(nameCapacity: 256, attributeCapacity: 256)
        let handle = VFS.FileHandle(mount: 1, words: 42)
        func sized(_ size: UInt64) -> Attributes {
            var attributes = Attributes()
            attributes.valid = [.size]
            attributes.size = size
            return attributes
        }
        let readStarted = monotonicNanoseconds()
        // A mutation that started with the read ends first and stores what it made.
        #expect(cache.storeAttributes(handle, sized(2), answered: [.size], startedAt: readStarted, expires: .max, mutationEnd: monotonicNanoseconds()))
        // The read's older value arrives afterwards: dropped.
        #expect(!cache.storeAttributes(handle, sized(1), answered: [.size], startedAt: readStarted, expires: .max))
        #expect(cache.attributes(handle, covering: [.size], now: monotonicNanoseconds())?.size == 2)
        // A second mutation that started before the first ended cannot order itself: the entry goes.
        #expect(!cache.storeAttributes(handle, sized(3), answered: [.size], startedAt: readStarted, expires: .max, mutationEnd: monotonicNanoseconds()))
        #expect(cache.attributes(handle, covering: [.size], now: monotonicNanoseconds()) == nil)
        // A read that starts after every mutation ended is kept; a mask it did not answer misses.
        let later = monotonicNanoseconds() + 1
        #expect(cache.storeAttributes(handle, sized(3), answered: [.size], startedAt: later, expires: .max))
        #expect(cache.attributes(handle, covering: [.size], now: later)?.size == 3)
        #expect(cache.attributes(handle, covering: [.size, .mode], now: later) == nil)
        // Expired entries are misses.
        #expect(cache.storeAttributes(handle, sized(4), answered: [.size], startedAt: later, expires: later + 10))
        #expect(cache.attributes(handle, covering: [.size], now: later + 10) == nil)

        // Names: the same rule, and negative entries.
        let directory = VFS.FileHandle(mount: 1, words: 7)
        let key = try! #require(cache.key(directory, "name"))
        let start = monotonicNanoseconds()
        #expect(cache.storeName(key, child: nil, startedAt: start, expires: .max))
        if case .negative = cache.name(key, now: start) {} else { Issue.record("expected a negative entry") }
        #expect(cache.storeName(key, child: handle, startedAt: start, expires: .max, mutationEnd: monotonicNanoseconds()))
        #expect(!cache.storeName(key, child: nil, startedAt: start, expires: .max))
        if case .child(let child) = cache.name(key, now: monotonicNanoseconds()) { #expect(child == handle) } else { Issue.record("expected the child") }
        #expect(cache.key(directory, ".") == nil && cache.key(directory, "..") == nil)
        #expect(cache.key(directory, String(repeating: "x", count: 65)) == nil)
        #expect(cache.key(directory, String(repeating: "x", count: 64)) != nil)
    }
}
