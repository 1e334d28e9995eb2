import Runtime

/// Builds the connection handlers of an HTTP listener.
public enum HTTPServer {
    /// A factory for `LoopGroup.listen`: every connection is served by `responder` under
    /// `limits`. `loopCount` sizes the per-loop caches (the Date header).
    public static func factory(responder: HTTPResponder, limits: HTTPLimits = HTTPLimits(), loopCount: Int) -> ConnectionFactory {
        let caches = DateCaches(count: loopCount)
        return { connection in
            let handler = HTTPConnection(responder: responder, limits: limits, dateCache: caches.cache(for: connection.loop.index))
            handler.attach(connection)
            return handler
        }
    }
}

/// One Date-header cache per loop: each is used only by its own loop's thread.
private final class DateCaches: @unchecked Sendable {
    private let caches: [HTTPDateCache]

    init(count: Int) {
        caches = (0..<max(1, count)).map { _ in HTTPDateCache() }
    }

    func cache(for index: Int) -> HTTPDateCache {
        caches[index % caches.count]
    }
}
