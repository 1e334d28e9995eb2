import FuzzWire
import Glibc
import MemFS
import NFS3
import NFS4
import Runtime
import VFS

/// NFSv4 COMPOUND decoding and execution against memfs, without the RPC layer: the input is a
/// run of COMPOUND4args, each preceded by its length (2 bytes, big-endian), executed in order
/// by one engine, so state (client ids, sessions, opens, locks, the current and saved handles)
/// carries from one compound to the next as it does for a client.
final class Engine: @unchecked Sendable {
    static let shared = Engine()
    let group: LoopGroup
    let program: NFS4Program

    private init() {
        group = try! LoopGroup(LoopGroupSettings(threads: 1, delegationThreads: 1, io: .epoll, pollMode: .never, pinThreads: false))
        let vfs = VirtualFileSystem()
        let root = try! vfs.mount("m", backend: MemFS(capacity: 256 * 1024 * 1024)).backend.rootHandle
        let exports = NFSExports([NFSExport(id: 1, name: "/m", root: root)], signer: HandleSigner(key: WireServer.handleKey))
        program = NFS4Program(vfs: vfs, exports: exports, leaseSeconds: 90)
    }

    func run(_ compounds: [[UInt8]]) {
        let done = OneShot<Bool>()
        let program = self.program
        Task(executorPreference: group.loops[0]) {
            for compound in compounds { _ = await program.runCompound(compound) }
            done.set(true)
        }
        _ = done.wait()
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    var compounds: [[UInt8]] = []
    var position = 0
    while position + 2 <= bytes.count && compounds.count < 64 {
        let length = Int(bytes[position]) << 8 | Int(bytes[position + 1])
        position += 2
        let end = min(bytes.count, position + length)
        compounds.append(Array(bytes[position..<end]))
        position = end
    }
    if !compounds.isEmpty { Engine.shared.run(compounds) }
    return 0
}
