import Glibc
import VFS

/// The responses to one received message (one request, or a compound chain), built before
/// anything is sent: headers and bodies are encoded into this object's memory, READ data stays
/// by reference (unless the reply is encrypted, which needs it contiguous). Replies are
/// reused per connection, so steady-state requests allocate nothing here.
final class SMBReply {
    struct Element {
        var start: Int
        var end: Int
        var segmentStart: Int
        var segmentEnd: Int
        var dataCount: Int
        /// Zero bytes after the data, to align the next compound element (data elements only).
        var padAfter: Int
        var signer: SMBSigner?
    }

    private(set) var base: UnsafeMutableRawPointer
    private(set) var capacity: Int
    private(set) var count = 0
    var elements: [Element] = []
    var segments: [DataSegment] = []
    /// Set when the reply must leave encrypted under this session's key.
    var encryptFor: SMBSession?

    init() {
        capacity = 4096
        base = .allocate(byteCount: capacity, alignment: 16)
        elements.reserveCapacity(4)
    }

    deinit { base.deallocate() }

    func reset() {
        count = 0
        elements.removeAll(keepingCapacity: true)
        segments.removeAll(keepingCapacity: true)
        encryptFor = nil
        if capacity > 1 << 20 {
            // Do not keep a huge listing's memory for every later request.
            base.deallocate()
            capacity = 4096
            base = .allocate(byteCount: capacity, alignment: 16)
        }
    }

    private func ensure(_ extra: Int) {
        guard count + extra > capacity else { return }
        var grown = capacity
        while grown < count + extra { grown *= 2 }
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: grown, alignment: 16)
        fresh.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = fresh
        capacity = grown
    }

    /// Pads the previous element so the next one starts 8-byte aligned.
    private func alignForNext() {
        guard let last = elements.indices.last else { return }
        if elements[last].dataCount > 0 && elements[last].segmentEnd > elements[last].segmentStart {
            let length = elements[last].end - elements[last].start + elements[last].dataCount
            elements[last].padAfter = (8 - length % 8) % 8
        } else {
            let padding = (8 - (count - elements[last].start) % 8) % 8
            ensure(padding)
            (base + count).initializeMemory(as: UInt8.self, repeating: 0, count: padding)
            count += padding
            elements[last].end = count
        }
    }

    /// Encodes one response element: `encode` writes header and body into at most `capacity`
    /// bytes. `data` (READ) follows by reference, or copied when the reply is encrypted.
    func append(capacity: Int, signer: SMBSigner?, data: [DataSegment] = [], dataCount: Int = 0, _ encode: (inout SMBWriter) -> Void) {
        alignForNext()
        let copyData = encryptFor != nil ? dataCount : 0
        ensure(capacity + copyData)
        let start = count
        var writer = SMBWriter(base + start, capacity: capacity)
        encode(&writer)
        count += writer.offset
        let segmentStart = segments.count
        var referenced = 0
        if dataCount > 0 {
            if copyData > 0 {
                for segment in data where !segment.bytes.isEmpty {
                    (base + count).copyMemory(from: segment.bytes.baseAddress!, byteCount: segment.bytes.count)
                    count += segment.bytes.count
                }
            } else {
                segments.append(contentsOf: data)
                referenced = dataCount
            }
        }
        elements.append(Element(start: start, end: count, segmentStart: segmentStart, segmentEnd: segments.count,
                                dataCount: referenced, padAfter: 0, signer: signer))
    }

    /// Fixes NextCommand in every element but the last and signs the elements that need it.
    func finish() {
        for index in elements.indices {
            let element = elements[index]
            let header = base + element.start
            if index < elements.count - 1 {
                let next = UInt32(element.end - element.start + element.dataCount + element.padAfter)
                header.storeBytes(of: next.littleEndian, toByteOffset: 20, as: UInt32.self)
            }
            guard let signer = element.signer else { continue }
            let flags = UInt32(littleEndian: header.loadUnaligned(fromByteOffset: 16, as: UInt32.self)) | SMB2Header.Flags.signed.rawValue
            header.storeBytes(of: flags.littleEndian, toByteOffset: 16, as: UInt32.self)
            (header + 48).initializeMemory(as: UInt8.self, repeating: 0, count: 16)
            signer.start(header: header)
            signer.update(UnsafeRawBufferPointer(start: header, count: element.end - element.start))
            for segment in segments[element.segmentStart..<element.segmentEnd] { signer.update(segment.bytes) }
            if element.padAfter > 0 {
                let zeros: UInt64 = 0
                withUnsafeBytes(of: zeros) { signer.update(UnsafeRawBufferPointer(rebasing: $0[0..<element.padAfter])) }
            }
            signer.finish(into: header + 48)
        }
    }

    /// Total bytes of the SMB2 message(s), without the transport header.
    var messageLength: Int {
        elements.reduce(0) { $0 + $1.end - $1.start + $1.dataCount + $1.padAfter }
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}
