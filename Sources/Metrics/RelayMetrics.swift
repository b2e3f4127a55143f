import Synchronization

/// The one catalogue of the relay's metric names, labels and help texts, made on an
/// explicit `MetricsRegistry` and served as Prometheus text on the relay's local `GET /metrics`.
public final class RelayMetrics: Sendable {
    public let registry: MetricsRegistry

    public let uploadsReceived: Counter
    public let uploadsAccepted: Counter
    public let uploadsTooLarge: Counter
    public let malformedRequests: Counter
    public let uploadsDelivered: Counter
    public let upstreamSentBytes: Counter
    public let upstreamRetries: Counter
    public let uploadsResentUnknown: Counter
    public let uploadsUnconfirmed: Counter
    public let queueItems: Gauge
    public let queueBytes: Gauge
    public let uploadsInFlight: Gauge
    public let spoolItems: Gauge
    public let spoolBytes: Gauge
    public let queueOldestAge: Gauge
    public let receivedBytes: Counter
    /// From the first byte of a request to the relay's answer: what the profiler waits.
    public let answerDuration: DurationHistogram
    /// One upstream attempt, connect to last response byte.
    public let upstreamDuration: DurationHistogram
    /// Time an invocation's flush held `/event/next` back (invoke and end strategies).
    public let lambdaFlushDuration: DurationHistogram
    private let dropped: [String: Counter]
    /// Labelled series handed out per request: looked up here, so the registry (its lock,
    /// name validation, label hashing) is asked only the first time each series is used.
    /// Series still appear only once used, as before.
    private let requestCounters = Mutex<[RequestKey: Counter]>([:])
    private let attemptCounters = Mutex<[AttemptKey: Counter]>([:])
    private struct RequestKey: Hashable {
        var pathClass: String
        var status: UInt
    }
    private struct AttemptKey: Hashable {
        var outcome: String
        var statusClass: String
        var cause: String
    }
    public let process: ProcessMetrics
    /// Open client connections.
    public let clientConnections: Gauge
    // Keyed by raw value: a dictionary keyed by each enum cost its own generic metadata and
    // Hashable lookups at start-up (0.5 M instructions, callgrind).
    private let connectionsClosed: [String: Counter]
    private let labelsNotApplied: [String: Counter]

