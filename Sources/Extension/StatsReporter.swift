import Logging
import RelayCore

/// The `relay stats` log line, for CloudWatch Logs Insights: every `interval` when
/// something changed, and once at shutdown. With an EMF namespace it also carries the
/// CloudWatch Embedded Metric Format block, so CloudWatch makes metrics from it.
public struct StatsReporter: Service, CustomStringConvertible {
    /// CloudWatch EMF settings; nil: off (custom metrics cost money).
    public struct EMF: Sendable {
        public var namespace: String
        public var functionName: String
    }

    let pipeline: DeliveryPipeline
    let interval: Duration
    let emf: EMF?
    let logger: Logger

    public init(pipeline: DeliveryPipeline, interval: Duration, emf: EMF?, logger: Logger) {
        self.pipeline = pipeline
        self.interval = interval
        self.emf = emf
        self.logger = logger
    }

    public var description: String { "StatsReporter" }

    var counters: RelayCounters { pipeline.counters }

    public func run() async {
        guard interval > .zero else {
            try? await gracefulShutdown()
            return
        }
        var last = counters.snapshot
        while true {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            let now = counters.snapshot
            if now != last {
                logStats(phase: "interval")
                last = now
            }
        }
    }

    /// Metric name in the line → CloudWatch unit.
    static let emfMetrics: [(String, String)] = [
        ("received", "Count"), ("accepted", "Count"), ("delivered", "Count"), ("delivered_bytes", "Bytes"),
        ("dropped", "Count"), ("retries", "Count"), ("too_large", "Count"), ("queue_items", "Count"), ("spool_items", "Count"),
        ("answer_p99_ms", "Milliseconds"), ("upload_p50_ms", "Milliseconds"), ("upload_p99_ms", "Milliseconds"),
        ("flush_p99_ms", "Milliseconds"),
    ]

    /// The fields of the line, numbers as numbers.
    public func fields() -> Logger.Metadata {
        let stats = counters.snapshot
        let latency = counters.latencyPercentiles
        let queued = pipeline.snapshot
        var fields: Logger.Metadata = [
            LogKey.received: .stringConvertible(stats.received), LogKey.accepted: .stringConvertible(stats.accepted),
            LogKey.delivered: .stringConvertible(stats.delivered), LogKey.deliveredBytes: .stringConvertible(stats.deliveredBytes),
            LogKey.dropped: .stringConvertible(stats.droppedTotal), LogKey.retries: .stringConvertible(stats.retries),
            LogKey.tooLarge: .stringConvertible(stats.tooLarge), LogKey.malformed: .stringConvertible(stats.malformed),
            LogKey.queueItems: .stringConvertible(queued.queuedItems), LogKey.spoolItems: .stringConvertible(queued.spoolItems),
            LogKey.keptInSpool: .stringConvertible(stats.keptInSpool),
            "answer_p50_ms": .stringConvertible(Self.rounded(latency.answerP50)),
            "answer_p99_ms": .stringConvertible(Self.rounded(latency.answerP99)),
            "upload_p50_ms": .stringConvertible(Self.rounded(latency.upstreamP50)),
            "upload_p99_ms": .stringConvertible(Self.rounded(latency.upstreamP99)),
        ]
        let flushes = counters.flushPercentiles
        fields["flushes"] = .stringConvertible(flushes.count)
        fields["flush_p50_ms"] = .stringConvertible(Self.rounded(flushes.p50))
        fields["flush_p99_ms"] = .stringConvertible(Self.rounded(flushes.p99))
        for reason in DropReason.allCases {
            fields["dropped_\(reason.rawValue)"] = .stringConvertible(stats.dropped[reason] ?? 0)
        }
        return fields
    }

    /// One `relay stats` line; `phase` is `interval` or `shutdown`.
    public func logStats(phase: String) {
        var fields = fields()
        fields["phase"] = "\(phase)"
        if let emf {
            fields["FunctionName"] = "\(emf.functionName)"
            fields["_aws"] = .dictionary([
                "Timestamp": .stringConvertible(unixMilliseconds()),
                "CloudWatchMetrics": .array([
                    .dictionary([
                        "Namespace": "\(emf.namespace)",
                        "Dimensions": .array([.array(["FunctionName"])]),
                        "Metrics": .array(Self.emfMetrics.map { .dictionary(["Name": "\($0.0)", "Unit": "\($0.1)"]) }),
                    ])
                ]),
            ])
        }
        logger.info("relay stats", metadata: fields)
    }

    static func rounded(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
}
