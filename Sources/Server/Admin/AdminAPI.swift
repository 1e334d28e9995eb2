import HTTP
import Runtime

/// The admin API on `server.admin_port`: JSON over HTTP/1.1 for `dmanoel-nas console
/// --connect` and for scripts.
///
/// | method and path            | answer                                                     |
/// |----------------------------|------------------------------------------------------------|
/// | `GET /api/v1/status`       | the server's status (loops, delegation, protocols with histograms) |
/// | `GET /api/v1/log?lines=N`  | the last N log lines (default 100, at most 1000)           |
/// | `POST /api/v1/tuning`      | apply `{"poll_mode": "always", "loop": 0}`, `{"spin_ns": N}` or `{"delegation_threads": N}` |
/// | `POST /api/v1/tuning/save` | write the current tuning into the server's configuration file |
///
/// Changing tuning is accepted only from loopback clients: the API has no authentication, and
/// reading is harmless while changing is not.
final class AdminAPI: HTTPResponder, @unchecked Sendable {
    private let control: any ServerControl
    private let delegation: DelegationPool
    static let maxBody = 64 * 1024

    init(control: any ServerControl, delegation: DelegationPool) {
        self.control = control
        self.delegation = delegation
    }

    override func serve(_ exchange: HTTPExchange) async {
        let target = exchange.request.targetString
        let path = String(target.prefix { $0 != "?" })
        let query = target.firstIndex(of: "?").map { target[target.index(after: $0)...] } ?? ""
        let method = exchange.request.method
        switch path {
        case "/api/v1/status":
            guard method == .get || method == .head else { return refuse(exchange, .methodNotAllowed, "use GET") }
            let control = self.control
            let status = await delegation.run { control.status() }
            send(exchange, .ok, status.jsonValue())
        case "/api/v1/log":
            guard method == .get || method == .head else { return refuse(exchange, .methodNotAllowed, "use GET") }
            var lines = 100
            for pair in query.split(separator: "&") where pair.hasPrefix("lines=") {
                guard let value = Int(pair.dropFirst(6)), value >= 0 else { return refuse(exchange, .badRequest, "lines must be a number") }
                lines = min(value, 1000)
            }
            send(exchange, .ok, .array(control.recentLogLines(lines).map { line in
                .string(line.hasSuffix("\n") ? String(line.dropLast()) : line)
            }))
        case "/api/v1/tuning":
            guard method == .post else { return refuse(exchange, .methodNotAllowed, "use POST with a JSON body") }
            guard Self.isLoopback(exchange.request.peer) else {
                return refuse(exchange, .forbidden, "tuning changes are accepted only from this machine (loopback)")
            }
            let body: [UInt8]
            do {
                body = try await exchange.readBody(limit: Self.maxBody)
            } catch {
                exchange.closeAfterResponse()
                return refuse(exchange, .badRequest, "the body could not be read (\(error))")
            }
            let change: TuningChange
            do {
                change = try TuningChange(json: try JSONValue.parse(bytes: body))
            } catch let error as JSONParseError {
                return refuse(exchange, .badRequest, "the body is not JSON: \(error)")
            } catch {
                return refuse(exchange, .badRequest, "\(error)")
            }
            let control = self.control
            switch await delegation.run({ control.apply(change) }) {
            case let .success(text): send(exchange, .ok, ["applied": .string(text)])
            case let .failure(error): refuse(exchange, .badRequest, "\(error)")
            }
        case "/api/v1/tuning/save":
            guard method == .post else { return refuse(exchange, .methodNotAllowed, "use POST") }
            guard Self.isLoopback(exchange.request.peer) else {
                return refuse(exchange, .forbidden, "saving tuning is accepted only from this machine (loopback)")
            }
            let control = self.control
            switch await delegation.run({ control.saveTuning() }) {
            case let .success(text): send(exchange, .ok, ["saved": .string(text)])
            case let .failure(error): refuse(exchange, .conflict, "\(error)")
            }
        case "/", "/api", "/api/v1":
            send(exchange, .ok, ["endpoints": ["/api/v1/status", "/api/v1/log?lines=N", "POST /api/v1/tuning", "POST /api/v1/tuning/save"]])
        default:
            refuse(exchange, .notFound, "no such endpoint: \(path) (see /api/v1)")
        }
    }

    private func send(_ exchange: HTTPExchange, _ status: HTTPStatus, _ value: JSONValue) {
        exchange.respond(status, body: value.serialized(pretty: false) + "\n") { $0.add("Content-Type", "application/json") }
    }

    private func refuse(_ exchange: HTTPExchange, _ status: HTTPStatus, _ message: String) {
        send(exchange, status, ["error": .string(message)])
    }

    /// "127.0.0.1:5000", "[::1]:5000" and the IPv4-mapped form are loopback.
    static func isLoopback(_ peer: String) -> Bool {
        peer.hasPrefix("127.") || peer.hasPrefix("[::1]") || peer.hasPrefix("[::ffff:127.")
    }
}
