import FuzzWire

/// Frames a client sends on the SMB port, one at a time: NetBIOS session framing, SMB1 negotiate upgrades,
/// transform headers, SMB2 headers and compounds, and every command's request decoding,
/// through NEGOTIATE and SESSION_SETUP (anonymous and guest logons succeed without a key, so
/// captured sessions replay) to the commands on the guest share and on IPC$ pipes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let server = WireServer.shared
    server.exchangeSMB(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
