/// ONC RPC v2 constants (RFC 5531).
public enum RPC {
    public static let version: UInt32 = 2

    public enum MessageType: UInt32 { case call = 0, reply = 1 }
    public enum ReplyStatus: UInt32 { case accepted = 0, denied = 1 }

    public enum AcceptStatus: UInt32, Sendable {
        case success = 0
        case programUnavailable = 1   // PROG_UNAVAIL
        case programMismatch = 2      // PROG_MISMATCH
        case procedureUnavailable = 3 // PROC_UNAVAIL
        case garbageArguments = 4     // GARBAGE_ARGS
        case systemError = 5          // SYSTEM_ERR
    }

    public enum RejectStatus: UInt32 { case rpcMismatch = 0, authError = 1 }

    public enum AuthStatus: UInt32, Sendable, Error {
        case ok = 0
        case badCredentials = 1
        case rejectedCredentials = 2
        case badVerifier = 3
        case rejectedVerifier = 4
        case tooWeak = 5
    }

    public enum AuthFlavor: UInt32, Sendable {
        case none = 0
        case sys = 1
    }

    /// RFC 5531: credentials and verifiers carry at most 400 bytes of body.
    public static let maxAuthBody = 400
}

/// The caller's identity from the call's credentials.
public enum RPCAuth: Sendable, Equatable {
    case none
    /// AUTH_SYS: uid, gid and up to 16 supplementary groups, as the client claims them.
    case sys(uid: UInt32, gid: UInt32, groups: [UInt32], machine: String)
}

/// A decoded call header.
public struct RPCCall: Sendable {
    public var xid: UInt32
    public var program: UInt32
    public var version: UInt32
    public var procedure: UInt32
    public var auth: RPCAuth

    public init(xid: UInt32, program: UInt32, version: UInt32, procedure: UInt32, auth: RPCAuth) {
        self.xid = xid
        self.program = program
        self.version = version
        self.procedure = procedure
        self.auth = auth
    }
}
