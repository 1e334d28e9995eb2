import Glibc
import HTTP
import Runtime
import VFS

/// How the S3 service is set up: its buckets, where CreateBucket makes new ones, and who may
/// sign requests.
public struct S3Settings: Sendable {
    /// Configured buckets: name → absolute path in the server's namespace.
    public var buckets: [(name: String, path: String)]
    /// Where CreateBucket makes directories (a namespace path); nil refuses CreateBucket.
    public var bucketRoot: String?
    public var users: [S3User]
    /// The region GetBucketLocation reports; requests signed for any region are accepted.
    public var region: String
    /// Virtual-hosted style: a Host of "BUCKET.<domain>" names the bucket.
    public var domain: String?
    /// Largest PutObject / UploadPart body (EntityTooLarge past it); S3's own limit is 5 GiB.
    public var maxPutSize: UInt64
    /// Configured buckets limited to some users: bucket name → the user names that may use it.
    /// A bucket not listed is open to every user with keys.
    public var bucketUsers: [String: Set<String>]

    public init(buckets: [(name: String, path: String)], bucketRoot: String?, users: [S3User], region: String = "us-east-1", domain: String? = nil,
                maxPutSize: UInt64 = 5 << 30, bucketUsers: [String: Set<String>] = [:]) {
        self.buckets = buckets
        self.bucketRoot = bucketRoot
        self.users = users
        self.region = region
        self.domain = domain
        self.maxPutSize = maxPutSize
        self.bucketUsers = bucketUsers
    }
}

/// The S3 operations, indexing the per-operation statistics.
enum S3Operation: Int, CaseIterable {
    case listBuckets, headBucket, createBucket, deleteBucket, getBucketLocation, getBucketConfiguration
    case listObjects, listObjectsV2, getObject, headObject, putObject, copyObject, deleteObject, deleteObjects
    case createMultipartUpload, uploadPart, uploadPartCopy, completeMultipartUpload, abortMultipartUpload
    case listParts, listMultipartUploads, listObjectVersions, putACL, postObject, other

    static let names = ["ListBuckets", "HeadBucket", "CreateBucket", "DeleteBucket", "GetBucketLocation", "GetBucketConfiguration",
                        "ListObjects", "ListObjectsV2", "GetObject", "HeadObject", "PutObject", "CopyObject", "DeleteObject", "DeleteObjects",
                        "CreateMultipartUpload", "UploadPart", "UploadPartCopy", "CompleteMultipartUpload", "AbortMultipartUpload",
                        "ListParts", "ListMultipartUploads", "ListObjectVersions", "PutAcl", "PostObject", "Other"]
}

/// What one loop thread keeps for S3: its signature verifier (with its key cache), its
/// statistics and a request counter. Used only on that loop, so no locks.
final class S3LoopState {
    /// Users (their keys) and configured buckets, as this loop serves them: replaced on the
    /// loop's own thread by `S3Gateway.reload`, so requests read them without a lock.
    var signer: SigV4
    var buckets: [(name: String, path: String)]
    /// Buckets limited to some users: bucket name → user names.
    var bucketUsers: [String: Set<String>]
    var stats: ProtocolStats?
    var requests: UInt64 = 0
    var temporaries: UInt64 = 0
    /// Recently read object metadata (see ``CachedMetadata``).
    var metadata: [FileHandle: CachedMetadata] = [:]
    let idPrefix: String

    init(users: [String: S3User], buckets: [(name: String, path: String)], bucketUsers: [String: Set<String>], loop: Int) {
        signer = SigV4(users: users)
        self.buckets = buckets
        self.bucketUsers = bucketUsers
        let random = UInt32.random(in: 0...UInt32.max)
        idPrefix = S3Gateway.padded(String(loop & 0xFF, radix: 16, uppercase: true), 2) + S3Gateway.padded(String(random, radix: 16, uppercase: true), 8)
    }

    func nextRequestID() -> String {
        requests &+= 1
        return idPrefix + String(requests, radix: 16, uppercase: true)
    }
}

/// One S3 request being served: who signed it, what it addresses, and how to answer.
struct S3Call {
    let exchange: HTTPExchange
    let user: S3User
    let payload: PayloadProtection
    let bucket: String
    /// The decoded key ("" for bucket and service requests).
    let key: String
    let query: QueryParameters
    let requestID: String
    let state: S3LoopState

