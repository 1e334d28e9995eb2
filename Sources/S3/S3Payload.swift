import Crypto
import HTTP
import Runtime

/// Reads a PUT or POST body for S3: undoes `aws-chunked` framing, hashes what arrives (MD5 for
/// the ETag, SHA-256 when the signature covers the payload) and, at the end, checks the length,
/// the SHA-256, the chunk signatures and Content-MD5. Data is handed out as views of the
/// receive buffers.
final class S3Payload {
    private let exchange: HTTPExchange
    private let protection: PayloadProtection
    private let md5 = Digest(.md5)
    private let sha256: Digest?
    private var decoder: AWSChunkedDecoder?
    private let contentMD5: [UInt8]?
    /// The length the client declared for the (decoded) object.
    let declaredLength: UInt64?
    private(set) var received: UInt64 = 0
    /// Pieces of the current receive slice not yet handed out.
    private var pending: [Range<Int>] = []
    private var current: ByteSlice?

    init(_ exchange: HTTPExchange, protection: PayloadProtection, lengthRequired: Bool = true) throws(S3Error) {
        self.exchange = exchange
        self.protection = protection
        let request = exchange.request
        switch protection {
        case let .sha256(expected):
            sha256 = expected == ChunkSigner.emptyHashBytes && !exchange.hasBody ? nil : Digest(.sha256)
        default:
            sha256 = nil
        }
        switch protection {
        case let .signedChunks(signer):
            decoder = AWSChunkedDecoder(signer: signer)
        case .unsignedChunks:
            decoder = AWSChunkedDecoder(signer: nil)
        default:
            decoder = nil
        }
        if decoder != nil {
            guard let text = request.value("x-amz-decoded-content-length"), let length = UInt64(text) else {
                throw .missingContentLength
            }
            declaredLength = length
        } else if request.isChunked {
            declaredLength = nil
        } else if let length = request.contentLength {
            declaredLength = length
        } else if lengthRequired {
            throw .missingContentLength
        } else {
            declaredLength = nil
        }
        if let md5Text = request.value("content-md5") {
            guard let bytes = Base64.decode(md5Text), bytes.count == 16 else { throw .invalidDigest }
            contentMD5 = bytes
        } else {
            contentMD5 = nil
        }
    }

    /// The next piece of object data (valid until the next call), or nil at the end.
    func next() async throws(S3Error) -> UnsafeRawBufferPointer? {
        while true {
            if !pending.isEmpty, let current {
                let range = pending.removeFirst()
                let bytes = UnsafeRawBufferPointer(rebasing: current.unsafeBytes[range])
                md5.update(bytes)
                received += UInt64(bytes.count)
                if let declaredLength, received > declaredLength { throw .incompleteBody }
                return bytes
            }
            current?.release()
            current = nil
            let chunk: ByteSlice?
            do {
                chunk = try await exchange.nextBodyChunk()
            } catch {
                switch error {
                case .timedOut: throw .requestTimeout
                case .tooLarge: throw .entityTooLarge
                case .truncated, .malformed: throw .incompleteBody
                }
            }
            guard let chunk else { return nil }
            current = chunk
            sha256?.update(chunk.unsafeBytes)
            if decoder != nil {
                pending = try decoder!.feed(chunk.unsafeBytes)
            } else if !chunk.isEmpty {
                pending = [0..<chunk.count]
            }
        }
    }

    /// Releases what is held; call when done, also after an error.
    func close() {
        current?.release()
        current = nil
        pending = []
    }

    /// Checks everything that can only be checked at the end; returns the MD5 of the data.
    func finish() throws(S3Error) -> [UInt8] {
        close()
        if let declaredLength, received != declaredLength { throw .incompleteBody }
        if let decoder, !decoder.isDone { throw .incompleteBody }
        if case let .sha256(expected) = protection {
            let actual = sha256?.finish() ?? ChunkSigner.emptyHashBytes
            if actual != expected { throw .contentSHA256Mismatch }
        }
        let digest = md5.finish()
        if let contentMD5, contentMD5 != digest { throw .badDigest }
        return digest
    }
}

extension ChunkSigner {
    static let emptyHashBytes: [UInt8] = Hex.decode(Substring(emptyHash))!
}
