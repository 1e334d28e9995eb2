import Server

/// Machines for configuration tests: what exists is spelled out, nothing is asked of the host.
extension ConfigurationEnvironment {
    /// A machine with only the given files, loopback addresses, no RDMA device, not root.
    static func stub(
        files: [String: FileKind] = [:],
        addresses: [IPAddress]? = [IPAddress("127.0.0.1")!, IPAddress("::1")!],
        rdmaDevices: [String] = [],
        uid: UInt32 = 1000
    ) -> ConfigurationEnvironment {
        ConfigurationEnvironment(
            fileKind: { files[$0] ?? .missing },
            localAddresses: { addresses },
            rdmaDevices: { rdmaDevices },
            effectiveUserID: { uid })
    }

    /// A machine where everything the reference configuration names is present.
    static let referenceHost = stub(
        files: [
            "/share": .directory,
            "/usr/local/lib/dmanoel-NAS_vfs_demofs.so": .regularFile,
            "/usr/local/etc/demofs.json": .regularFile,
        ],
        addresses: [IPAddress("127.0.0.1")!, IPAddress("192.168.1.1")!],
        rdmaDevices: ["mlx5_0"])
}

enum TestFiles {
    /// The repository root, found from this file's path (Tests/ServerTests/…).
    static var repositoryRoot: String {
        var parts = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }

    /// ../shared/examples/reference-config.json beside the repository, as CI lays it out.
    static var referenceConfigPath: String {
        repositoryRoot + "/../shared/examples/reference-config.json"
    }
}

/// Parses `text` on a bare stub machine and returns the error, or nil when it loads.
func configErrorFor(_ text: String, environment: ConfigurationEnvironment = .stub()) -> ConfigError? {
    do {
        _ = try Configuration.parse(text, source: "test.json", environment: environment)
        return nil
    } catch {
        return error
    }
}

/// A configuration with one memfs mount and `extra` spliced into the top-level object.
func withMemfs(_ extra: String = "") -> String {
    #"{ "mounts": { "memfs": { "module": "memfs", "path": "/" } }"# + (extra.isEmpty ? "" : ", " + extra) + " }"
}
