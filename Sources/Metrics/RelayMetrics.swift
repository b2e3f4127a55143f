import Prometheus

/// The one catalogue of the relay's metric names, labels and help texts, made on an
/// explicit `PrometheusCollectorRegistry` (metrics made through the swift-metrics API
/// carry no help text, which promtool flags) and served as Prometheus text on the
/// relay's local `GET /metrics`.
public final class RelayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    public let uploadsReceived: Counter
    public let uploadsAccepted: Counter
    public let uploadsTooLarge: Counter
    public let malformedRequests: Counter
    public let uploadsDelivered: Counter
    public let upstreamSentBytes: Counter
    public let upstreamRetries: Counter
    public let queueItems: Gauge
    public let queueBytes: Gauge
    public let uploadsInFlight: Gauge
    public let spoolItems: Gauge
    public let spoolBytes: Gauge
    private let dropped: [String: Counter]

    static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "pyroscope_relay", metricName: metric, unitName: unit, helpText: help)
    }

    /// - Parameter dropReasons: every reason an upload can be dropped for; each gets its
    ///   series at zero from the start, so rates work before the first drop.
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), dropReasons: [String]) {
        self.registry = registry
        uploadsReceived = registry.makeCounter(
            descriptor: Self.name(
                "uploads_received", "total",
                "Uploads whose whole body the relay read from a profiler."))
        uploadsAccepted = registry.makeCounter(
            descriptor: Self.name(
                "uploads_accepted", "total",
                "Uploads queued for relaying and acknowledged with 200."))
        uploadsTooLarge = registry.makeCounter(
            descriptor: Self.name(
                "uploads_too_large", "total",
                "Uploads refused with 413 because the body exceeded PYROSCOPE_MAX_BODY_BYTES."))
        malformedRequests = registry.makeCounter(
            descriptor: Self.name(
                "malformed_requests", "total",
                "Requests that were not valid HTTP/1.1, answered with 400."))
        uploadsDelivered = registry.makeCounter(
            descriptor: Self.name(
                "uploads_delivered", "total",
                "Uploads the remote Pyroscope server accepted with a 2xx answer."))
        upstreamSentBytes = registry.makeCounter(
            descriptor: Self.name(
                "upstream_sent_bytes", "total",
                "Body bytes of uploads delivered to the remote."))
        upstreamRetries = registry.makeCounter(
            descriptor: Self.name("upstream_retries", "total", "Upload attempts after the first (after failures or Retry-After)."))
        queueItems = registry.makeGauge(descriptor: Self.name("queue_items", "", "Uploads waiting in the queue."))
        queueBytes = registry.makeGauge(descriptor: Self.name("queue", "bytes", "Bytes of the uploads waiting in the queue."))
        uploadsInFlight = registry.makeGauge(descriptor: Self.name("uploads_in_flight", "", "Uploads being sent to the remote now."))
        spoolItems = registry.makeGauge(descriptor: Self.name("spool_items", "", "Uploads waiting in the disk spool."))
        spoolBytes = registry.makeGauge(descriptor: Self.name("spool", "bytes", "Bytes the disk spool uses."))
        var dropped: [String: Counter] = [:]
        for reason in dropReasons {
            dropped[reason] = registry.makeCounter(
                descriptor: Self.name("uploads_dropped", "total", "Uploads that did not reach the remote, by reason."),
                labels: [("reason", reason)])
        }
        self.dropped = dropped
    }

    public func uploadsDropped(reason: String) -> Counter? { dropped[reason] }

    /// The exposition text (Prometheus text format 0.0.4).
    public func exposition() -> [UInt8] { registry.emitToBuffer() }

    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}
