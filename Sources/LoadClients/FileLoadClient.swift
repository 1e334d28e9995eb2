import Runtime

/// A client of a file protocol (NFSv3, NFSv4.1, SMB): one method per operation of the
/// vocabulary, each answering (status, bytes, time of the reply's first byte); `perform`
/// dispatches and times them. What a protocol lacks stays `unsupported`.
open class FileLoadClient: LoadClient, @unchecked Sendable {
    typealias Outcome = (OpStatus, Int, UInt64)

    public override func perform(_ operation: Operation) async -> OpResult {
        let start = monotonicNanoseconds()
        let result: Outcome
        switch operation.kind.fileEquivalent {
        case .read: result = await read(operation)
        case .write: result = await write(operation)
        case .create: result = await create(operation)
        case .mkdir: result = await mkdir(operation)
        case .stat: result = await stat(operation)
        case .lookup: result = await lookup(operation)
        case .readdir: result = await readdir(operation)
        case .remove: result = await remove(operation)
        case .rmdir: result = await rmdir(operation)
        case .commit: result = await commit(operation)
        case .rename: result = await rename(operation)
        case .setattr: result = await setattr(operation)
        case .lock: result = await lock(operation)
        default: result = Self.unsupported()
        }
        return OpResult(status: result.0, bytes: result.1, start: start, firstByte: result.2, end: monotonicNanoseconds())
    }

    static func unsupported() -> Outcome { (.unsupported, 0, monotonicNanoseconds()) }

    func read(_ operation: Operation) async -> Outcome { Self.unsupported() }
    func write(_ operation: Operation) async -> Outcome { Self.unsupported() }
    func create(_ operation: Operation) async -> Outcome { Self.unsupported() }
    func mkdir(_ operation: Operation) async -> Outcome { Self.unsupported() }
    func stat(_ operation: Operation) async -> Outcome { Self.unsupported() }
    func lookup(_ operation: Operation) async -> Outcome { Self.unsupported() }
    func readdir(_ operation: Operation) async -> Outcome { Self.unsupported() }
    func remove(_ operation: Operation) async -> Outcome { Self.unsupported() }
    func rmdir(_ operation: Operation) async -> Outcome { Self.unsupported() }
    func commit(_ operation: Operation) async -> Outcome { Self.unsupported() }
    func rename(_ operation: Operation) async -> Outcome { Self.unsupported() }
    func setattr(_ operation: Operation) async -> Outcome { Self.unsupported() }
    func lock(_ operation: Operation) async -> Outcome { Self.unsupported() }
}
