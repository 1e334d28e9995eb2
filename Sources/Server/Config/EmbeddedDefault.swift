extension Configuration {
    /// The configuration `dmanoel-nas serve` runs when given none, printed by
    /// `dmanoel-nas config default`: one in-memory filesystem, mounted at /memfs and offered over
    /// every protocol, so that a new user sees the server work with one command.
    ///
    /// - It listens on 127.0.0.1 only: trying the server out must not expose anything to the
    ///   network. Set `server.bind` to "0.0.0.0" (or an address of the machine) to serve others.
    /// - Ports are the defaults, all unprivileged: NFS 2049 (with MOUNT and portmap), SMB 4445,
    ///   S3 9000, admin API 9870, metrics 9871; portmap on 111 is off.
    /// - NFS exports /memfs (no `exports` section, so each mount is exported at /NAME); the SMB
    ///   share "memfs" admits guests; the S3 bucket "memfs" serves the same files.
    /// - The user "nas" (password "nas", uid and gid 1000, S3 access key "nasaccesskey" and
    ///   secret key "nassecretkey123") is a DEMO credential, published here: change it before
    ///   any real use.
    public static let embeddedDefaultText = #"""
    {
        "server": {
            "bind": "127.0.0.1",
            "nfs_port": 2049,
            "portmap_port": 0,
            "smb_port": 4445,
            "s3_port": 9000,
            "admin_port": 9870,
            "metrics_port": 9871,
            "io": "io_uring",
            "poll_mode": "auto"
        },
        "mounts": {
            "memfs": {
                "module": "memfs",
                "path": "/"
            }
        },
        "shares": {
            "memfs": {
                "path": "/memfs",
                "guest": true
            }
        },
        "buckets": {
            "memfs": {
                "path": "/memfs"
            }
        },
        "users": {
            "nas": {
                "password": "nas",
                "uid": 1000,
                "gid": 1000,
                "s3_access_key": "nasaccesskey",
                "s3_secret_key": "nassecretkey123"
            }
        }
    }
    """#

    /// The name messages use for the embedded default.
    public static let embeddedDefaultSource = "<embedded default>"

    /// ``embeddedDefaultText``, loaded. It has no environment-dependent settings, so it carries
    /// no warnings on any Linux machine.
    public static func embeddedDefault() -> LoadedConfiguration {
        do {
            return try parse(embeddedDefaultText, source: embeddedDefaultSource)
        } catch {
            fatalError("the embedded default configuration does not load: \(error)")
        }
    }
}