    /// Sub-millisecond local answers: 50 µs to 1 s.
    public static let answerBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(100), .seconds(1),
    ]
    /// Uploads over the network: 5 ms to 30 s.
    public static let upstreamBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30),
    ]

    static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "pyroscope_relay", metricName: metric, unitName: unit, helpText: help)
    }

    /// - Parameter dropReasons: every reason an upload can be dropped for; each gets its
    ///   series at zero from the start, so rates work before the first drop.
    public init(registry: MetricsRegistry = MetricsRegistry(), dropReasons: [String]) {
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
        uploadsUnconfirmed = registry.makeCounter(
            descriptor: Self.name(
                "uploads_unconfirmed", "total",
                "Uploads sent whole whose answer was lost (a freeze, a reset) and that were not sent again, so as not to store them twice; counted as delivered."
            ))
        uploadsResentUnknown = registry.makeCounter(
            descriptor: Self.name(
                "uploads_resent_unknown", "total",
                "Uploads sent again after an attempt of unknown fate (a timeout or a broken connection once the request was on its way): the remote may store both."
            ))
        queueItems = registry.makeGauge(descriptor: Self.name("queue_items", "", "Uploads waiting in the queue."))
        queueBytes = registry.makeGauge(descriptor: Self.name("queue", "bytes", "Bytes of the uploads waiting in the queue."))
        uploadsInFlight = registry.makeGauge(descriptor: Self.name("uploads_in_flight", "", "Uploads being sent to the remote now."))
        spoolItems = registry.makeGauge(descriptor: Self.name("spool_items", "", "Uploads waiting in the disk spool."))
        spoolBytes = registry.makeGauge(descriptor: Self.name("spool", "bytes", "Bytes the disk spool uses."))
        queueOldestAge = registry.makeGauge(
            descriptor: Self.name("queue_oldest_age", "seconds", "Age of the oldest upload waiting in the memory queue."))
        receivedBytes = registry.makeCounter(descriptor: Self.name("received_bytes", "total", "Body bytes of uploads read from profilers."))
        answerDuration = registry.makeDurationHistogram(
            descriptor: Self.name("request_duration", "seconds", "Time from a request's start to the relay's answer to the profiler."),
            labels: [], buckets: Self.answerBuckets)
        upstreamDuration = registry.makeDurationHistogram(
            descriptor: Self.name("upstream_request_duration", "seconds", "Duration of one upload attempt to the remote."),
            labels: [], buckets: Self.upstreamBuckets)
        lambdaFlushDuration = registry.makeDurationHistogram(
            descriptor: Self.name("lambda_flush_duration", "seconds", "Time an invocation's flush held back the next Lambda event."),
            labels: [], buckets: Self.upstreamBuckets)
        process = ProcessMetrics(registry: registry)
        var dropped: [String: Counter] = [:]
        for reason in dropReasons {
            dropped[reason] = registry.makeCounter(
                descriptor: Self.name("uploads_dropped", "total", "Uploads that did not reach the remote, by reason."),
                labels: [("reason", reason)])
        }
        self.dropped = dropped
        clientConnections = registry.makeGauge(descriptor: Self.name("client_connections", "", "Open connections from profilers and scrapers."))
        connectionsClosed = Self.counterPerReason(
            ClientConnectionCloseReason.allCases.map(\.rawValue), registry: registry,
            descriptor: Self.name(
                "client_connections_closed", "total",
                "Client connections the relay closed itself: timeouts, and the connection cap (replaced: an idle one made room; over_limit: refused with 503)."
            ))
        labelsNotApplied = Self.counterPerReason(
            LabelsNotAppliedReason.allCases.map(\.rawValue), registry: registry,
            descriptor: Self.name(
                "labels_not_applied", "total",
                "Uploads relayed unchanged although PYROSCOPE_LAMBDA_LABELS is on: the relay could not add the labels to them, by reason."
            ))
    }

    /// One counter per reason, labelled `reason`, each series there from the start.
    private static func counterPerReason(_ reasons: [String], registry: MetricsRegistry, descriptor: MetricNameDescriptor) -> [String: Counter] {
        var counters: [String: Counter] = [:]
        for reason in reasons {
            counters[reason] = registry.makeCounter(descriptor: descriptor, labels: [("reason", reason)])
        }
        return counters
    }

    /// Only made when a label is not applied; its series exist from the start (at zero).
    public func labelsNotApplied(reason: LabelsNotAppliedReason) -> Counter { labelsNotApplied[reason.rawValue]! }

    public func clientConnectionsClosed(reason: ClientConnectionCloseReason) -> Counter { connectionsClosed[reason.rawValue]! }

    public func uploadsDropped(reason: String) -> Counter? { dropped[reason] }

    /// Requests answered, by path class (`ingest`, `push`, `otlp`, `other`, `local`) and status.
    public func requests(pathClass: String, status: UInt) -> Counter {
        let key = RequestKey(pathClass: pathClass, status: status)
        if let counter = requestCounters.withLock({ $0[key] }) { return counter }
        let counter = registry.makeCounter(
            descriptor: Self.name("requests", "total", "Requests the relay answered, by path class and HTTP status."),
            labels: [("path_class", pathClass), ("status", String(status))])
        requestCounters.withLock { $0[key] = counter }
        return counter
    }

    /// Upload attempts to the remote by outcome (`success`, `error_status`, `timeout`,
    /// `connection_error`), status class (`2xx`, `4xx`, `5xx`, `none`) and cause (`none`,
    /// `dns`, `refused`, `timeout`, `tls`, `proxy`, `connection`, `unauthorized`, `not_found`,
    /// `too_large`, `rate_limited`, `client_error`, `server_error`, `unexpected_status`:
    /// RelayCore's `UpstreamAttemptCause`, a closed set).
    public func upstreamAttempts(outcome: String, statusClass: String, cause: String) -> Counter {
        let key = AttemptKey(outcome: outcome, statusClass: statusClass, cause: cause)
        if let counter = attemptCounters.withLock({ $0[key] }) { return counter }
        let counter = registry.makeCounter(
            descriptor: Self.name(
                "upstream_attempts", "total", "Upload attempts to the remote, by outcome, status class and cause of failure."),
            labels: [("outcome", outcome), ("status_class", statusClass), ("cause", cause)])
        attemptCounters.withLock { $0[key] = counter }
        return counter
    }

    /// Lambda Extensions API events received, by type (`invoke`, `shutdown`).
    public func lambdaEvents(type: String) -> Counter {
        registry.makeCounter(
            descriptor: Self.name("lambda_events", "total", "Lambda Extensions API events received, by type."), labels: [("type", type)])
    }

    /// SHUTDOWN events by reason (`spindown`, `timeout`, `failure`).
    public func lambdaShutdowns(reason: String) -> Counter {
        registry.makeCounter(
            descriptor: Self.name("lambda_shutdowns", "total", "Lambda SHUTDOWN events, by reason."), labels: [("reason", reason)])
    }

    /// The exposition text (Prometheus text format 0.0.4).
    public func exposition() -> [UInt8] { registry.emitToBuffer() }

    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}

/// Why an upload went out without the labels of PYROSCOPE_LAMBDA_LABELS (it is relayed
/// as the client sent it: never dropped for this).
public enum LabelsNotAppliedReason: String, Sendable, CaseIterable {
    /// A push body that is not a protobuf `PushRequest`, or not valid gzip.
    case malformedPushBody = "malformed_push_body"
    /// An OTLP profiles body that is not an `ExportProfilesServiceRequest` (protobuf or JSON), or not valid gzip.
    case malformedOTLPBody = "malformed_otlp_body"
    /// A push or OTLP body of a type the relay does not rewrite (Connect's JSON push, or not
    /// protobuf or JSON at all).
    case unsupportedContentType = "unsupported_content_type"
    /// A push body compressed other than gzip.
    case unsupportedEncoding = "unsupported_encoding"
    /// A gzip push body that inflates to more than the relay holds in memory for it.
    case tooLarge = "too_large"
    /// An `/ingest` upload without a `name` Pyroscope can parse.
    case unparsableIngestName = "unparsable_ingest_name"
}

/// Why the relay closed a client connection itself.
public enum ClientConnectionCloseReason: String, Sendable, CaseIterable {
    case idleTimeout = "idle_timeout"
    case headerTimeout = "header_timeout"
    case bodyTimeout = "body_timeout"
    /// Closed at the connection cap to make room for a new one (it was idle).
    case replaced
    /// Refused with 503 at the cap: every connection was busy.
    case overLimit = "over_limit"
    /// An HTTP/2 connection (gRPC OTLP, say): answered with GOAWAY `HTTP_1_1_REQUIRED`.
    case http2Refused = "http2_refused"
}
