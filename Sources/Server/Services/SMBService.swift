import Crypto
import Logging
import Runtime
import SMB
import VFS

/// SMB2/SMB3 on `server.smb_port`: the configured `shares` (and IPC$ for share listing), the
/// configured `users` (password or NT hash), guest access where a share allows it.
enum SMBService {
    static func start(_ configuration: Configuration, vfs: VirtualFileSystem, group: LoopGroup, logger: Logger) throws(ServerError) -> (Listener, SMBServer) {
        let shares = shares(configuration)
        let limits = configuration.server.limits
        let server = SMBServer(vfs: vfs, settings: SMBSettings(shares: shares, users: users(configuration, logger: logger),
                                                               maxIOSize: limits.smbMaxIOBytes, maxCredits: limits.smbMaxCredits,
                                                               maxRequestsInFlight: limits.smbMaxRequestsPerConnection,
                                                               maxOpensPerSession: limits.smbMaxOpensPerSession,
                                                               frameTimeout: Double(configuration.server.requestTimeoutSeconds)))
        let host = configuration.server.bind.description
        let listener: Listener
        do {
            listener = try group.listen(host: host, port: configuration.server.smbPort, factory: server.factory)
        } catch {
            throw ServerError.startup("cannot serve SMB on \(host):\(configuration.server.smbPort): \(error)")
        }
        logger.info("SMB2/SMB3 on \(listener.boundAddress); \(shares.count) share(s): \(shares.map(\.name).joined(separator: ", "))")
        return (listener, server)
    }

    static func shares(_ configuration: Configuration) -> [SMBShare] {
        configuration.shares.map {
            SMBShare(name: $0.name, path: $0.path, guest: $0.guest, readOnly: $0.readOnly, encrypt: $0.encrypt,
                     users: $0.users.map(Set.init), readOnlyUsers: Set($0.readOnlyUsers))
        }
    }

    /// The configured users with their NT hashes (from the password or given).
    static func users(_ configuration: Configuration, logger: Logger) -> [SMBUser] {
        var users: [SMBUser] = []
        for user in configuration.users {
            let hash: [UInt8]
            switch user.credential {
            case let .password(password):
                guard let computed = SMBUser.ntHash(password: password) else {
                    logger.warning("SMB: OpenSSL's legacy provider (MD4) is missing, so user \(user.name) cannot log in over SMB")
                    continue
                }
                hash = computed
            case let .ntHash(text):
                guard let decoded = Hex.decode(Substring(text)), decoded.count == 16 else { continue }
                hash = decoded
            }
            users.append(SMBUser(name: user.name, ntHash: hash, uid: user.uid, gid: user.gid, groups: user.groups))
        }
        return users
    }
}
