import FaultFS
import MemFS
import Runtime
import Testing
@testable import VFS

/// The faults module's triggers, over memfs: every_n, after_bytes, path_prefix, delays on a
/// delegation thread, and handles that route back through the wrapper.
@Suite("faults mount module")
struct FaultFSTests {
    final class Harness: @unchecked Sendable {
        let group: LoopGroup
        let vfs = VirtualFileSystem()
        let faults: FaultFS

        init(_ rules: [FaultRule]) throws {
            group = try LoopGroup(LoopGroupSettings(threads: 1, delegationThreads: 2, io: .ioUring, pollMode: .never, pinThreads: false))
            faults = FaultFS(wrapping: MemFS(), rules: rules, delegation: group.delegation)
            try vfs.mount("flaky", backend: faults)
        }

        func run<T: Sendable>(_ body: @escaping @Sendable (VirtualFileSystem, FileHandle) async throws -> T) async throws -> T {
            let vfs = self.vfs, root = faults.rootHandle
            return try await Task(executorPreference: group.loops[0]) { try await body(vfs, root) }.value
        }

        deinit { group.shutdown() }
    }

    @Test("every_n fails the n-th matching call, and the wrapped backend's handles carry the wrapper's mount id")
    func everyN() async throws {
        let harness = try Harness([FaultRule(operation: .read, errorName: "EIO", everyN: 3)])
        try await harness.run { vfs, root in
            let file = try await vfs.makeFile(root, "f", [1, 2, 3])
            #expect(file.mountID == harness.faults.mountID && file.mountID != 0)
            var outcomes: [Bool] = []
            for _ in 0..<6 {
                do {
                    _ = try await vfs.contents(file)
                    outcomes.append(true)
                } catch {
                    #expect(error as? VFSError == .io)
                    outcomes.append(false)
                }
            }
            #expect(outcomes == [true, true, false, true, true, false])
        }
        #expect(harness.faults.firedCount == 2)
    }

    @Test("after_bytes lets writes through until the total would pass it, like a disk filling up")
    func afterBytes() async throws {
        let harness = try Harness([FaultRule(operation: .write, errorName: "ENOSPC", afterBytes: 10)])
        try await harness.run { vfs, root in
            let file = try await vfs.makeFile(root, "f")
            for offset in [0, 4] {
                _ = try await [UInt8](repeating: 1, count: 4).withUnsafeBytesAsync {
                    try await vfs.write(file, offset: UInt64(offset), data: $0, stability: .fileSync, credentials: .root)
                }
            }
            await expectVFSError(.noSpace) {
                _ = try await [UInt8](repeating: 1, count: 4).withUnsafeBytesAsync {
                    try await vfs.write(file, offset: 8, data: $0, stability: .fileSync, credentials: .root)
                }
            }
            // A smaller write still fits; the failed one left nothing behind.
            _ = try await [UInt8](repeating: 2, count: 2).withUnsafeBytesAsync {
                try await vfs.write(file, offset: 8, data: $0, stability: .fileSync, credentials: .root)
            }
            #expect(try await vfs.getattr(file, mask: .nfs3).size == 10)
        }
    }

    @Test("path_prefix matches names created or looked up under it, and only those")
    func pathPrefix() async throws {
        let harness = try Harness([FaultRule(operation: .create, errorName: "EDQUOT", pathPrefix: "/quota/full"),
                                   FaultRule(operation: .read, errorName: "EACCES", pathPrefix: "/quota/secret")])
        try await harness.run { vfs, root in
            let quota = try await vfs.makeDirectory(root, "quota")
            await expectVFSError(.quota) { _ = try await vfs.makeFile(quota, "full-1") }
            let secret = try await vfs.makeFile(quota, "secret", [9])
            let fine = try await vfs.makeFile(quota, "fine", [8])
            await expectVFSError(.accessDenied) { _ = try await vfs.contents(secret) }
            #expect(try await vfs.contents(fine) == [8])
            #expect(try await vfs.names(quota).sorted() == ["fine", "secret"])
        }
    }

    @Test("a delay blocks a delegation thread, not the loop")
    func delay() async throws {
        let harness = try Harness([FaultRule(operation: .read, pathPrefix: "/slow", delayMilliseconds: 300)])
        let (slow, fast) = try await harness.run { vfs, root in
            (try await vfs.makeFile(root, "slow", [1]), try await vfs.makeFile(root, "fast", [2]))
        }
        let started = monotonicNanoseconds()
        async let stuck: [UInt8] = harness.run { vfs, _ in try await vfs.contents(slow) }
        // While the slow read waits, the same loop answers reads of another file at once.
        try await Task.sleep(nanoseconds: 50_000_000)
        let quick = try await harness.run { vfs, _ in
            let begin = monotonicNanoseconds()
            let read = try await vfs.contents(fast)
            #expect(read == [2])
            return monotonicNanoseconds() - begin
        }
        #expect(try await stuck == [1])
        #expect(monotonicNanoseconds() - started >= 300_000_000)
        #expect(quick < 200_000_000)
    }
}
