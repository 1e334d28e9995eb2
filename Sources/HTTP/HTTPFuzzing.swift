/// Entry points for the fuzz targets (Fuzz/, scripts/fuzz): the parsers a client reaches
/// before anything else, driven with arbitrary bytes. Not used by the server itself.
public enum HTTPFuzzing {
    /// Parses `bytes` as a request head, then the rest as chunk-size lines, as the connection
    /// would; returns normally whatever the input.
    public static func request(_ bytes: UnsafeRawBufferPointer) {
        let request = HTTPRequest()
        var parser = HTTPHeadParser()
        var limits = HTTPLimits()
        limits.maxHeadSize = 8 * 1024
        guard case let .complete(length) = parser.parse(bytes, into: request, limits: limits) else { return }
        _ = request.value("host")
        _ = request.values(named: "x-amz-date")
        var position = length
        while position < bytes.count {
            var end = position
            while end < bytes.count && bytes[end] != 0x0A { end += 1 }
            _ = HTTPConnection.chunkSize(UnsafeRawBufferPointer(rebasing: bytes[position..<end]))
            position = end + 1
        }
        _ = HTTPDate.parse(String(decoding: bytes.prefix(64), as: UTF8.self))
    }
}
