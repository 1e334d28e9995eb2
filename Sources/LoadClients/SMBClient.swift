import Crypto
import Glibc
import Runtime

/// An SMB 2.1 / 3.0 / 3.0.2 / 3.1.1 client connection (MS-SMB2): NEGOTIATE, SESSION_SETUP
/// with NTLMv2 in SPNEGO, TREE_CONNECT, then the operation vocabulary over CREATE, READ,
/// WRITE, QUERY_INFO, QUERY_DIRECTORY, SET_INFO, FLUSH, LOCK and CLOSE, many in flight.
/// Files stay open once opened (read, write and delete access), like NFSv4 opens.
public final class SMBClient: FileLoadClient, @unchecked Sendable {
    private let transport: SMBTransport
    private let payload: PayloadBuffer
    public let target: Target
    /// The dialect the server chose (0x0210, 0x0300, 0x0302, 0x0311).
    public private(set) var dialect: UInt16 = 0
    private var maxRead = 65536, maxWrite = 65536
    private var largeMTU = false
    private var opens: [String: FileID] = [:]

    struct FileID {
        var persistent: UInt64
        var volatile: UInt64
        func encode(_ at: UnsafeMutableRawPointer) {
            at.storeBytes(of: persistent.littleEndian, as: UInt64.self)
            at.storeBytes(of: volatile.littleEndian, toByteOffset: 8, as: UInt64.self)
        }
    }

    /// NTSTATUS values the client looks at.
    enum Status {
        static let moreProcessingRequired: UInt32 = 0xC000_0016
        static let fileClosed: UInt32 = 0xC000_0128
    }

    /// Connects on `loop`, negotiates, authenticates and connects the share.
    public static func connect(_ target: Target, loop: EventLoop, payload: PayloadBuffer, depth: Int) async throws(LoadClientError) -> SMBClient {
        let transport = SMBTransport()
        transport.attach(try LoadClients.connect(target, loop: loop, handler: transport))
        transport.creditTarget = max(64, min(8 * depth + 32, 512))
        let client = SMBClient(loop: loop, transport: transport, payload: payload, target: target)
        try await client.establish()
        return client
    }

    private init(loop: EventLoop, transport: SMBTransport, payload: PayloadBuffer, target: Target) {
        self.transport = transport
        self.payload = payload
        self.target = target
        super.init(loop: loop)
    }

    public override func close() { transport.connection?.close() }
    public override var closeError: Int32? { transport.closeError }

    // MARK: Setup

    private func failure(_ what: String, _ response: SMBResponse) -> LoadClientError {
        if response.failure == .connectionLost { return LoadClientError("\(target): \(what): connection lost") }
        return LoadClientError("\(target): \(what) failed (NTSTATUS 0x\(String(response.status, radix: 16, uppercase: true)))")
    }

