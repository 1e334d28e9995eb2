import FuzzWire

/// Bytes a client sends on the NFS port: RPC record marking (fragments, oversized and
/// half-sent records), call headers and credentials, then the arguments of any NFSv3, MOUNT,
/// portmap or NFSv4 procedure, decoded and executed by the running server over memfs.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let server = WireServer.shared
    server.exchange(UnsafeRawBufferPointer(start: data, count: size), port: server.nfsPort)
    return 0
}
