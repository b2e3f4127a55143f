// + the rest of the extension's stack: swift-log (a handler writing one line), swift-metrics
// bootstrapped with a swift-prometheus registry (one counter), and a swift-service-lifecycle
// ServiceGroup running the extension's loop as a Service; TLS as in LadderNIOSSL.
import LadderHTTP
import Logging
import Metrics
import NIOCore
import NIOPosix
import NIOSSL
import Prometheus
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

/// One line per message on stderr.
struct LineHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        var line = Array("\(event.level) \(event.message)\n".utf8)
        _ = line.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }
}

struct ExtensionLoop: Service {
    let group: any EventLoopGroup
    let logger: Logger

    func run() async throws {
        let listener = try await bindListener(group: group).get()
        let client = try await ExtensionsClient.connect(group: group).get()
        let identifier = try await client.register(name: "ladder").get()
        Counter(label: "ladder_registrations_total").increment()
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .default
        let context = try NIOSSLContext(configuration: tls)
        logger.info("registered as \(identifier)")
        try await client.nextUntilShutdown(identifier: identifier).get()
        withExtendedLifetime(context) {}
        try await client.close().get()
        try await listener.close().get()
    }
}

LoggingSystem.bootstrap { _ in LineHandler() }
let registry = PrometheusCollectorRegistry()
MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
let logger = Logger(label: "ladder")
let group = ServiceGroup(
    configuration: ServiceGroupConfiguration(
        services: [
            .init(
                service: ExtensionLoop(group: MultiThreadedEventLoopGroup.singleton, logger: logger),
                successTerminationBehavior: .gracefullyShutdownGroup
            )
        ],
        gracefulShutdownSignals: [.sigterm],
        logger: logger
    )
)
try await group.run()
