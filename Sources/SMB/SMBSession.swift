import Crypto
import VFS

/// One authenticated (or authenticating) user on a connection (MS-SMB2 §3.3.1.8).
final class SMBSession {
    enum State {
        case inProgress
        case valid
    }

    let id: UInt64
    var state = State.inProgress
    /// The NTLMSSP exchange while the session is being set up.
    var ntlm: NTLMServer?
    /// Whether the client wrapped its tokens in SPNEGO (replies are wrapped the same way).
    var spnego = true
    /// SMB 3.1.1: the preauthentication integrity hash of this session's setup.
    var preauthHash: [UInt8] = []
    var user: SMBUser?
    var anonymous = false
    var credentials = Credentials(uid: 65534, gid: 65534)
    var sessionKey: [UInt8] = []
    var signer: SMBSigner?
    var signingRequired = false
    /// SMB 3.x: keys for messages from the client (ServerIn) and to it (ServerOut).
    var decryptor: AEAD?
    var encryptor: AEAD?
    /// All traffic of this session must be encrypted.
    var encryptData = false
    var trees: [UInt32: SMBTree] = [:]
    var nextTreeID: UInt32 = 1
    /// Opens this session holds (and CREATEs under way), against `SMBSettings.maxOpensPerSession`.
    var openCount = 0
    /// Per-key nonce counter for encrypted replies; the random part makes nonces unique
    /// across sessions that happen to share nothing else.
    var nonceCounter: UInt64 = 0
    let noncePrefix = UInt32.random(in: 0...UInt32.max)

    init(id: UInt64) {
        self.id = id
    }

    var isGuestOrAnonymous: Bool { user == nil }

    /// Derives signing and encryption keys once authentication succeeded (MS-SMB2 §3.3.5.5.3).
    func deriveKeys(dialect: SMB2Dialect, cipher: SMB2Cipher?, signing: SMBSigner.Algorithm? = nil) {
        guard !sessionKey.isEmpty else { return }
        var key = Array(sessionKey.prefix(16))
        if key.count < 16 { key += [UInt8](repeating: 0, count: 16 - key.count) }
        switch dialect {
        case .smb202, .smb210:
            signer = SMBSigner(dialect: dialect, key: key)
        case .smb300, .smb302:
            signer = SMBSigner(dialect: dialect, key: KDF.counterHMACSHA256(key: key, label: Array("SMB2AESCMAC".utf8) + [0], context: Array("SmbSign".utf8) + [0], bits: 128))
            if let cipher {
                decryptor = AEAD(mode: cipher.mode, key: KDF.counterHMACSHA256(key: key, label: Array("SMB2AESCCM".utf8) + [0], context: Array("ServerIn ".utf8) + [0], bits: 128))
                encryptor = AEAD(mode: cipher.mode, key: KDF.counterHMACSHA256(key: key, label: Array("SMB2AESCCM".utf8) + [0], context: Array("ServerOut".utf8) + [0], bits: 128))
            }
        case .smb311:
            signer = SMBSigner(dialect: dialect, key: KDF.counterHMACSHA256(key: key, label: Array("SMBSigningKey".utf8) + [0], context: preauthHash, bits: 128),
                               algorithm: signing)
            if let cipher {
                // AES-256 ciphers take the full session key (MS-SMB2 §3.2.5.3.1).
                let base = cipher.keyBits == 256 && sessionKey.count >= 16 ? sessionKey : key
                decryptor = AEAD(mode: cipher.mode, key: KDF.counterHMACSHA256(key: base, label: Array("SMBC2SCipherKey".utf8) + [0], context: preauthHash, bits: cipher.keyBits))
                encryptor = AEAD(mode: cipher.mode, key: KDF.counterHMACSHA256(key: base, label: Array("SMBS2CCipherKey".utf8) + [0], context: preauthHash, bits: cipher.keyBits))
            }
        }
    }
}

/// SMB 3.x ciphers (MS-SMB2 §2.2.3.1.2).
enum SMB2Cipher: UInt16 {
    case aes128CCM = 1, aes128GCM = 2, aes256CCM = 3, aes256GCM = 4

    var mode: AEAD.Mode { self == .aes128CCM || self == .aes256CCM ? .ccm : .gcm }
    var keyBits: Int { self == .aes256CCM || self == .aes256GCM ? 256 : 128 }
}

/// A tree connect: a share (or IPC$) as one session sees it.
final class SMBTree {
    let id: UInt32
    let share: SMBShare?
    let root: FileHandle?
    /// The share is read-only, or read-only for this session's user.
    let readOnly: Bool

    init(id: UInt32, share: SMBShare?, root: FileHandle?, readOnly: Bool) {
        self.id = id
        self.share = share
        self.root = root
        self.readOnly = readOnly
    }

    var isIPC: Bool { share == nil }
}

/// An open file, directory or pipe (MS-SMB2 §3.3.1.10).
final class SMBOpen {
    let id: UInt64
    let sessionID: UInt64
    let treeID: UInt32
    var handle: FileHandle
    /// Where the object is: its directory and name (rename and delete-on-close need them),
    /// and its path from the share root ("" for the root).
    var parent: FileHandle?
    var name: String
    var path: String
    let isDirectory: Bool
    let access: UInt32
    var deleteOnClose = false
    /// Opened with FILE_WRITE_THROUGH (MS-SMB2 §2.2.13): writes are stable like
    /// SMB2_WRITEFLAG_WRITE_THROUGH ones.
    var writeThrough = false
    /// CurrentByteOffset: where the last READ or WRITE ended (FilePositionInformation).
    var position: UInt64 = 0
    /// Directory enumeration: where the next QUERY_DIRECTORY resumes.
    var enumerationCookie: UInt64 = 0
    var enumerationVerifier: UInt64 = 0
    var enumerationPattern: String?
    var enumerationDots = 0
    var enumerationDone = false
    /// A named pipe (IPC$) instead of a file.
    var pipe: SMBPipe?
    /// The open in the VFS's shared file state (share modes, locks, oplock, delete-pending);
    /// nil for pipes and once closed.
    var fileState: OpenFile?
    /// The lease this open shares (its key names the holder in `fileState`).
    var lease: SMBLeaseRequest?
    /// Whose byte-range locks this open's are: its own holder, unless it shares a lease's.
    var lockOwner: StateOwner? { lease == nil ? nil : ownLockOwner }
    var ownLockOwner: StateOwner?
    /// CHANGE_NOTIFY on a directory handle: its filter, whether it watches, the request that
    /// waits (an AsyncId) and changes kept until the next request.
    var notifyFilter: UInt32 = 0
    var notifyRecursive = false
    var notifyWatching = false
    var pendingNotify: UInt64?
    var notifyQueue: [SMBChange] = []
    var notifyOverflow = false

    init(id: UInt64, sessionID: UInt64, treeID: UInt32, handle: FileHandle, parent: FileHandle?, name: String, path: String,
         isDirectory: Bool, access: UInt32) {
        self.id = id
        self.sessionID = sessionID
        self.treeID = treeID
        self.handle = handle
        self.parent = parent
        self.name = name
        self.path = path
        self.isDirectory = isDirectory
        self.access = access
    }
}