    private func establish() async throws(LoadClientError) {
        let dialects: [UInt16] = target.smbDialect.map { [$0] } ?? [0x0210, 0x0300, 0x0302, 0x0311]
        let offers311 = dialects.contains(0x0311)
        if offers311 { transport.preauthHash = [UInt8](repeating: 0, count: 64) }

        // NEGOTIATE (§2.2.3): 3.1.1's contexts ask for SHA-512 preauthentication integrity
        // and offer AES-128-GCM and AES-128-CCM.
        let dialectsEnd = 36 + 2 * dialects.count
        let contextsStart = (64 + dialectsEnd + 7) & ~7
        var contexts: [UInt8] = []
        if offers311 {
            var salt = [UInt8](repeating: 0, count: 32)
            for i in salt.indices { salt[i] = UInt8.random(in: 0...255) }
            let preauth = NTLMClient.le16(1) + NTLMClient.le16(32) + NTLMClient.le16(1) + salt
            contexts += NTLMClient.le16(1) + NTLMClient.le16(UInt16(preauth.count)) + [0, 0, 0, 0] + preauth
            while contexts.count % 8 != 0 { contexts.append(0) }
            let ciphers = NTLMClient.le16(2) + NTLMClient.le16(2) + NTLMClient.le16(1)
            contexts += NTLMClient.le16(2) + NTLMClient.le16(UInt16(ciphers.count)) + [0, 0, 0, 0] + ciphers
        }
        let bodySize = offers311 ? contextsStart - 64 + contexts.count : dialectsEnd
        var clientGUID = [UInt8](repeating: 0, count: 16)
        for i in clientGUID.indices { clientGUID[i] = UInt8.random(in: 0...255) }
        let securityMode: UInt16 = target.smbSign ? 2 : 1
        var response = await transport.send(SMBTransport.Command.negotiate, bodySize: bodySize) { b in
            b.initializeMemory(as: UInt8.self, repeating: 0, count: bodySize)
            b.storeBytes(of: UInt16(36).littleEndian, as: UInt16.self)
            b.storeBytes(of: UInt16(dialects.count).littleEndian, toByteOffset: 2, as: UInt16.self)
            b.storeBytes(of: securityMode.littleEndian, toByteOffset: 4, as: UInt16.self)
            b.storeBytes(of: UInt32(0x4 | 0x40).littleEndian, toByteOffset: 8, as: UInt32.self)   // LARGE_MTU, ENCRYPTION
            clientGUID.withUnsafeBytes { (b + 12).copyMemory(from: $0.baseAddress!, byteCount: 16) }
            if offers311 {
                b.storeBytes(of: UInt32(contextsStart).littleEndian, toByteOffset: 28, as: UInt32.self)
                b.storeBytes(of: UInt16(2).littleEndian, toByteOffset: 32, as: UInt16.self)
                contexts.withUnsafeBytes { (b + contextsStart - 64).copyMemory(from: $0.baseAddress!, byteCount: contexts.count) }
            }
            for (i, d) in dialects.enumerated() { b.storeBytes(of: d.littleEndian, toByteOffset: 36 + 2 * i, as: UInt16.self) }
        }
        guard response.opStatus.isOK else { response.release(); throw failure("NEGOTIATE", response) }
        dialect = response.u16(64 + 4)
        let serverSecurityMode = response.u16(64 + 2)
        let capabilities = response.u32(64 + 24)
        maxRead = Int(response.u32(64 + 32))
        maxWrite = Int(response.u32(64 + 36))
        largeMTU = capabilities & 0x4 != 0
        var cipher: UInt16 = 0
        if dialect == 0x0311 {
            transport.updatePreauth(response.bytes)
            var offset = Int(response.u32(64 + 60))
            for _ in 0..<Int(response.u16(64 + 6)) {
                offset = (offset + 7) & ~7
                let type = response.u16(offset), length = Int(response.u16(offset + 2))
                if type == 2 && length >= 4 { cipher = response.u16(offset + 8 + 2) }
                offset += 8 + length
            }
        } else {
            transport.preauthHash = nil
            if capabilities & 0x40 != 0 && dialect >= 0x0300 { cipher = 1 }
        }
        response.release()
        guard dialects.contains(dialect) else { throw LoadClientError("\(target): the server chose dialect 0x\(String(dialect, radix: 16)), which was not offered") }
        guard !target.smbEncrypt || cipher == 1 || cipher == 2 else {
            throw LoadClientError("\(target): encryption asked for, but the server offers no AES-128-CCM/GCM for dialect 0x\(String(dialect, radix: 16))")
        }

        // SESSION_SETUP (§2.2.5), two legs of NTLMSSP in SPNEGO.
        let ntlm = NTLMClient(user: target.accessKey, password: target.secretKey, domain: "")
        response = await sessionSetup(NTLMClient.spnegoInit(NTLMClient.negotiateMessage()))
        guard response.status == Status.moreProcessingRequired, response.failure == nil else {
            response.release(); throw failure("SESSION_SETUP (negotiate)", response)
        }
        transport.sessionID = response.u64(40)
        if transport.preauthHash != nil { transport.updatePreauth(response.bytes) }
        let token = response.buffer(offset: Int(response.u16(64 + 4)), length: Int(response.u16(64 + 6)))
        let challenge = token.flatMap(NTLMClient.challenge(inToken:))
        response.release()
        var clientChallenge = [UInt8](repeating: 0, count: 8)
        for i in clientChallenge.indices { clientChallenge[i] = UInt8.random(in: 0...255) }
        guard let challenge, let (authenticate, sessionKey) = ntlm.authenticate(challenge: challenge, clientChallenge: clientChallenge, time: NTLMClient.fileTimeNow()) else {
            throw LoadClientError("\(target): SESSION_SETUP: no usable NTLM challenge in the server's reply (or MD4 is unavailable)")
        }
        response = await sessionSetup(NTLMClient.spnegoResponse(authenticate))
        guard response.opStatus.isOK else { response.release(); throw failure("SESSION_SETUP (authenticate)", response) }
        let sessionFlags = response.u16(64 + 2)
        response.release()
        guard sessionFlags & 0x3 == 0 else { throw LoadClientError("\(target): the server made this a guest or anonymous session; it has no keys to sign or encrypt with") }
        deriveKeys(sessionKey: sessionKey, cipher: cipher, serverRequiresSigning: serverSecurityMode & 2 != 0, encrypt: target.smbEncrypt || sessionFlags & 0x4 != 0)

        // TREE_CONNECT (§2.2.9) to \\host\share.
        let path = NTLMClient.utf16("\\\\\(target.host)\\\(target.root)")
        response = await transport.send(SMBTransport.Command.treeConnect, bodySize: 8 + path.count) { b in
            b.storeBytes(of: UInt16(9).littleEndian, as: UInt16.self)
            b.storeBytes(of: UInt16(0), toByteOffset: 2, as: UInt16.self)
            b.storeBytes(of: UInt16(72).littleEndian, toByteOffset: 4, as: UInt16.self)
            b.storeBytes(of: UInt16(path.count).littleEndian, toByteOffset: 6, as: UInt16.self)
            path.withUnsafeBytes { (b + 8).copyMemory(from: $0.baseAddress!, byteCount: path.count) }
        }
        guard response.opStatus.isOK else { response.release(); throw failure("TREE_CONNECT \\\\\(target.host)\\\(target.root)", response) }
        transport.treeID = response.u32(36)
        let shareFlags = response.u32(64 + 4)
        response.release()
        if shareFlags & 0x8000 != 0 && transport.encryptor == nil {
            throw LoadClientError("\(target): the share requires encryption; add ?encrypt=1")
        }
    }

