/// The server service (MS-SRVS) over DCE/RPC: NetrShareEnum (opnum 15), NetrShareGetInfo (16)
/// and NetrServerGetInfo (21), NDR-encoded by hand for the levels clients use (share info 0
/// and 1, server info 100 and 101). Enough for `smbclient -L` and Windows' share browsing.
struct SRVSVC {
    /// 4b324fc8-1670-01d3-1278-5a47bf6ee188 in NDR byte order.
    static let interfaceID: [UInt8] = [0xC8, 0x4F, 0x32, 0x4B, 0x70, 0x16, 0xD3, 0x01, 0x12, 0x78, 0x5A, 0x47, 0xBF, 0x6E, 0xE1, 0x88]

    static let typeDisk: UInt32 = 0
    static let typeIPC: UInt32 = 0x8000_0003
    static let errorInvalidLevel: UInt32 = 124
    static let errorNetNameNotFound: UInt32 = 2310

    let shares: [(name: String, type: UInt32, comment: String)]
    let serverName: String

    init(server: SMBServer) {
        shares = server.shares.map { ($0.name, Self.typeDisk, $0.comment) } + [("IPC$", Self.typeIPC, "IPC Service")]
        serverName = server.settings.serverName
    }

    /// The response stub, or nil for an operation this service does not have.
    func call(opnum: UInt16, stub: [UInt8]) -> [UInt8]? {
        var reader = NDRReader(stub)
        switch opnum {
        case 15:
            guard (try? reader.skipUniqueString()) != nil, let level = try? reader.u32() else { return fault() }
            return shareEnum(level: level)
        case 16:
            guard (try? reader.skipUniqueString()) != nil, let name = try? reader.string(), let level = try? reader.u32() else { return fault() }
            return shareGetInfo(name: name, level: level)
        case 21:
            guard (try? reader.skipUniqueString()) != nil, let level = try? reader.u32() else { return fault() }
            return serverGetInfo(level: level)
        default:
            return nil
        }
    }

    /// A malformed request: an empty stub the client will reject (treated as a fault upstream).
    private func fault() -> [UInt8]? { nil }

    private func shareEnum(level: UInt32) -> [UInt8] {
        var out = NDRWriter()
        guard level == 0 || level == 1 else {
            out.u32(level)
            out.u32(level)
            out.u32(0)  // null container
            out.u32(0)  // total entries
            out.u32(0)  // resume handle: null
            out.u32(Self.errorInvalidLevel)
            return out.bytes
        }
        out.u32(level)
        out.u32(level)
        out.pointer()          // container
        out.u32(UInt32(shares.count))
        out.pointer()          // array
        out.u32(UInt32(shares.count))
        for share in shares {
            out.pointer()      // netname
            if level == 1 {
                out.u32(share.type)
                out.pointer()  // remark
            }
        }
        for share in shares {
            out.string(share.name)
            if level == 1 { out.string(share.comment) }
        }
        out.u32(UInt32(shares.count))  // total entries
        out.pointer()
        out.u32(0)                     // resume handle
        out.u32(0)                     // WERR_OK
        return out.bytes
    }

    private func shareGetInfo(name: String, level: UInt32) -> [UInt8] {
        var out = NDRWriter()
        out.u32(level)
        guard level == 0 || level == 1 else {
            out.u32(0)
            out.u32(Self.errorInvalidLevel)
            return out.bytes
        }
        guard let share = shares.first(where: { $0.name.lowercased() == name.lowercased() }) else {
            out.u32(0)
            out.u32(Self.errorNetNameNotFound)
            return out.bytes
        }
        out.pointer()
        out.pointer()
        if level == 1 {
            out.u32(share.type)
            out.pointer()
        }
        out.string(share.name)
        if level == 1 { out.string(share.comment) }
        out.u32(0)
        return out.bytes
    }

    private func serverGetInfo(level: UInt32) -> [UInt8] {
        var out = NDRWriter()
        out.u32(level)
        guard level == 100 || level == 101 else {
            out.u32(0)
            out.u32(Self.errorInvalidLevel)
            return out.bytes
        }
        out.pointer()
        out.u32(500)           // PLATFORM_ID_NT
        out.pointer()          // name
        if level == 101 {
            out.u32(6)         // version 6.1
            out.u32(1)
            out.u32(0x0000_9003)  // workstation, server, NT server
            out.pointer()      // comment
        }
        out.string(serverName)
        if level == 101 { out.string("dmanoel-NAS") }
        out.u32(0)
        return out.bytes
    }
}

/// Reads the NDR (little-endian, 4-byte aligned) fields of a request stub.
struct NDRReader {
    struct Malformed: Error {}
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func align() { offset = (offset + 3) & ~3 }

    mutating func u32() throws(Malformed) -> UInt32 {
        align()
        guard offset + 4 <= bytes.count else { throw Malformed() }
        defer { offset += 4 }
        return UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }

    /// A conformant varying UTF-16 string (max count, offset, actual count, characters).
    mutating func string() throws(Malformed) -> String {
        let maximum = try u32()
        _ = try u32()
        let actual = Int(try u32())
        guard actual <= Int(maximum), actual <= 4096, offset + actual * 2 <= bytes.count else { throw Malformed() }
        var units: [UInt16] = []
        for i in 0..<actual { units.append(UInt16(bytes[offset + 2 * i]) | UInt16(bytes[offset + 2 * i + 1]) << 8) }
        offset += actual * 2
        if units.last == 0 { units.removeLast() }
        return String(decoding: units, as: UTF16.self)
    }

    /// A unique pointer to a string (the server name), skipped.
    mutating func skipUniqueString() throws(Malformed) {
        if try u32() != 0 { _ = try string() }
    }
}

/// Builds an NDR stub: 4-byte aligned integers, referent ids for pointers, strings as
/// conformant varying arrays of UTF-16 with their terminator.
struct NDRWriter {
    private(set) var bytes: [UInt8] = []
    private var nextReferent: UInt32 = 0x0002_0000

    mutating func align() { while bytes.count % 4 != 0 { bytes.append(0) } }

    mutating func u32(_ value: UInt32) {
        align()
        bytes += Bytes.le32(value)
    }

    /// A non-null pointer whose target is written later (deferred), in order.
    mutating func pointer() {
        u32(nextReferent)
        nextReferent += 4
    }

    mutating func string(_ text: String) {
        let units = Array(text.utf16) + [0]
        u32(UInt32(units.count))
        u32(0)
        u32(UInt32(units.count))
        for unit in units { bytes += Bytes.le16(unit) }
        align()
    }
}
