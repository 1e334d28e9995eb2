import ONCRPC

/// XDR decoding as an RPC call header and AUTH_SYS body are read: integers, opaques and
/// strings with lengths taken from the input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var decoder = XDRDecoder(UnsafeRawBufferPointer(start: data, count: size))
    do throws(XDRError) {
        for _ in 0..<6 { _ = try decoder.uint32() }
        _ = try decoder.opaque(maximum: 400)
        _ = try decoder.uint32()
        _ = try decoder.string(maximum: 255)
        _ = try decoder.uint64()
        _ = try decoder.opaque(maximum: 64)
    } catch {}
    return 0
}