    private func sessionSetup(_ token: [UInt8]) async -> SMBResponse {
        let mode: UInt8 = target.smbSign ? 2 : 1
        return await transport.send(SMBTransport.Command.sessionSetup, bodySize: 24 + token.count) { b in
            b.storeBytes(of: UInt16(25).littleEndian, as: UInt16.self)
            b.storeBytes(of: UInt8(0), toByteOffset: 2, as: UInt8.self)
            b.storeBytes(of: mode, toByteOffset: 3, as: UInt8.self)
            b.storeBytes(of: UInt32(1).littleEndian, toByteOffset: 4, as: UInt32.self)   // DFS capability
            b.storeBytes(of: UInt32(0), toByteOffset: 8, as: UInt32.self)
            b.storeBytes(of: UInt16(88).littleEndian, toByteOffset: 12, as: UInt16.self)
            b.storeBytes(of: UInt16(token.count).littleEndian, toByteOffset: 14, as: UInt16.self)
            b.storeBytes(of: UInt64(0), toByteOffset: 16, as: UInt64.self)
            token.withUnsafeBytes { (b + 24).copyMemory(from: $0.baseAddress!, byteCount: token.count) }
        }
    }

    /// Signing and encryption keys (MS-SMB2 §3.2.5.3.1): the session key itself for 2.1; the
    /// KDF with 3.0's fixed contexts or 3.1.1's preauthentication hash for 3.x.
    private func deriveKeys(sessionKey: [UInt8], cipher: UInt16, serverRequiresSigning: Bool, encrypt: Bool) {
        func kdf(_ label: String, _ context: [UInt8]) -> [UInt8] {
            KDF.counterHMACSHA256(key: sessionKey, label: Array(label.utf8) + [0], context: context, bits: 128)
        }
        let mode: AEAD.Mode = cipher == 2 ? .gcm : .ccm
        switch dialect {
        case 0x0311:
            let hash = transport.preauthHash!
            transport.signer = SMBClientSigner(key: kdf("SMBSigningKey", hash), smb3: true)
            if encrypt {
                transport.encryptor = AEAD(mode: mode, key: kdf("SMBC2SCipherKey", hash))
                transport.decryptor = AEAD(mode: mode, key: kdf("SMBS2CCipherKey", hash))
            }
            transport.signTreeConnect = true
        case 0x0300, 0x0302:
            transport.signer = SMBClientSigner(key: kdf("SMB2AESCMAC", Array("SmbSign".utf8) + [0]), smb3: true)
            if encrypt {
                transport.encryptor = AEAD(mode: .ccm, key: kdf("SMB2AESCCM", Array("ServerIn ".utf8) + [0]))
                transport.decryptor = AEAD(mode: .ccm, key: kdf("SMB2AESCCM", Array("ServerOut".utf8) + [0]))
            }
        default:
            transport.signer = SMBClientSigner(key: sessionKey, smb3: false)
        }
        transport.preauthHash = nil
        transport.signing = target.smbSign || serverRequiresSigning
    }

