import SMB

/// SESSION_SETUP security buffers: SPNEGO (DER) wrapping and the NTLMSSP NEGOTIATE and
/// AUTHENTICATE messages inside, as the server reads them before anyone has logged in.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    SMBFuzzing.securityBlob(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
