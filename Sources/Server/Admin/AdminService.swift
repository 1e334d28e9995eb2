import HTTP
import Logging
import Runtime

/// Starts the admin API (`server.admin_port`) and the Prometheus metrics (`server.metrics_port`).
enum AdminService {
    static func start(_ configuration: Configuration, control: any ServerControl, group: LoopGroup, logger: Logger) throws(ServerError) -> (admin: Listener?, metrics: Listener?) {
        let host = configuration.server.bind.description
        var admin: Listener?
        var metrics: Listener?
        if configuration.server.adminPort != 0 {
            do {
                admin = try group.listen(host: host, port: configuration.server.adminPort,
                                         factory: HTTPServer.factory(responder: AdminAPI(control: control, delegation: group.delegation),
                                                                     loopCount: group.loops.count))
            } catch {
                throw ServerError.startup("cannot serve the admin API on \(host):\(configuration.server.adminPort): \(error)")
            }
            logger.info("admin API on \(admin!.boundAddress) (GET /api/v1/status, POST /api/v1/tuning from loopback)")
        }
        if configuration.server.metricsPort != 0 {
            do {
                metrics = try group.listen(host: host, port: configuration.server.metricsPort,
                                           factory: HTTPServer.factory(responder: MetricsExporter(control: control, delegation: group.delegation),
                                                                       loopCount: group.loops.count))
            } catch {
                throw ServerError.startup("cannot serve metrics on \(host):\(configuration.server.metricsPort): \(error)")
            }
            logger.info("Prometheus metrics on \(metrics!.boundAddress)/metrics")
        }
        return (admin, metrics)
    }
}