    // MARK: Operations

    enum Access {
        static let readAttributes: UInt32 = 0x80
        /// FILE_GENERIC_READ | FILE_GENERIC_WRITE.
        static let readWrite: UInt32 = 0x0012_019F
        static let delete: UInt32 = 0x0001_0000
        /// What removing and renaming open with.
        static let deleteAndAttributes: UInt32 = 0x0001_0000 | 0x80 | 0x0010_0000
    }
    enum Disposition {
        static let open: UInt32 = 1, create: UInt32 = 2, overwriteIf: UInt32 = 5
    }
    enum Options {
        static let directory: UInt32 = 0x1, nonDirectory: UInt32 = 0x40, deleteOnClose: UInt32 = 0x1000
    }

    /// CREATE (§2.2.13) of `path` (relative to the share, "/"-separated); no oplock, no contexts.
    private func createRequest(_ path: String, access: UInt32, disposition: UInt32, options: UInt32, attributes: UInt32 = 0) async -> (SMBResponse, FileID?) {
        let name = Self.smbName(path)
        let response = await transport.send(SMBTransport.Command.create, bodySize: 56 + max(name.count, 8)) { b in
            b.initializeMemory(as: UInt8.self, repeating: 0, count: 56 + max(name.count, 8))
            b.storeBytes(of: UInt16(57).littleEndian, as: UInt16.self)
            b.storeBytes(of: UInt32(2).littleEndian, toByteOffset: 4, as: UInt32.self)        // impersonation
            b.storeBytes(of: access.littleEndian, toByteOffset: 24, as: UInt32.self)
            b.storeBytes(of: attributes.littleEndian, toByteOffset: 28, as: UInt32.self)
            b.storeBytes(of: UInt32(7).littleEndian, toByteOffset: 32, as: UInt32.self)       // share read, write, delete
            b.storeBytes(of: disposition.littleEndian, toByteOffset: 36, as: UInt32.self)
            b.storeBytes(of: options.littleEndian, toByteOffset: 40, as: UInt32.self)
            b.storeBytes(of: UInt16(120).littleEndian, toByteOffset: 44, as: UInt16.self)
            b.storeBytes(of: UInt16(name.count).littleEndian, toByteOffset: 46, as: UInt16.self)
            name.withUnsafeBytes { if !name.isEmpty { (b + 56).copyMemory(from: $0.baseAddress!, byteCount: name.count) } }
        }
        guard response.opStatus.isOK else { return (response, nil) }
        return (response, FileID(persistent: response.u64(64 + 64), volatile: response.u64(64 + 72)))
    }

