import Runtime

/// What an HTTP application (S3) implements: one call per request, on the loop thread that
/// received it. A base class rather than a protocol existential, so dispatch is a vtable call.
open class HTTPResponder: @unchecked Sendable {
    public init() {}

    /// Answers one request through `exchange` (read its body, then respond). The exchange is
    /// reused for the connection's next request once this returns: keep nothing of it.
    open func serve(_ exchange: HTTPExchange) async {
        exchange.respond(.notFound, body: "")
    }
}

/// Errors while reading a request body.
public enum HTTPBodyError: Error, Sendable, Equatable {
    /// The connection closed before the body was complete.
    case truncated
    /// The chunked framing is malformed.
    case malformed
    /// No body bytes arrived for `HTTPLimits.bodyTimeout` seconds.
    case timedOut
    /// The body is larger than the caller accepts.
    case tooLarge
}
