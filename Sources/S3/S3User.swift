import VFS

/// An account that may use S3: its access key pair and the identity its requests run as.
public struct S3User: Sendable {
    public var name: String
    public var accessKey: String
    public var secretKey: String
    public var credentials: Credentials

    public init(name: String, accessKey: String, secretKey: String, credentials: Credentials) {
        self.name = name
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.credentials = credentials
    }
}