    /// A "/"-separated path as SMB names it: UTF-16LE with "\\" separators.
    static func smbName(_ path: String) -> [UInt8] {
        path.utf16.flatMap { unit -> [UInt8] in
            let u = unit == 0x2F ? 0x5C : unit
            return [UInt8(u & 0xFF), UInt8(u >> 8)]
        }
    }

    private func closeRequest(_ id: FileID) async -> SMBResponse {
        await transport.send(SMBTransport.Command.close, bodySize: 24) { b in
            b.initializeMemory(as: UInt8.self, repeating: 0, count: 24)
            b.storeBytes(of: UInt16(24).littleEndian, as: UInt16.self)
            id.encode(b + 8)
        }
    }

    /// The open of `path`, opening it (read, write, attributes; not delete, which would keep
    /// others from renaming in its directory) when it is not yet open. Of two opens racing for
    /// one path the first is kept and the second closed.
    private func open(_ path: String) async -> (FileID?, OpStatus, UInt64) {
        if let id = opens[path] { return (id, .ok, 0) }
        let (response, id) = await createRequest(path, access: Access.readWrite, disposition: Disposition.open, options: 0)
        defer { response.release() }
        guard let id else { return (nil, response.opStatus, response.firstByte) }
        if opens[path] == nil {
            opens[path] = id
        } else {
            await closeRequest(id).release()
        }
        return (opens[path], .ok, response.firstByte)
    }

    /// Sends a request on the open of `path`; a handle the server no longer knows is
    /// forgotten so the next operation opens the file again.
    private func onOpen(_ path: String, _ command: UInt16, charge: Int = 1, bodySize: Int, payload data: UnsafeRawBufferPointer? = nil,
                        _ fill: (UnsafeMutableRawPointer, FileID) -> Void) async -> SMBResponse {
        let (id, status, first) = await open(path)
        guard let id else { return SMBResponse(status: 0, slice: nil, firstByte: first == 0 ? monotonicNanoseconds() : first, failure: status) }
        return await onOpen(path, id, command, charge: charge, bodySize: bodySize, payload: data, fill)
    }

    private func onOpen(_ path: String, _ id: FileID, _ command: UInt16, charge: Int = 1, bodySize: Int, payload data: UnsafeRawBufferPointer? = nil,
                        _ fill: (UnsafeMutableRawPointer, FileID) -> Void) async -> SMBResponse {
        let response = await transport.send(command, charge: charge, bodySize: bodySize, payload: data, owner: data == nil ? nil : payload) { b in
            fill(b, id)
        }
        if response.status == Status.fileClosed, opens[path]?.volatile == id.volatile { opens[path] = nil }
        return response
    }

    /// Closes every file this connection holds open (at the end of a phase: SMB deletes wait
    /// for the last handle, so handles must not outlive the phase that used them).
    public override func closeFiles() async {
        let all = opens.values
        opens.removeAll()
        for id in all { await closeRequest(id).release() }
    }

    private func result(_ response: SMBResponse, bytes: Int = 0) -> (OpStatus, Int, UInt64) {
        defer { response.release() }
        return (response.opStatus, response.opStatus.isOK ? bytes : 0, response.firstByte)
    }

    /// Credits a transfer of `length` bytes costs (§3.1.5.2): one per 64 KiB with LARGE_MTU.
    private func charge(_ length: Int) -> Int { largeMTU ? max(1, (length + 65535) / 65536) : 1 }

