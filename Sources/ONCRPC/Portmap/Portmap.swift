import Synchronization

/// A program/version/protocol/port entry portmap reports.
public struct PortMapping: Sendable, Equatable {
    public var program: UInt32
    public var version: UInt32
    /// IPPROTO_TCP (6); this server speaks RPC over TCP only.
    public var transport: UInt32
    public var port: UInt32

    public init(program: UInt32, version: UInt32, transport: UInt32 = 6, port: UInt32) {
        self.program = program
        self.version = version
        self.transport = transport
        self.port = port
    }
}

/// Portmap v2 (RFC 1833): answers GETPORT and DUMP for the programs this server serves.
/// Registration from outside (SET/UNSET) is refused: the server is the only registrar.
public final class Portmap: RPCProgram, @unchecked Sendable {
    public static let programNumber: UInt32 = 100_000
    private let table: Mutex<[PortMapping]>

    /// What GETPORT and DUMP report; set once the server's ports are bound.
    public var mappings: [PortMapping] {
        get { table.withLock { $0 } }
        set { table.withLock { $0 = newValue } }
    }

    enum Procedure: UInt32 { case null = 0, set, unset, getport, dump }

    public init(mappings: [PortMapping] = []) {
        table = Mutex(mappings)
        super.init(number: Self.programNumber, versions: 2...2, name: "portmap",
                   procedureNames: ["NULL", "SET", "UNSET", "GETPORT", "DUMP"])
    }

    public override func hasProcedure(_ procedure: UInt32, version: UInt32) -> Bool {
        Procedure(rawValue: procedure) != nil
    }

    public override func serve(_ call: RPCCall, arguments: XDRDecoder, context: RPCContext) async {
        var arguments = arguments
        switch Procedure(rawValue: call.procedure) {
        case .set?, .unset?:
            do throws(XDRError) {
                for _ in 0..<4 { _ = try arguments.uint32() }
            } catch {
                return context.fail(.garbageArguments)
            }
            context.reply(capacity: 4) { $0.bool(false) }
        case .getport?:
            let program, version, transport: UInt32
            do throws(XDRError) {
                program = try arguments.uint32()
                version = try arguments.uint32()
                transport = try arguments.uint32()
                _ = try arguments.uint32()
            } catch {
                return context.fail(.garbageArguments)
            }
            let mappings = self.mappings
            let port = mappings.first { $0.program == program && $0.version == version && $0.transport == transport }?.port ?? 0
            context.reply(capacity: 4) { $0.uint32(port) }
        case .dump?:
            let mappings = self.mappings
            context.reply(capacity: 4 + mappings.count * 20) { encoder in
                for mapping in mappings {
                    encoder.bool(true)
                    encoder.uint32(mapping.program)
                    encoder.uint32(mapping.version)
                    encoder.uint32(mapping.transport)
                    encoder.uint32(mapping.port)
                }
                encoder.bool(false)
            }
        case .null?, nil:
            context.reply(capacity: 0) { _ in }
        }
    }
}
