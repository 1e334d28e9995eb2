/// A response status code and its reason phrase (RFC 9110 §15).
public struct HTTPStatus: Sendable, Equatable {
    public let code: Int
    public let reason: StaticString

    public init(_ code: Int, _ reason: StaticString) {
        self.code = code
        self.reason = reason
    }

    public static func == (a: HTTPStatus, b: HTTPStatus) -> Bool { a.code == b.code }

    public static let `continue` = HTTPStatus(100, "Continue")
    public static let ok = HTTPStatus(200, "OK")
    public static let noContent = HTTPStatus(204, "No Content")
    public static let partialContent = HTTPStatus(206, "Partial Content")
    public static let notModified = HTTPStatus(304, "Not Modified")
    public static let movedPermanently = HTTPStatus(301, "Moved Permanently")
    public static let badRequest = HTTPStatus(400, "Bad Request")
    public static let forbidden = HTTPStatus(403, "Forbidden")
    public static let notFound = HTTPStatus(404, "Not Found")
    public static let methodNotAllowed = HTTPStatus(405, "Method Not Allowed")
    public static let requestTimeout = HTTPStatus(408, "Request Timeout")
    public static let conflict = HTTPStatus(409, "Conflict")
    public static let lengthRequired = HTTPStatus(411, "Length Required")
    public static let preconditionFailed = HTTPStatus(412, "Precondition Failed")
    public static let contentTooLarge = HTTPStatus(413, "Content Too Large")
    public static let uriTooLong = HTTPStatus(414, "URI Too Long")
    public static let rangeNotSatisfiable = HTTPStatus(416, "Range Not Satisfiable")
    public static let expectationFailed = HTTPStatus(417, "Expectation Failed")
    public static let headerFieldsTooLarge = HTTPStatus(431, "Request Header Fields Too Large")
    public static let internalServerError = HTTPStatus(500, "Internal Server Error")
    public static let notImplemented = HTTPStatus(501, "Not Implemented")
    public static let serviceUnavailable = HTTPStatus(503, "Service Unavailable")
    public static let versionNotSupported = HTTPStatus(505, "HTTP Version Not Supported")
    public static let insufficientStorage = HTTPStatus(507, "Insufficient Storage")

    /// Any other code, with a generic reason.
    public static func code(_ code: Int) -> HTTPStatus {
        switch code {
        case 200: return .ok
        case 204: return .noContent
        case 206: return .partialContent
        case 304: return .notModified
        case 400: return .badRequest
        case 403: return .forbidden
        case 404: return .notFound
        case 405: return .methodNotAllowed
        case 409: return .conflict
        case 411: return .lengthRequired
        case 412: return .preconditionFailed
        case 413: return .contentTooLarge
        case 416: return .rangeNotSatisfiable
        case 500: return .internalServerError
        case 501: return .notImplemented
        case 503: return .serviceUnavailable
        case 507: return .insufficientStorage
        default: return HTTPStatus(code, "Status")
        }
    }
}

/// Limits that keep one client from holding more than its share (issue 10).
public struct HTTPLimits: Sendable {
    /// Largest request head (request line and fields).
    public var maxHeadSize = 64 * 1024
    /// Largest request target.
    public var maxTargetSize = 16 * 1024
    /// Most header fields in one request.
    public var maxFields = 128
    /// Bodies up to this size are collected whole before the responder runs (one slice);
    /// larger ones and chunked ones are streamed to it.
    public var wholeBodyLimit = 1024 * 1024
    /// Longest chunk-size line or trailer line of a chunked body.
    public var maxChunkLine = 4096
    /// Seconds a client has to finish sending a request head once it has started one.
    public var headTimeout: Double = 30
    /// Seconds a body may go without progress while the responder waits for it.
    public var bodyTimeout: Double = 60
    /// Seconds an idle keep-alive connection stays open.
    public var idleTimeout: Double = 120

    public init() {}
}