    override func read(_ op: Operation) async -> Outcome {
        let length = UInt32(min(op.length, maxRead))
        let response = await onOpen(op.path, SMBTransport.Command.read, charge: charge(Int(length)), bodySize: 49) { b, id in
            b.initializeMemory(as: UInt8.self, repeating: 0, count: 49)
            b.storeBytes(of: UInt16(49).littleEndian, as: UInt16.self)
            b.storeBytes(of: UInt8(0x50), toByteOffset: 2, as: UInt8.self)
            b.storeBytes(of: length.littleEndian, toByteOffset: 4, as: UInt32.self)
            b.storeBytes(of: op.offset.littleEndian, toByteOffset: 8, as: UInt64.self)
            id.encode(b + 16)
        }
        // Reading at or past the end is END_OF_FILE: a short file read whole, not an error.
        if response.status == 0xC000_0011 { return result(SMBResponse(status: 0, slice: response.slice, firstByte: response.firstByte)) }
        return result(response, bytes: response.opStatus.isOK ? Int(response.u32(64 + 4)) : 0)
    }

    override func write(_ op: Operation) async -> Outcome {
        let data = payload.prefix(min(op.length, maxWrite))
        let response = await onOpen(op.path, SMBTransport.Command.write, charge: charge(data.count), bodySize: 48, payload: data) { b, id in
            b.initializeMemory(as: UInt8.self, repeating: 0, count: 48)
            b.storeBytes(of: UInt16(49).littleEndian, as: UInt16.self)
            b.storeBytes(of: UInt16(112).littleEndian, toByteOffset: 2, as: UInt16.self)
            b.storeBytes(of: UInt32(data.count).littleEndian, toByteOffset: 4, as: UInt32.self)
            b.storeBytes(of: op.offset.littleEndian, toByteOffset: 8, as: UInt64.self)
            id.encode(b + 16)
            b.storeBytes(of: UInt32(op.stable ? 1 : 0).littleEndian, toByteOffset: 44, as: UInt32.self)  // WRITE_THROUGH
        }
        return result(response, bytes: response.opStatus.isOK ? Int(response.u32(64 + 4)) : 0)
    }

    private func closeOpen(_ path: String) async -> SMBResponse? {
        guard let id = opens.removeValue(forKey: path) else { return nil }
        return await closeRequest(id)
    }

    /// CREATE (overwrite-if) a file; with a length, WRITE that many bytes; then CLOSE.
    override func create(_ op: Operation) async -> Outcome {
        await closeOpen(op.path)?.release()
        let (response, id) = await createRequest(op.path, access: Access.readWrite, disposition: Disposition.overwriteIf, options: Options.nonDirectory)
        let first = response.firstByte
        guard let id else { return result(response) }
        response.release()
        opens[op.path] = id
        var bytes = 0
        if op.length > 0 {
            let (status, written, _) = await write(Operation(kind: .write, path: op.path, length: op.length))
            guard status.isOK else { return (status, 0, first) }
            bytes = written
        }
        let close = await closeOpen(op.path)!
        let (status, _, _) = result(close)
        return (status, bytes, first)
    }

    /// CREATE (create) a directory, then CLOSE.
    override func mkdir(_ operation: Operation) async -> Outcome {
        let path = operation.path
        let (response, id) = await createRequest(path, access: Access.readWrite, disposition: Disposition.create, options: Options.directory)
        guard let id else { return result(response) }
        let first = response.firstByte
        response.release()
        let (status, _, _) = result(await closeRequest(id))
        return (status, 0, first)
    }

    override func remove(_ operation: Operation) async -> Outcome { await remove(operation.path, directory: false) }
    override func rmdir(_ operation: Operation) async -> Outcome { await remove(operation.path, directory: true) }

    /// Opens with delete-on-close and closes: how SMB clients delete.
    private func remove(_ path: String, directory: Bool) async -> (OpStatus, Int, UInt64) {
        await closeOpen(path)?.release()
        let (response, id) = await createRequest(path, access: Access.deleteAndAttributes, disposition: Disposition.open,
                                                 options: Options.deleteOnClose | (directory ? Options.directory : Options.nonDirectory))
        guard let id else { return result(response) }
        let first = response.firstByte
        response.release()
        let (status, _, _) = result(await closeRequest(id))
        return (status, 0, first)
    }

