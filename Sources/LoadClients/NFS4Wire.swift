import ONCRPC
import Runtime

/// The pieces of NFSv4.1's XDR the load client sends and skips (RFC 8881 §16–18).
enum NFS4Wire {
    static let program: UInt32 = 100003
    static let maxHandle = 128

    /// Operation numbers (RFC 8881 §16.2.1).
    enum Op {
        static let close: UInt32 = 4, commit: UInt32 = 5, create: UInt32 = 6, getattr: UInt32 = 9, getfh: UInt32 = 10
        static let lock: UInt32 = 12, locku: UInt32 = 14, lookup: UInt32 = 15, open: UInt32 = 18, putfh: UInt32 = 22
        static let putrootfh: UInt32 = 24, read: UInt32 = 25, readdir: UInt32 = 26, remove: UInt32 = 28, rename: UInt32 = 29
        static let savefh: UInt32 = 32, setattr: UInt32 = 34, write: UInt32 = 38, exchangeID: UInt32 = 42
        static let createSession: UInt32 = 43, freeStateid: UInt32 = 45, sequence: UInt32 = 53, reclaimComplete: UInt32 = 58
    }

    /// Status values the client reacts to (RFC 8881 §15.1).
    static let stale: Int32 = 70, badHandle: Int32 = 10001, expired: Int32 = 10011
    static let oldStateid: Int32 = 10024, badStateid: Int32 = 10025, fhExpired: Int32 = 10014

    /// COMPOUND4args up to the operations: empty tag, minor version 1, the op count.
    static func compoundHeader(_ e: inout XDREncoder, operations: Int) {
        e.uint32(0)
        e.uint32(1)
        e.uint32(UInt32(operations))
    }

    static func putfh(_ e: inout XDREncoder, _ fh: [UInt8]) {
        e.uint32(Op.putfh)
        e.opaque(fh)
    }

    /// channel_attrs4 (§18.36.1) without RDMA.
    static func channelAttributes(_ e: inout XDREncoder, maxRequest: Int, maxResponse: Int, cached: Int, operations: Int, requests: Int) {
        e.uint32(0)                           // header pad
        e.uint32(UInt32(maxRequest))
        e.uint32(UInt32(maxResponse))
        e.uint32(UInt32(cached))
        e.uint32(UInt32(operations))
        e.uint32(UInt32(requests))
        e.uint32(0)                           // no RDMA ird
    }

    /// fattr4 with size (attribute 4) and/or mode (33), in attribute order.
    static func attributes(_ e: inout XDREncoder, size: UInt64?, mode: UInt32) {
        e.uint32(2)
        e.uint32(size == nil ? 0 : 1 << 4)
        e.uint32(1 << 1)
        e.uint32(size == nil ? 4 : 12)
        if let size { e.uint64(size) }
        e.uint32(mode)
    }

    /// Reads one result's opcode (which must be `op`) and returns its status.
    static func opStatus(_ d: inout XDRDecoder, _ op: UInt32) throws(XDRError) -> UInt32 {
        guard try d.uint32() == op else { throw XDRError() }
        return try d.uint32()
    }

    static func skipBitmap(_ d: inout XDRDecoder) throws(XDRError) {
        let words = Int(try d.uint32())
        guard words <= 8 else { throw XDRError() }
        try d.skip(4 * words)
    }

    /// open_delegation4 (§18.16.2): none, read, write or none with a reason.
    static func skipDelegation(_ d: inout XDRDecoder) throws(XDRError) {
        switch try d.uint32() {
        case 0: break
        case 1:
            try d.skip(16 + 4)                // stateid, recall
            try skipACE(&d)
        case 2:
            try d.skip(16 + 4)
            try d.skip(4 + 8)                 // space limit: a size, or blocks × block size
            try skipACE(&d)
        case 3:
            let why = try d.uint32()
            if why == 6 || why == 7 { _ = try d.bool() }
        default: throw XDRError()
        }
    }

    private static func skipACE(_ d: inout XDRDecoder) throws(XDRError) {
        try d.skip(12)
        _ = try d.opaque(maximum: 1024)
    }
}

/// stateid4: a sequence number and 12 opaque bytes.
struct NFS4Stateid: Sendable {
    var seqid: UInt32
    var other: (UInt32, UInt32, UInt32)

    static let anonymous = NFS4Stateid(seqid: 0, other: (0, 0, 0))

    init(seqid: UInt32, other: (UInt32, UInt32, UInt32)) {
        self.seqid = seqid
        self.other = other
    }

    init(_ d: inout XDRDecoder) throws(XDRError) {
        seqid = try d.uint32()
        other = (try d.uint32(), try d.uint32(), try d.uint32())
    }

    func encode(_ e: inout XDREncoder) {
        e.uint32(seqid)
        e.uint32(other.0); e.uint32(other.1); e.uint32(other.2)
    }
}

/// The fore channel's slots (RFC 8881 §2.10.6.1): each slot's next sequence id, the free ones,
/// and the operations waiting for one. Loop thread only.
final class NFS4SlotTable {
    var seqids: [UInt32]
    private var free: [Int]
    private var waiting: [UnsafeContinuation<Int, Never>] = []
    private var waitingHead = 0

    init(count: Int) {
        seqids = Array(repeating: 1, count: count)
        free = Array((0..<count).reversed())
    }

    var count: Int { seqids.count }

    func acquire() async -> Int {
        if let slot = free.popLast() { return slot }
        return await withUnsafeContinuation { waiting.append($0) }
    }

    func release(_ slot: Int) {
        if waitingHead < waiting.count {
            let next = waiting[waitingHead]
            waitingHead += 1
            if waitingHead == waiting.count { waiting.removeAll(keepingCapacity: true); waitingHead = 0 }
            next.resume(returning: slot)
        } else {
            free.append(slot)
        }
    }
}

/// "a/b/c" → ("a/b", "c"); "c" → ("", "c").
func splitPath(_ path: String) -> (parent: String, name: String) {
    guard let slash = path.lastIndex(of: "/") else { return ("", path) }
    return (String(path[..<slash]), String(path[path.index(after: slash)...]))
}