    var request: HTTPRequest { exchange.request }
    var credentials: Credentials { user.credentials }
}

/// The S3 API over HTTP/1.1, on the shared VFS (path-style addressing: /BUCKET/KEY).
/// Objects are ordinary files, so NFS and SMB clients see what S3 clients write.
public final class S3Gateway: HTTPResponder, @unchecked Sendable {
    let vfs: VirtualFileSystem
    let settings: S3Settings
    private let states: [S3LoopState]
    /// Size of each VFS read or copy step.
    static let ioSize = 1 << 20
    /// Largest XML request body accepted (DeleteObjects of 1000 long keys fits).
    static let maxXMLBody = 2 << 20

    public init(vfs: VirtualFileSystem, settings: S3Settings, loopCount: Int) {
        self.vfs = vfs
        self.settings = settings
        let byKey = Self.byKey(settings.users)
        states = (0..<max(1, loopCount)).map { S3LoopState(users: byKey, buckets: settings.buckets, bucketUsers: settings.bucketUsers, loop: $0) }
        super.init()
    }

    private static func byKey(_ users: [S3User]) -> [String: S3User] {
        var byKey: [String: S3User] = [:]
        for user in users { byKey[user.accessKey] = user }
        return byKey
    }

    /// Replaces the users and configured buckets of loop `index`; call it on that loop's
    /// thread (requests in progress keep the user they were authenticated as).
    public func reload(loop index: Int, buckets: [(name: String, path: String)], users: [S3User], bucketUsers: [String: Set<String>]) {
        let state = states[index % states.count]
        state.signer = SigV4(users: Self.byKey(users))
        state.buckets = buckets
        state.bucketUsers = bucketUsers
    }

    /// The state of the loop running the caller.
    var currentState: S3LoopState { states[(EventLoop.currentIndex ?? 0) % states.count] }

    public override func serve(_ exchange: HTTPExchange) async {
        let loop = exchange.connection.loop
        let state = states[loop.index % states.count]
        if state.stats == nil { state.stats = loop.protocolStats("S3", operations: S3Operation.names) }
        let started = monotonicNanoseconds()
        let requestID = state.nextRequestID()
        var operation = S3Operation.other
        var bytes = 0
        var failed = false
        do throws(S3Error) {
            if Self.isPostUpload(exchange.request) {
                operation = .postObject
                bytes = try await postObject(exchange, state: state, requestID: requestID)
            } else {
                let call = try authenticate(exchange, state: state, requestID: requestID)
                operation = try route(call)
                bytes = try await perform(operation, call)
            }
        } catch {
            failed = true
            respond(error, exchange, requestID: requestID)
        }
        state.stats?.record(operation.rawValue, nanoseconds: monotonicNanoseconds() &- started, bytes: bytes, error: failed)
    }

    // MARK: Requests

    /// Splits the target into bucket, key and query, and checks the signature.
    private func authenticate(_ exchange: HTTPExchange, state: S3LoopState, requestID: String) throws(S3Error) -> S3Call {
        let address = try address(of: exchange.request)
        let verified = try state.signer.verify(exchange.request, rawPath: address.rawPath, query: address.query, now: Int64(time(nil)))
        try checkBucketAccess(address.bucket, verified.user)
        return S3Call(exchange: exchange, user: verified.user, payload: verified.payload, bucket: address.bucket, key: address.key,
                      query: address.query, requestID: requestID, state: state)
    }

    /// A bucket limited to some users (`buckets.NAME.users`) refuses the others with AccessDenied.
    func checkBucketAccess(_ bucket: String, _ user: S3User) throws(S3Error) {
        guard !bucket.isEmpty, let allowed = currentState.bucketUsers[bucket], !allowed.contains(user.name) else { return }
        throw .accessDenied
    }