    /// QUERY_INFO (§2.2.37) FileNetworkOpenInformation on the open: what a stat costs.
    override func stat(_ operation: Operation) async -> Outcome {
        let path = operation.path
        return result(await onOpen(path, SMBTransport.Command.queryInfo, bodySize: 41) { b, id in
            b.initializeMemory(as: UInt8.self, repeating: 0, count: 41)
            b.storeBytes(of: UInt16(41).littleEndian, as: UInt16.self)
            b.storeBytes(of: UInt8(1), toByteOffset: 2, as: UInt8.self)          // SMB2_0_INFO_FILE
            b.storeBytes(of: UInt8(34), toByteOffset: 3, as: UInt8.self)         // FileNetworkOpenInformation
            b.storeBytes(of: UInt32(4096).littleEndian, toByteOffset: 4, as: UInt32.self)
            id.encode(b + 24)
        })
    }

    /// CREATE (open, read attributes) and CLOSE: a name looked up on the wire every time.
    override func lookup(_ operation: Operation) async -> Outcome {
        let path = operation.path
        let (response, id) = await createRequest(path, access: Access.readAttributes, disposition: Disposition.open, options: 0)
        guard let id else { return result(response) }
        let first = response.firstByte
        response.release()
        let (status, _, _) = result(await closeRequest(id))
        return (status, 0, first)
    }

    /// One QUERY_DIRECTORY (§2.2.33) of up to 8 KiB of FileIdBothDirectoryInformation, from
    /// the start.
    override func readdir(_ operation: Operation) async -> Outcome {
        let path = operation.path
        let response = await onOpen(path, SMBTransport.Command.queryDirectory, bodySize: 34) { b, id in
            b.initializeMemory(as: UInt8.self, repeating: 0, count: 34)
            b.storeBytes(of: UInt16(33).littleEndian, as: UInt16.self)
            b.storeBytes(of: UInt8(37), toByteOffset: 2, as: UInt8.self)
            b.storeBytes(of: UInt8(1), toByteOffset: 3, as: UInt8.self)          // RESTART_SCANS
            id.encode(b + 8)
            b.storeBytes(of: UInt16(96).littleEndian, toByteOffset: 24, as: UInt16.self)
            b.storeBytes(of: UInt16(2).littleEndian, toByteOffset: 26, as: UInt16.self)
            b.storeBytes(of: UInt32(8192).littleEndian, toByteOffset: 28, as: UInt32.self)
            b.storeBytes(of: UInt16(0x2A).littleEndian, toByteOffset: 32, as: UInt16.self)  // "*"
        }
        if response.status == 0x8000_0006 { return result(SMBResponse(status: 0, slice: response.slice, firstByte: response.firstByte)) }  // no entries
        return result(response)
    }

    override func commit(_ operation: Operation) async -> Outcome {
        let path = operation.path
        return result(await onOpen(path, SMBTransport.Command.flush, bodySize: 24) { b, id in
            b.initializeMemory(as: UInt8.self, repeating: 0, count: 24)
            b.storeBytes(of: UInt16(24).littleEndian, as: UInt16.self)
            id.encode(b + 8)
        })
    }

    /// SET_INFO (§2.2.39) of a file-information class with `buffer` on the open of `path`.
    private func setInfo(_ path: String, infoClass: UInt8, _ buffer: [UInt8]) async -> SMBResponse {
        let (id, status, first) = await open(path)
        guard let id else { return SMBResponse(status: 0, slice: nil, firstByte: first == 0 ? monotonicNanoseconds() : first, failure: status) }
        return await setInfo(path, id, infoClass: infoClass, buffer)
    }

