import Runtime
import Synchronization
import VFS

/// A configured share: a namespace path offered under a name.
public struct SMBShare: Sendable {
    public let name: String
    public let path: String
    public let guest: Bool
    public let readOnly: Bool
    public let encrypt: Bool
    public let comment: String
    /// The users who may connect (nil: every configured user).
    public let users: Set<String>?
    /// Users who get the share read-only.
    public let readOnlyUsers: Set<String>

    public init(name: String, path: String, guest: Bool = false, readOnly: Bool = false, encrypt: Bool = false, comment: String = "",
                users: Set<String>? = nil, readOnlyUsers: Set<String> = []) {
        self.name = name
        self.path = path
        self.guest = guest
        self.readOnly = readOnly
        self.encrypt = encrypt
        self.comment = comment
        self.users = users
        self.readOnlyUsers = readOnlyUsers
    }
}

/// How the SMB service is set up.
public struct SMBSettings: Sendable {
    public var shares: [SMBShare]
    public var users: [SMBUser]
    /// The NetBIOS name the server gives in NTLM challenges and share lists.
    public var serverName: String
    public var domain: String
    /// Require every session (but guest and anonymous ones) to sign.
    public var signingRequired: Bool
    /// Largest READ, WRITE and IOCTL payload (MaxReadSize/MaxWriteSize/MaxTransactSize).
    public var maxIOSize: Int
    /// Credits one connection may hold at most.
    public var maxCredits: Int
    /// Requests one connection may have running at once; past it the connection stops reading.
    public var maxRequestsInFlight: Int
    /// Opens one session may hold; CREATE past it is STATUS_TOO_MANY_OPENED_FILES.
    public var maxOpensPerSession: Int
    /// Seconds a client has to finish a frame it started sending; slower senders are
    /// disconnected (slowloris).
    public var frameTimeout: Double

    public init(shares: [SMBShare], users: [SMBUser], serverName: String = "DMANOEL-NAS", domain: String = "WORKGROUP",
                signingRequired: Bool = false, maxIOSize: Int = 8 << 20, maxCredits: Int = 8192, maxRequestsInFlight: Int = 128,
                maxOpensPerSession: Int = 16384, frameTimeout: Double = 30) {
        self.shares = shares
        self.users = users
        self.serverName = serverName
        self.domain = domain
        self.signingRequired = signingRequired
        self.maxIOSize = maxIOSize
        self.maxCredits = maxCredits
        self.maxRequestsInFlight = maxRequestsInFlight
        self.maxOpensPerSession = maxOpensPerSession
        self.frameTimeout = frameTimeout
    }
}

/// The SMB2/SMB3 server: settings shared by every connection on every loop, and the factory
/// for connections. Shares and users can be replaced while it runs (`reload`); they are read
/// at TREE_CONNECT and SESSION_SETUP only, so sessions and trees already made keep theirs.
public final class SMBServer: @unchecked Sendable {
    let vfs: VirtualFileSystem
    let settings: SMBSettings
    let guid: [UInt8]
    let startTime: UInt64
    /// Numbers every SMB open's `StateOwner` in the VFS's file state table.
    private let nextStateOwner = Atomic<UInt64>(1)
    /// Epoch, state, file and version of each lease holder (v2 epochs, one file per key, the
    /// version its first CREATE asked for).
    let leaseEpochs = Mutex<[StateOwner: (epoch: UInt16, state: LeaseState, file: FileHandle, version: Int)]>([:])
    /// Directory watches of CHANGE_NOTIFY, across connections.
    let notify = SMBNotifyRegistry()
    private let directory: Mutex<(shares: [SMBShare], users: [String: SMBUser])>

    public init(vfs: VirtualFileSystem, settings: SMBSettings) {
        self.vfs = vfs
        self.settings = settings
        guid = Bytes.random(16)
        startTime = FileTime.now()
        directory = Mutex((settings.shares, Self.byName(settings.users)))
    }

    /// A new holder of open, lock and oplock state: one per CREATE.
    func newStateOwner() -> StateOwner {
        StateOwner(client: SMBConnection.stateClient, owner: nextStateOwner.wrappingAdd(1, ordering: .relaxed).oldValue)
    }

    private static func byName(_ users: [SMBUser]) -> [String: SMBUser] {
        var byName: [String: SMBUser] = [:]
        for user in users { byName[user.name.lowercased()] = user }
        return byName
    }

    /// Replaces the shares and users new tree connects and session setups see.
    public func reload(shares: [SMBShare], users: [SMBUser]) {
        let byName = Self.byName(users)
        directory.withLock { $0 = (shares, byName) }
    }

    /// The shares served now.
    var shares: [SMBShare] { directory.withLock { $0.shares } }

    func user(named name: String) -> SMBUser? {
        let lower = name.lowercased()
        return directory.withLock { $0.users[lower] }
    }

    /// Authenticated sessions of every connection, so a client that reconnects can end the
    /// session it had before (PreviousSessionId, MS-SMB2 §3.3.5.5.3).
    private let sessions = Mutex<[UInt64: (connection: SMBConnection, user: String)]>([:])

    func register(_ id: UInt64, connection: SMBConnection, user: String) {
        sessions.withLock { $0[id] = (connection, user) }
    }

    func unregister(_ id: UInt64, connection: SMBConnection) {
        sessions.withLock { table in
            if table[id]?.connection === connection { table[id] = nil }
        }
    }

    /// Ends session `id` on whatever connection holds it, if it belongs to `user`.
    func expire(_ id: UInt64, user: String) {
        guard let entry = sessions.withLock({ $0[id] }), entry.user.lowercased() == user.lowercased() else { return }
        let connection = entry.connection
        connection.connection.loop.execute { connection.expireSession(id) }
    }

    func share(named name: String) -> SMBShare? {
        let lower = name.lowercased()
        return directory.withLock { $0.shares.first { $0.name.lowercased() == lower } }
    }

    /// Builds the handler for each new connection.
    public var factory: ConnectionFactory {
        { [self] connection in SMBConnection(server: self, connection: connection) }
    }
}