    /// What a request addresses: its raw path (valid while the request is), query, bucket and key.
    func address(of request: HTTPRequest) throws(S3Error) -> (rawPath: UnsafeRawBufferPointer, query: QueryParameters, bucket: String, key: String) {
        let target = request.target
        guard target.first == UInt8(ascii: "/") else { throw .invalidRequest("Only origin-form request targets (/bucket/key) are served.") }
        let mark = target.firstIndex(of: UInt8(ascii: "?")) ?? target.count
        let rawPath = UnsafeRawBufferPointer(rebasing: target[..<mark])
        var query = QueryParameters()
        if mark < target.count {
            guard let parsed = QueryParameters(bytes: UnsafeRawBufferPointer(rebasing: target[(mark + 1)...])) else {
                throw .invalidArgument("The query string has a malformed percent-escape.")
            }
            query = parsed
        }
        let path = UnsafeRawBufferPointer(rebasing: rawPath[1...])
        let bucket: String
        let key: String
        if let hosted = virtualHostedBucket(request) {
            // Virtual-hosted style: the whole path is the key.
            guard let decoded = URIEncoding.decode(path) else {
                throw .invalidArgument("The path has a malformed percent-escape or is not UTF-8.")
            }
            bucket = hosted
            key = decoded
        } else {
            let slash = path.firstIndex(of: UInt8(ascii: "/"))
            let bucketPart = UnsafeRawBufferPointer(rebasing: path[..<(slash ?? path.count)])
            let keyPart = slash.map { UnsafeRawBufferPointer(rebasing: path[($0 + 1)...]) } ?? UnsafeRawBufferPointer(start: nil, count: 0)
            guard let decodedBucket = URIEncoding.decode(bucketPart), let decodedKey = URIEncoding.decode(keyPart) else {
                throw .invalidArgument("The path has a malformed percent-escape or is not UTF-8.")
            }
            bucket = decodedBucket
            key = decodedKey
        }
        return (rawPath, query, bucket, key)
    }

    /// The bucket named by the Host header ("BUCKET.<domain>[:port]"), when a domain is set.
    private func virtualHostedBucket(_ request: HTTPRequest) -> String? {
        guard let domain = settings.domain, var host = request.value("host")?.lowercased() else { return nil }
        if let colon = host.lastIndex(of: ":"), !host.hasSuffix("]") { host = String(host[..<colon]) }
        guard host.hasSuffix("." + domain) else { return nil }
        let bucket = String(host.dropLast(domain.count + 1))
        return bucket.isEmpty ? nil : bucket
    }

    /// Which operation a request is (S3's REST routing by method, path and subresource).
    private func route(_ call: S3Call) throws(S3Error) -> S3Operation {
        let method = call.request.method
        let query = call.query
        if call.bucket.isEmpty {
            guard method == .get else { throw .methodNotAllowed }
            return .listBuckets
        }
        if call.key.isEmpty {
            switch method {
            case .get:
                if query.has("location") { return .getBucketLocation }
                if query.has("uploads") { return .listMultipartUploads }
                if query.has("versioning") || query.has("acl") { return .getBucketConfiguration }
                if query.has("versions") { return .listObjectVersions }
                for unsupported in ["policy", "cors", "lifecycle", "tagging", "website", "replication", "encryption", "logging",
                                    "notification", "object-lock", "ownershipControls", "publicAccessBlock", "accelerate",
                                    "requestPayment", "analytics", "metrics", "inventory", "intelligent-tiering"] where query.has(unsupported) {
                    throw .notImplemented
                }
                return query["list-type"] == "2" ? .listObjectsV2 : .listObjects
            case .head: return .headBucket
            case .put:
                if query.has("acl") { return .putACL }
                if !query.pairs.isEmpty { throw .notImplemented }
                return .createBucket
            case .delete:
                if !query.pairs.isEmpty { throw .notImplemented }
                return .deleteBucket
            case .post:
                if query.has("delete") { return .deleteObjects }
                throw .methodNotAllowed
            default: throw .methodNotAllowed
            }
        }
        switch method {
        case .get:
            if query.has("uploadId") { return .listParts }
            if query.has("acl") { return .getBucketConfiguration }
            for unsupported in ["tagging", "torrent", "retention", "legal-hold", "attributes"] where query.has(unsupported) {
                throw .notImplemented
            }
            return .getObject
        case .head: return .headObject
        case .put:
            if query.has("uploadId") || query.has("partNumber") {
                return call.request.value("x-amz-copy-source") == nil ? .uploadPart : .uploadPartCopy
            }
            if query.has("acl") { return .putACL }
            for unsupported in ["tagging", "retention", "legal-hold"] where query.has(unsupported) { throw .notImplemented }
            return call.request.value("x-amz-copy-source") == nil ? .putObject : .copyObject
        case .post:
            if query.has("uploads") { return .createMultipartUpload }
            if query.has("uploadId") { return .completeMultipartUpload }
            throw .methodNotAllowed
        case .delete:
            return query.has("uploadId") ? .abortMultipartUpload : .deleteObject
        default:
            throw .methodNotAllowed
        }
    }

