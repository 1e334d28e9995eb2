import HTTP
import VFS

/// An S3 error response: the code a client switches on, the HTTP status and a message
/// (sent as the S3 error XML document).
public struct S3Error: Error, Sendable, Equatable {
    public var code: String
    public var status: HTTPStatus
    public var message: String
    /// For InvalidRange: the object's size, sent as `Content-Range: bytes */SIZE`.
    var unsatisfiedSize: UInt64?

    public init(_ code: String, _ status: HTTPStatus, _ message: String) {
        self.code = code
        self.status = status
        self.message = message
    }

    public static func == (a: S3Error, b: S3Error) -> Bool { a.code == b.code && a.status == b.status }

    static let accessDenied = S3Error("AccessDenied", .forbidden, "Access Denied.")
    static let signatureDoesNotMatch = S3Error("SignatureDoesNotMatch", .forbidden,
        "The request signature we calculated does not match the signature you provided. Check your key and signing method.")
    static let invalidAccessKeyId = S3Error("InvalidAccessKeyId", .forbidden,
        "The AWS Access Key Id you provided does not exist in our records.")
    static let noSuchBucket = S3Error("NoSuchBucket", .notFound, "The specified bucket does not exist.")
    static let noSuchKey = S3Error("NoSuchKey", .notFound, "The specified key does not exist.")
    static let noSuchUpload = S3Error("NoSuchUpload", .notFound,
        "The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.")
    static let invalidRange = S3Error("InvalidRange", .rangeNotSatisfiable, "The requested range is not satisfiable.")
    static let preconditionFailed = S3Error("PreconditionFailed", .preconditionFailed,
        "At least one of the pre-conditions you specified did not hold.")
    static let bucketNotEmpty = S3Error("BucketNotEmpty", .conflict, "The bucket you tried to delete is not empty.")
    static let bucketAlreadyOwnedByYou = S3Error("BucketAlreadyOwnedByYou", .conflict,
        "Your previous request to create the named bucket succeeded and you already own it.")
    static let invalidBucketName = S3Error("InvalidBucketName", .badRequest, "The specified bucket is not valid.")
    static let methodNotAllowed = S3Error("MethodNotAllowed", .methodNotAllowed,
        "The specified method is not allowed against this resource.")
    static let notImplemented = S3Error("NotImplemented", .notImplemented,
        "A header or query you provided implies functionality that is not implemented.")
    static let missingContentLength = S3Error("MissingContentLength", .lengthRequired, "You must provide the Content-Length HTTP header.")
    static let badDigest = S3Error("BadDigest", .badRequest, "The Content-MD5 or checksum you specified did not match what we received.")
    static let invalidDigest = S3Error("InvalidDigest", .badRequest, "The Content-MD5 you specified is not valid.")
    static let contentSHA256Mismatch = S3Error("XAmzContentSHA256Mismatch", .badRequest,
        "The provided 'x-amz-content-sha256' header does not match what was computed.")
    static let incompleteBody = S3Error("IncompleteBody", .badRequest,
        "You did not provide the number of bytes specified by the Content-Length HTTP header.")
    static let malformedXML = S3Error("MalformedXML", .badRequest,
        "The XML you provided was not well-formed or did not validate against our published schema.")
    static let entityTooLarge = S3Error("EntityTooLarge", .badRequest, "Your proposed upload exceeds the maximum allowed object size.")
    static let entityTooSmall = S3Error("EntityTooSmall", .badRequest, "Your proposed upload is smaller than the minimum allowed object size.")
    static let invalidPart = S3Error("InvalidPart", .badRequest,
        "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag.")
    static let invalidPartOrder = S3Error("InvalidPartOrder", .badRequest,
        "The list of parts was not in ascending order. The parts list must be specified in order of the part number.")
    static let requestTimeTooSkewed = S3Error("RequestTimeTooSkewed", .forbidden,
        "The difference between the request time and the server's time is too large.")
    static let requestTimeout = S3Error("RequestTimeout", .badRequest,
        "Your socket connection to the server was not read from or written to within the timeout period.")
    static let internalError = S3Error("InternalError", .internalServerError, "We encountered an internal error. Please try again.")

    static func invalidArgument(_ message: String) -> S3Error { S3Error("InvalidArgument", .badRequest, message) }
    static func invalidRequest(_ message: String) -> S3Error { S3Error("InvalidRequest", .badRequest, message) }
    static func authorizationMalformed(_ message: String) -> S3Error { S3Error("AuthorizationHeaderMalformed", .badRequest, message) }
    static func accessDenied(_ message: String) -> S3Error { S3Error("AccessDenied", .forbidden, message) }

    /// The S3 error for a VFS error met while serving an object (`notFound` is decided by the
    /// caller: NoSuchKey or NoSuchBucket).
    init(_ error: VFSError) {
        switch error {
        case .notFound, .stale, .notDirectory, .isDirectory: self = .noSuchKey
        case .accessDenied, .notPermitted, .readOnly: self = .accessDenied
        case .nameTooLong: self = S3Error("KeyTooLongError", .badRequest, "Your key is too long.")
        case .noSpace, .quota: self = S3Error("InsufficientStorage", .insufficientStorage, "The server has no space left for this object.")
        case .fileTooBig: self = .entityTooLarge
        case .notEmpty, .exists: self = S3Error("ObjectConflict", .conflict, "The key conflicts with an existing directory or object in the bucket's namespace.")
        default: self = .internalError
        }
    }
}
