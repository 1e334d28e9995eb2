import Foundation
import Logging
import Runtime
import Testing
@testable import Server

/// `mounts.NAME.cache_ttl_ms` reaches the VFS: the mount's metadata-cache policy.
@Suite("Mount cache settings")
struct MountCacheTests {
    @Test func cacheTTLReachesTheVFS() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mountcache-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = """
            {"mounts": {
                "short": {"module": "linux", "path": "\(dir)", "cache_ttl_ms": 250},
                "off": {"module": "io_uring", "path": "\(dir)", "cache_ttl_ms": 0},
                "default": {"module": "linux", "path": "\(dir)"},
                "mem": {"module": "memfs", "path": "/"}
            }}
            """
        let configuration = try Configuration.parse(text, source: "t", environment: .stub(files: [dir: .directory])).configuration
        let group = try LoopGroup(LoopGroupSettings(threads: 1, delegationThreads: 1, io: .ioUring, pollMode: .never, pinThreads: false))
        defer { group.shutdown() }
        let vfs = Mounts.build(configuration, group: group, logger: Logger(label: "test"))
        #expect(vfs.mount(named: "short")?.cachePolicy?.ttlNanoseconds == 250_000_000)
        #expect(vfs.mount(named: "off") != nil && vfs.mount(named: "off")?.cachePolicy == nil)
        #expect(vfs.mount(named: "default")?.cachePolicy?.ttlNanoseconds == 1_000_000_000)
        #expect(vfs.mount(named: "mem") != nil && vfs.mount(named: "mem")?.cachePolicy == nil)
    }
}
