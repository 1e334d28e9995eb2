/// Per-protocol limits in the `server` section: how much one client may ask of the server at
/// once. Past an in-flight limit a connection stops being read (the client's TCP window fills)
/// rather than failing; past a size limit the request gets the protocol's error; past an open
/// limit the open is refused with the protocol's error.
///
/// | key                                | default | range                    |
/// |------------------------------------|---------|--------------------------|
/// | `nfs_max_record_bytes`             | 4 MiB   | 1114112 to 67108864      |
/// | `nfs_max_calls_per_connection`     | 128     | 1 to 65536               |
/// | `nfs4_max_opens_per_client`        | 16384   | 1 to 1000000             |
/// | `smb_max_io_bytes`                 | 8 MiB   | 65536 to 8388608         |
/// | `smb_max_credits`                  | 8192    | 1 to 65535               |
/// | `smb_max_requests_per_connection`  | 128     | 1 to 65536               |
/// | `smb_max_opens_per_session`        | 16384   | 1 to 1000000             |
/// | `s3_max_put_bytes`                 | 5 GiB   | 1 to 5368709120          |
public struct LimitSettings: Sendable, Equatable {
    /// Largest RPC record (all fragments); a larger one closes the connection. At least
    /// `minNFSRecordBytes`, so the 1 MiB READ/WRITE that FSINFO offers (rtmax/wtmax) fits.
    public var nfsMaxRecordBytes = 4 << 20
    /// RPC calls one connection may have running at once.
    public var nfsMaxCallsPerConnection = 128
    /// NFSv4 open stateids one client may hold; more OPENs get NFS4ERR_RESOURCE (4.0) or
    /// NFS4ERR_DELAY (4.1, which has no RESOURCE).
    public var nfs4MaxOpensPerClient = 16384
    /// SMB MaxReadSize/MaxWriteSize/MaxTransactSize advertised in NEGOTIATE and enforced.
    public var smbMaxIOBytes = 8 << 20
    /// Credits one SMB connection may hold.
    public var smbMaxCredits = 8192
    /// SMB requests one connection may have running at once.
    public var smbMaxRequestsPerConnection = 128
    /// Opens (files, directories, pipes) one SMB session may hold; more CREATEs get
    /// STATUS_TOO_MANY_OPENED_FILES.
    public var smbMaxOpensPerSession = 16384
    /// Largest S3 PutObject / UploadPart body; larger ones get EntityTooLarge.
    public var s3MaxPutBytes: UInt64 = 5 << 30

    public init() {}

    /// A 1 MiB WRITE (NFS3.maxTransfer, NFSv4 maxwrite) with its RPC and NFS headers.
    public static let minNFSRecordBytes = (1 << 20) + 65536

    static let keys = [
        "nfs_max_record_bytes", "nfs_max_calls_per_connection", "nfs4_max_opens_per_client", "smb_max_io_bytes",
        "smb_max_credits", "smb_max_requests_per_connection", "smb_max_opens_per_session", "s3_max_put_bytes",
    ]

    static func decode(_ section: ConfigSection) throws(ConfigError) -> LimitSettings {
        var limits = LimitSettings()
        limits.nfsMaxRecordBytes = try section.int(
            "nfs_max_record_bytes", in: minNFSRecordBytes...(64 << 20), default: limits.nfsMaxRecordBytes, example: "4194304",
            hint: "Use \(minNFSRecordBytes) (a 1 MiB WRITE with its headers, the size clients are offered) to 67108864 (64 MiB) bytes.")
        limits.nfsMaxCallsPerConnection = try section.int(
            "nfs_max_calls_per_connection", in: 1...65536, default: limits.nfsMaxCallsPerConnection, example: "128",
            hint: "Use 1 to 65536 calls; past it the server stops reading the connection until calls finish.")
        limits.nfs4MaxOpensPerClient = try section.int(
            "nfs4_max_opens_per_client", in: 1...1_000_000, default: limits.nfs4MaxOpensPerClient, example: "16384",
            hint: "Use 1 to 1000000 open files per NFSv4 client.")
        limits.smbMaxIOBytes = try section.int(
            "smb_max_io_bytes", in: 65536...(8 << 20), default: limits.smbMaxIOBytes, example: "8388608",
            hint: "Use 65536 (64 KiB) to 8388608 (8 MiB) bytes: the largest SMB READ, WRITE or IOCTL.")
        limits.smbMaxCredits = try section.int(
            "smb_max_credits", in: 1...65535, default: limits.smbMaxCredits, example: "8192",
            hint: "Use 1 to 65535 credits per connection.")
        limits.smbMaxRequestsPerConnection = try section.int(
            "smb_max_requests_per_connection", in: 1...65536, default: limits.smbMaxRequestsPerConnection, example: "128",
            hint: "Use 1 to 65536 requests; past it the server stops reading the connection until requests finish.")
        limits.smbMaxOpensPerSession = try section.int(
            "smb_max_opens_per_session", in: 1...1_000_000, default: limits.smbMaxOpensPerSession, example: "16384",
            hint: "Use 1 to 1000000 open files per SMB session.")
        limits.s3MaxPutBytes = UInt64(try section.int(
            "s3_max_put_bytes", in: 1...(5 << 30), default: Int(limits.s3MaxPutBytes), example: "5368709120",
            hint: "Use 1 to 5368709120 (5 GiB, S3's own limit) bytes; larger objects go up in parts (multipart upload)."))
        return limits
    }

    /// The keys whose values differ from the defaults.
    func encode(into object: inout JSONObject) {
        let defaults = LimitSettings()
        func put(_ key: String, _ value: Int, _ standard: Int) { if value != standard { object[key] = .number(Double(value)) } }
        put("nfs_max_record_bytes", nfsMaxRecordBytes, defaults.nfsMaxRecordBytes)
        put("nfs_max_calls_per_connection", nfsMaxCallsPerConnection, defaults.nfsMaxCallsPerConnection)
        put("nfs4_max_opens_per_client", nfs4MaxOpensPerClient, defaults.nfs4MaxOpensPerClient)
        put("smb_max_io_bytes", smbMaxIOBytes, defaults.smbMaxIOBytes)
        put("smb_max_credits", smbMaxCredits, defaults.smbMaxCredits)
        put("smb_max_requests_per_connection", smbMaxRequestsPerConnection, defaults.smbMaxRequestsPerConnection)
        put("smb_max_opens_per_session", smbMaxOpensPerSession, defaults.smbMaxOpensPerSession)
        put("s3_max_put_bytes", Int(s3MaxPutBytes), Int(defaults.s3MaxPutBytes))
    }
}