    /// Runs the operation; returns the payload bytes moved (for the statistics).
    private func perform(_ operation: S3Operation, _ call: S3Call) async throws(S3Error) -> Int {
        switch operation {
        case .listBuckets: try await listBuckets(call)
        case .headBucket: try await headBucket(call)
        case .createBucket: try await createBucket(call)
        case .deleteBucket: try await deleteBucket(call)
        case .getBucketLocation: try await getBucketLocation(call)
        case .getBucketConfiguration: try await getBucketConfiguration(call)
        case .listObjects: try await listObjects(call, version: 1)
        case .listObjectsV2: try await listObjects(call, version: 2)
        case .getObject: return try await getObject(call, head: false)
        case .headObject: return try await getObject(call, head: true)
        case .putObject: return try await putObject(call)
        case .copyObject: try await copyObject(call)
        case .deleteObject: try await deleteObject(call)
        case .deleteObjects: try await deleteObjects(call)
        case .createMultipartUpload: try await createMultipartUpload(call)
        case .uploadPart: return try await uploadPart(call)
        case .uploadPartCopy: try await uploadPartCopy(call)
        case .completeMultipartUpload: try await completeMultipartUpload(call)
        case .abortMultipartUpload: try await abortMultipartUpload(call)
        case .listParts: try await listParts(call)
        case .listMultipartUploads: try await listMultipartUploads(call)
        case .listObjectVersions: try await listObjects(call, version: 0)
        case .putACL: try await putACL(call)
        case .postObject: throw .methodNotAllowed
        case .other: throw .notImplemented
        }
        return 0
    }

    // MARK: Responses

    /// An XML document with status 200 (or `status`).
    func respondXML(_ call: S3Call, _ document: XMLWriter, status: HTTPStatus = .ok) {
        call.exchange.respond(status, body: document.text) { headers in
            headers.add("Content-Type", "application/xml")
            headers.add("x-amz-request-id", call.requestID)
        }
    }

    /// An empty response with `status` and extra headers.
    func respondEmpty(_ call: S3Call, status: HTTPStatus = .ok, _ extra: (inout HTTPHeaderWriter) -> Void = { _ in }) {
        call.exchange.respond(status, contentLength: status == .noContent || status == .notModified ? nil : 0) { headers in
            headers.add("x-amz-request-id", call.requestID)
            extra(&headers)
        }
    }

    /// The S3 error document (no body for HEAD, as S3 does).
    func respond(_ error: S3Error, _ exchange: HTTPExchange, requestID: String) {
        guard !exchange.responded else {
            // Too late for a status: the client sees a short body and a closed connection.
            exchange.closeAfterResponse()
            exchange.connection.close()
            return
        }
        var document = XMLWriter()
        document.open("Error")
        document.element("Code", error.code)
        document.element("Message", error.message)
        document.element("Resource", String(exchange.request.targetString.prefix { $0 != "?" }))
        document.element("RequestId", requestID)
        document.close("Error")
        exchange.respond(error.status, body: document.text) { headers in
            headers.add("Content-Type", "application/xml")
            headers.add("x-amz-request-id", requestID)
            if let size = error.unsatisfiedSize { headers.add("Content-Range", "bytes */\(size)") }
        }
    }

    /// ISO 8601 with milliseconds, as S3 lists times ("2026-11-24T23:41:00.000Z").
    static func isoTime(_ time: Timespec) -> String {
        var t = time_t(time.seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        let date = "\(padded(String(parts.tm_year + 1900), 4))-\(padded(String(parts.tm_mon + 1), 2))-\(padded(String(parts.tm_mday), 2))"
        let clock = "\(padded(String(parts.tm_hour), 2)):\(padded(String(parts.tm_min), 2)):\(padded(String(parts.tm_sec), 2))"
        return "\(date)T\(clock).\(padded(String(time.nanoseconds / 1_000_000), 3))Z"
    }

    /// `text` with leading zeros up to `width` characters.
    static func padded(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }
}

