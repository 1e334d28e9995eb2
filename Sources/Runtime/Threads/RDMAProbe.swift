import CVerbs

/// Looks for RDMA devices through libibverbs. The RDMA transport itself is not built yet: with
/// `rdma: true` the server reports what it found and serves TCP.
public enum RDMAProbe {
    /// Names of the RDMA devices present (empty when none, or when libibverbs finds no driver).
    public static func deviceNames() -> [String] {
        var count: Int32 = 0
        guard let list = ibv_get_device_list(&count) else { return [] }
        defer { ibv_free_device_list(list) }
        var names: [String] = []
        for i in 0..<Int(count) {
            if let device = list[i], let name = ibv_get_device_name(device) { names.append(String(cString: name)) }
        }
        return names
    }
}
