import Server

/// The configuration loader (JSON parser, schema, every key's checks) on arbitrary text.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)
    _ = try? Configuration.parse(text, source: "fuzz")
    return 0
}
