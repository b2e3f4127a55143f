import RelayMetrics
import Testing

/// The relay's own Prometheus text registry: the exposition format, byte for byte.
@Suite struct MetricsRegistryTests {
    static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "test", metricName: metric, unitName: unit, helpText: help)
    }

    @Test func familiesComeInTheOrderMadeWithHelpTypeAndEverySeries() {
        let registry = MetricsRegistry()
        let plain = registry.makeCounter(descriptor: Self.name("uploads", "total", "Uploads, with a \\ backslash."))
        let gauge = registry.makeGauge(descriptor: Self.name("queue", "bytes", "Bytes queued."))
        let a = registry.makeCounter(descriptor: Self.name("dropped", "total", "Drops."), labels: [("reason", "queue_full")])
        let b = registry.makeCounter(descriptor: Self.name("dropped", "total", "Drops."), labels: [("reason", "a \"quoted\"\nline\\")])
        plain.increment()
        plain.increment(by: Int64(2))
        gauge.set(Int64(5))
        gauge.decrement()
        a.increment(by: Int64(7))
        _ = b
        let text = String(decoding: registry.emitToBuffer(), as: UTF8.self)
        #expect(
            text == """
                # HELP test_uploads_total Uploads, with a \\\\ backslash.
                # TYPE test_uploads_total counter
                test_uploads_total 3
                # HELP test_queue_bytes Bytes queued.
                # TYPE test_queue_bytes gauge
                test_queue_bytes 4.0
                # HELP test_dropped_total Drops.
                # TYPE test_dropped_total counter
                test_dropped_total{reason="queue_full"} 7
                test_dropped_total{reason="a \\"quoted\\"\\nline\\\\"} 0

                """)
    }

    @Test func makingAMetricThatExistsReturnsIt() {
        let registry = MetricsRegistry()
        let first = registry.makeCounter(descriptor: Self.name("events", "total", "Events."), labels: [("type", "invoke")])
        let again = registry.makeCounter(descriptor: Self.name("events", "total", "Events."), labels: [("type", "invoke")])
        let other = registry.makeCounter(descriptor: Self.name("events", "total", "Events."), labels: [("type", "shutdown")])
        #expect(first === again)
        #expect(first !== other)
    }

    @Test func fractionalIncrementsAreKeptBesideWholeOnes() {
        let registry = MetricsRegistry()
        let cpu = registry.makeCounter(descriptor: Self.name("cpu_seconds", "total", "CPU."))
        cpu.increment(by: 0.25)
        cpu.increment(by: Int64(1))
        #expect(String(decoding: registry.emitToBuffer(), as: UTF8.self).hasSuffix("test_cpu_seconds_total 1.25\n"))
    }

    @Test func histogramsWriteCumulativeBucketsInSecondsWithSumAndCount() {
        let registry = MetricsRegistry()
        let histogram = registry.makeDurationHistogram(
            descriptor: Self.name("latency", "seconds", "Latency."), buckets: [.microseconds(50), .milliseconds(2.5), .seconds(1)])
        histogram.record(.microseconds(20))
        histogram.record(.milliseconds(2))
        histogram.record(.seconds(3))
        #expect(
            String(decoding: registry.emitToBuffer(), as: UTF8.self) == """
                # HELP test_latency_seconds Latency.
                # TYPE test_latency_seconds histogram
                test_latency_seconds_bucket{le="0.00005"} 1
                test_latency_seconds_bucket{le="0.0025"} 2
                test_latency_seconds_bucket{le="1.0"} 2
                test_latency_seconds_bucket{le="+Inf"} 3
                test_latency_seconds_sum 3.00202
                test_latency_seconds_count 3

                """)
    }

    @Test func labelledHistogramsCarryTheirLabelsOnEveryLine() {
        let registry = MetricsRegistry()
        let histogram = registry.makeDurationHistogram(
            descriptor: Self.name("flush", "seconds", "Flush."), labels: [("strategy", "end")], buckets: [.seconds(1)])
        histogram.record(.milliseconds(10))
        let lines = String(decoding: registry.emitToBuffer(), as: UTF8.self).split(separator: "\n").dropFirst(2)
        #expect(
            Array(lines) == [
                #"test_flush_seconds_bucket{strategy="end",le="1.0"} 1"#, #"test_flush_seconds_bucket{strategy="end",le="+Inf"} 1"#,
                #"test_flush_seconds_sum{strategy="end"} 0.01"#, #"test_flush_seconds_count{strategy="end"} 1"#,
            ])
    }
}
