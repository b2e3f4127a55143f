import NIOCore
import NIOHTTP1
import RelayMetrics

/// A route the relay answers itself instead of relaying (`GET /healthz`, `GET /metrics`).
public struct LocalRoute: Sendable {
    public struct Response: Sendable {
        public var status: HTTPResponseStatus
        public var contentType: String
        public var body: ByteBuffer

        public init(status: HTTPResponseStatus = .ok, contentType: String = "text/plain; charset=utf-8", body: ByteBuffer) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
    }

    public var method: HTTPMethod
    public var path: String
    public var respond: @Sendable () -> Response

    public init(method: HTTPMethod = .GET, path: String, respond: @escaping @Sendable () -> Response) {
        self.method = method
        self.path = path
        self.respond = respond
    }

    public static let healthz = LocalRoute(path: "/healthz") { Response(body: ByteBuffer(string: "ok\n")) }

    /// Prometheus text of the relay's own metrics; queue and spool gauges are read at scrape time.
    public static func metrics(pipeline: DeliveryPipeline) -> LocalRoute {
        LocalRoute(path: "/metrics") {
            let snapshot = pipeline.snapshot
            let metrics = pipeline.counters.metrics
            metrics.spoolItems.set(Int64(snapshot.spoolItems))
            metrics.spoolBytes.set(Int64(snapshot.spoolBytes))
            metrics.process.update()
            let oldestAge = snapshot.oldestQueuedAt.map { Double((pipeline.clock.now - $0).wholeMilliseconds) / 1000 } ?? 0
            metrics.queueOldestAge.set(oldestAge)
            metrics.queueItems.set(Int64(snapshot.queuedItems))
            metrics.queueBytes.set(Int64(snapshot.queuedBytes))
            metrics.uploadsInFlight.set(Int64(snapshot.inFlight))
            return Response(contentType: RelayMetrics.contentType, body: ByteBuffer(bytes: metrics.exposition()))
        }
    }
}
