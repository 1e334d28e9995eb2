/// Version reported by the CLI, the console header and the admin API.
public enum BuildInfo {
    public static let version = "0.1.0"
}
