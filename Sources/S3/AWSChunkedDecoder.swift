import Crypto
import Runtime

/// Decodes an `aws-chunked` body (SigV4 streaming uploads):
/// `hex-size;chunk-signature=SIG\r\n DATA \r\n` ... `0;chunk-signature=SIG\r\n [trailers] \r\n`,
/// or without `;chunk-signature` for STREAMING-UNSIGNED-PAYLOAD-TRAILER. Each chunk's signature
/// is checked when the chunk is complete. Data comes out as views of the input (no copy);
/// only the short header and trailer lines are collected across input pieces.
struct AWSChunkedDecoder {
    private enum State {
        case header
        case data(remaining: Int)
        case dataEnd
        case trailers
        case done
    }

    private var state = State.header
    private var line: [UInt8] = []
    private var signature = ""
    private let signer: ChunkSigner?
    private let chunkHash: Digest?
    /// Bytes of data decoded so far.
    private(set) var decodedLength: UInt64 = 0
    static let maxLine = 4096
    /// Chunks larger than this are refused (AWS SDKs send 64 KiB to 8 MiB).
    static let maxChunk = 64 * 1024 * 1024

    init(signer: ChunkSigner?) {
        self.signer = signer
        chunkHash = signer == nil ? nil : Digest(.sha256)
    }

    var isDone: Bool {
        if case .done = state { return true }
        return false
    }

    /// Decodes `input`; returns the ranges of `input` that are payload data, in order.
    mutating func feed(_ input: UnsafeRawBufferPointer) throws(S3Error) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        var i = 0
        while i < input.count {
            switch state {
            case .header, .trailers:
                let b = input[i]
                i += 1
                if b != 0x0A {
                    guard line.count < Self.maxLine else { throw .invalidRequest("An aws-chunked header line is too long.") }
                    line.append(b)
                    continue
                }
                if line.last == 0x0D { line.removeLast() }
                if case .trailers = state {
                    if line.isEmpty { state = .done }
                    line.removeAll(keepingCapacity: true)
                    continue
                }
                try parseHeader()
            case let .data(remaining):
                let count = min(remaining, input.count - i)
                pieces.append(i..<(i + count))
                chunkHash?.update(UnsafeRawBufferPointer(rebasing: input[i..<(i + count)]))
                decodedLength += UInt64(count)
                i += count
                state = remaining == count ? .dataEnd : .data(remaining: remaining - count)
            case .dataEnd:
                let b = input[i]
                i += 1
                if b == 0x0D && line.isEmpty { line.append(b); continue }
                guard b == 0x0A else { throw .invalidRequest("An aws-chunked chunk is not followed by CRLF.") }
                line.removeAll(keepingCapacity: true)
                try finishChunk()
                state = .header
            case .done:
                throw .invalidRequest("Data follows the final aws-chunked chunk.")
            }
        }
        return pieces
    }

    private mutating func parseHeader() throws(S3Error) {
        let text = String(decoding: line, as: UTF8.self)
        line.removeAll(keepingCapacity: true)
        let parts = text.split(separator: ";", maxSplits: 1)
        guard let sizeText = parts.first, let size = Int(sizeText, radix: 16), size >= 0, size <= Self.maxChunk else {
            throw .invalidRequest("An aws-chunked chunk size is malformed.")
        }
        if signer != nil {
            guard parts.count == 2, parts[1].hasPrefix("chunk-signature="), parts[1].utf8.count == 16 + 64 else {
                throw .signatureDoesNotMatch
            }
            signature = String(parts[1].dropFirst(16))
        }
        if size == 0 {
            try finishChunk()
            state = .trailers
        } else {
            state = .data(remaining: size)
        }
    }

    private mutating func finishChunk() throws(S3Error) {
        guard let signer, let chunkHash else { return }
        if !signer.verify(signature: signature, dataHash: chunkHash.finish()) { throw .signatureDoesNotMatch }
    }
}