    private func setInfo(_ path: String, _ id: FileID, infoClass: UInt8, _ buffer: [UInt8]) async -> SMBResponse {
        await onOpen(path, id, SMBTransport.Command.setInfo, bodySize: 32 + buffer.count) { b, id in
            b.initializeMemory(as: UInt8.self, repeating: 0, count: 32)
            b.storeBytes(of: UInt16(33).littleEndian, as: UInt16.self)
            b.storeBytes(of: UInt8(1), toByteOffset: 2, as: UInt8.self)
            b.storeBytes(of: infoClass, toByteOffset: 3, as: UInt8.self)
            b.storeBytes(of: UInt32(buffer.count).littleEndian, toByteOffset: 4, as: UInt32.self)
            b.storeBytes(of: UInt16(96).littleEndian, toByteOffset: 8, as: UInt16.self)
            id.encode(b + 16)
            buffer.withUnsafeBytes { (b + 32).copyMemory(from: $0.baseAddress!, byteCount: buffer.count) }
        }
    }

    /// CREATE with DELETE access, SET_INFO FileRenameInformation (class 10), CLOSE: how SMB
    /// clients rename.
    override func rename(_ operation: Operation) async -> Outcome {
        let path = operation.path, newPath = operation.newPath
        await closeOpen(path)?.release()
        let (opened, id) = await createRequest(path, access: Access.deleteAndAttributes, disposition: Disposition.open, options: 0)
        guard let id else { return result(opened) }
        let first = opened.firstByte
        opened.release()
        let name = Self.smbName(newPath)
        let buffer = [UInt8](repeating: 0, count: 16) + NTLMClient.le32(UInt32(name.count)) + name
        let renamed = await setInfo(path, id, infoClass: 10, buffer)
        let close = await closeRequest(id)
        let (status, _, _) = result(renamed)
        let (closeStatus, _, _) = result(close)
        return (status.isOK ? closeStatus : status, 0, first)
    }

    /// With a size: SET_INFO FileEndOfFileInformation (class 20), the file's length set.
    /// Without: FileBasicInformation (class 4) with the last-write time set to now.
    override func setattr(_ op: Operation) async -> Outcome {
        if op.length > 0 { return result(await setInfo(op.path, infoClass: 20, NTLMClient.le64(UInt64(op.length)))) }
        let buffer = [UInt8](repeating: 0, count: 16) + NTLMClient.le64(NTLMClient.fileTimeNow()) + [UInt8](repeating: 0, count: 16)
        return result(await setInfo(op.path, infoClass: 4, buffer))
    }

    /// LOCK (§2.2.26) an exclusive range, failing at once on a conflict, then unlock it.
    override func lock(_ op: Operation) async -> Outcome {
        let length = UInt64(max(op.length, 1))
        let (handle, openStatus, openFirst) = await open(op.path)
        guard let handle else { return (openStatus, 0, openFirst) }
        func request(_ flags: UInt32) async -> SMBResponse {
            await onOpen(op.path, handle, SMBTransport.Command.lock, bodySize: 48) { b, id in
                b.initializeMemory(as: UInt8.self, repeating: 0, count: 48)
                b.storeBytes(of: UInt16(48).littleEndian, as: UInt16.self)
                b.storeBytes(of: UInt16(1).littleEndian, toByteOffset: 2, as: UInt16.self)
                id.encode(b + 8)
                b.storeBytes(of: op.offset.littleEndian, toByteOffset: 24, as: UInt64.self)
                b.storeBytes(of: length.littleEndian, toByteOffset: 32, as: UInt64.self)
                b.storeBytes(of: flags.littleEndian, toByteOffset: 40, as: UInt32.self)
            }
        }
        let locked = await request(0x2 | 0x10)                // EXCLUSIVE | FAIL_IMMEDIATELY
        let first = locked.firstByte
        guard locked.opStatus.isOK else { return result(locked) }
        locked.release()
        let (status, _, _) = result(await request(0x4))       // UNLOCK
        return (status, 0, first)
    }
}
