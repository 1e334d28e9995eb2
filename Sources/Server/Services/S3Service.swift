import HTTP
import Logging
import Runtime
import S3
import VFS

/// S3 over HTTP/1.1 on `server.s3_port`: the configured `buckets`, CreateBucket under
/// `server.s3_bucket_root`, and the users that have S3 keys.
enum S3Service {
    static func start(_ configuration: Configuration, vfs: VirtualFileSystem, group: LoopGroup, logger: Logger) throws(ServerError) -> (Listener, S3Gateway) {
        let users = users(configuration)
        let settings = S3Settings(buckets: buckets(configuration),
                                  bucketRoot: configuration.server.s3BucketRoot, users: users, domain: configuration.server.s3Domain,
                                  maxPutSize: configuration.server.limits.s3MaxPutBytes, bucketUsers: bucketUsers(configuration))
        let gateway = S3Gateway(vfs: vfs, settings: settings, loopCount: group.loops.count)
        var limits = HTTPLimits()
        limits.headTimeout = Double(configuration.server.requestTimeoutSeconds)
        limits.bodyTimeout = Double(configuration.server.requestTimeoutSeconds)
        let host = configuration.server.bind.description
        let listener: Listener
        do {
            listener = try group.listen(host: host, port: configuration.server.s3Port,
                                        factory: HTTPServer.factory(responder: gateway, limits: limits, loopCount: group.loops.count))
        } catch {
            throw ServerError.startup("cannot serve S3 on \(host):\(configuration.server.s3Port): \(error)")
        }
        if users.isEmpty {
            logger.warning("S3: no user has s3_access_key/s3_secret_key, so every S3 request will be refused")
        }
        let root = configuration.server.s3BucketRoot.map { "; CreateBucket under \($0)" } ?? ""
        logger.info("S3 on \(listener.boundAddress); \(settings.buckets.count) bucket(s): \(settings.buckets.map(\.name).joined(separator: ", "))\(root)")
        return (listener, gateway)
    }

    /// The users with S3 keys.
    static func users(_ configuration: Configuration) -> [S3User] {
        configuration.users.compactMap { user -> S3User? in
            guard let keys = user.s3 else { return nil }
            return S3User(name: user.name, accessKey: keys.accessKey, secretKey: keys.secretKey,
                          credentials: Credentials(uid: user.uid, gid: user.gid, groups: user.groups))
        }
    }

    static func buckets(_ configuration: Configuration) -> [(name: String, path: String)] {
        configuration.buckets.map { ($0.name, $0.path) }
    }

    /// Buckets limited to some users (`buckets.NAME.users`): bucket name → user names.
    static func bucketUsers(_ configuration: Configuration) -> [String: Set<String>] {
        Dictionary(configuration.buckets.compactMap { bucket in bucket.users.map { (bucket.name, Set($0)) } },
                   uniquingKeysWith: { first, _ in first })
    }
}
