import Synchronization

/// A metric's fully qualified name (`namespace_metric_unit`, empty parts left out) and help text.
public struct MetricNameDescriptor: Sendable {
    public let namespace: String?
    public let metricName: String
    public let unitName: String
    public let helpText: String
    /// The non-empty parts joined with "_", made once: as a computed property it was joined
    /// anew at each of its 46 reads at start (callgrind, until the first INVOKE: 6.78 M ->
    /// 6.71 M instructions).
    public let name: String

    public init(namespace: String? = nil, metricName: String, unitName: String, helpText: String) {
        self.namespace = namespace
        self.metricName = metricName
        self.unitName = unitName
        self.helpText = helpText
        var name = ""
        for part in [namespace ?? "", metricName, unitName] where !part.isEmpty {
            if !name.isEmpty { name += "_" }
            name += part
        }
        self.name = name
    }
}

/// The relay's own Prometheus registry: counters, gauges and duration histograms, served as
/// text format 0.0.4. It replaced swift-prometheus (and swift-metrics under it), whose registry
/// validated and repaired every name, label and help text when a metric was made: 1.8 M
/// instructions of each cold start's init for the relay's 40 series (callgrind), in a binary
/// that every cold start loads. The names here are constants of `RelayMetrics`, checked by the
/// tests (promtool included), so nothing needs repairing at run time.
///
/// Families are written in the order they were made, each series in the order it was first
/// asked for; making a metric that exists returns it.
public final class MetricsRegistry: Sendable {
    private let families = Mutex<[Family]>([])

    public init() {}

    public func makeCounter(descriptor: MetricNameDescriptor, labels: [(String, String)] = []) -> Counter {
        series(descriptor, labels, type: "counter") { Counter(prefix: $0) }
    }

    public func makeGauge(descriptor: MetricNameDescriptor, labels: [(String, String)] = []) -> Gauge {
        series(descriptor, labels, type: "gauge") { Gauge(prefix: $0) }
    }

    public func makeDurationHistogram(descriptor: MetricNameDescriptor, labels: [(String, String)] = [], buckets: [Duration])
        -> DurationHistogram
    {
        series(descriptor, labels, type: "histogram") { _ in
            DurationHistogram(name: descriptor.name, renderedLabels: Self.render(labels), buckets: buckets)
        }
    }

    /// The exposition text: per family a `# HELP` and a `# TYPE` line, then its series.
    public func emitToBuffer() -> [UInt8] {
        let families = families.withLock { $0 }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(8192)
        for family in families {
            buffer.append(contentsOf: "# HELP \(family.name) ".utf8)
            for byte in family.help.utf8 {
                if byte == UInt8(ascii: "\\") { buffer.append(UInt8(ascii: "\\")) }
                buffer.append(byte)
            }
            buffer.append(contentsOf: "\n# TYPE \(family.name) \(family.type)\n".utf8)
            for series in family.series { series.metric.emit(into: &buffer) }
        }
        return buffer
    }

    private func series<Metric: EmittingMetric>(
        _ descriptor: MetricNameDescriptor, _ labels: [(String, String)], type: String, make: (_ prefix: [UInt8]) -> Metric
    ) -> Metric {
        let name = descriptor.name
        let rendered = Self.render(labels)
        return families.withLock { families in
            let index =
                families.firstIndex { $0.name == name }
                ?? {
                    families.append(Family(name: name, help: descriptor.helpText, type: type))
                    return families.count - 1
                }()
            precondition(families[index].type == type, "metric \(name) made as a \(families[index].type) and as a \(type)")
            if let existing = families[index].series.first(where: { $0.labels == rendered }) {
                guard let metric = existing.metric as? Metric else { preconditionFailure("metric \(name): another kind") }
                return metric
            }
            var prefix = Array(name.utf8)
            if rendered.isEmpty {
                prefix.append(UInt8(ascii: " "))
            } else {
                prefix.append(UInt8(ascii: "{"))
                prefix.append(contentsOf: rendered)
                prefix.append(contentsOf: "} ".utf8)
            }
            let metric = make(prefix)
            families[index].series.append(Series(labels: rendered, metric: metric))
            return metric
        }
    }

    /// `name="value",...` in the order given, the value escaped as the text format requires.
    static func render(_ labels: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (index, (key, value)) in labels.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: key.utf8)
            out.append(contentsOf: "=\"".utf8)
            for byte in value.utf8 {
                switch byte {
                case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
                case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
                case UInt8(ascii: "\n"): out.append(contentsOf: "\\n".utf8)
                default: out.append(byte)
                }
            }
            out.append(UInt8(ascii: "\""))
        }
        return out
    }

    private struct Family: Sendable {
        var name: String
        var help: String
        var type: String
        var series: [Series] = []
    }

    private struct Series: Sendable {
        var labels: [UInt8]
        var metric: any EmittingMetric
    }
}

protocol EmittingMetric: AnyObject, Sendable {
    func emit(into buffer: inout [UInt8])
}

/// A value that only goes up. Whole increments are kept exactly; fractional ones (CPU seconds)
/// beside them.
public final class Counter: EmittingMetric {
    private let whole = Atomic<Int64>(0)
    private let fractionBits = Atomic<UInt64>(Double(0).bitPattern)
    private let prefix: [UInt8]

    init(prefix: [UInt8]) { self.prefix = prefix }

    public func increment() { increment(by: Int64(1)) }

    public func increment(by amount: Int64) {
        precondition(amount >= 0)
        whole.add(amount, ordering: .relaxed)
    }

    public func increment(by amount: Double) {
        precondition(amount >= 0)
        fractionBits.add(amount)
    }

    func emit(into buffer: inout [UInt8]) {
        buffer.append(contentsOf: prefix)
        let fraction = Double(bitPattern: fractionBits.load(ordering: .relaxed))
        let whole = whole.load(ordering: .relaxed)
        buffer.append(contentsOf: (fraction == 0 ? "\(whole)" : "\(fraction + Double(whole))").utf8)
        buffer.append(UInt8(ascii: "\n"))
    }
}

/// A value that goes up and down.
public final class Gauge: EmittingMetric {
    private let bits = Atomic<UInt64>(Double(0).bitPattern)
    private let prefix: [UInt8]

    init(prefix: [UInt8]) { self.prefix = prefix }

    public func set(_ value: Double) { bits.store(value.bitPattern, ordering: .relaxed) }
    public func set(_ value: Int64) { set(Double(value)) }
    public func increment(by amount: Double = 1) { bits.add(amount) }
    public func decrement(by amount: Double = 1) { bits.add(-amount) }

    func emit(into buffer: inout [UInt8]) {
        buffer.append(contentsOf: prefix)
        buffer.append(contentsOf: "\(Double(bitPattern: bits.load(ordering: .relaxed)))".utf8)
        buffer.append(UInt8(ascii: "\n"))
    }
}

/// Durations counted into cumulative buckets (`le`, in seconds), with their sum and count.
public final class DurationHistogram: EmittingMetric {
    private struct State {
        var counts: [Int]
        var sum: Duration = .zero
        var count = 0
    }
    private let name: String
    private let renderedLabels: [UInt8]
    private let buckets: [Duration]
    private let state: Mutex<State>

    init(name: String, renderedLabels: [UInt8], buckets: [Duration]) {
        self.name = name
        self.renderedLabels = renderedLabels
        self.buckets = buckets
        state = Mutex(State(counts: Array(repeating: 0, count: buckets.count)))
    }

    public func record(_ value: Duration) {
        state.withLock { state in
            for index in buckets.indices where buckets[index] >= value { state.counts[index] += 1 }
            state.sum += value
            state.count += 1
        }
    }

    func emit(into buffer: inout [UInt8]) {
        let state = state.withLock { $0 }
        let labels = renderedLabels.isEmpty ? "" : String(decoding: renderedLabels, as: UTF8.self) + ","
        for (bound, count) in zip(buckets, state.counts) {
            buffer.append(contentsOf: "\(name)_bucket{\(labels)le=\"\(Self.seconds(bound))\"} \(count)\n".utf8)
        }
        buffer.append(contentsOf: "\(name)_bucket{\(labels)le=\"+Inf\"} \(state.count)\n".utf8)
        let plain = renderedLabels.isEmpty ? " " : "{\(String(decoding: renderedLabels, as: UTF8.self))} "
        buffer.append(contentsOf: "\(name)_sum\(plain)\(Self.seconds(state.sum))\n".utf8)
        buffer.append(contentsOf: "\(name)_count\(plain)\(state.count)\n".utf8)
    }

    /// Seconds as a decimal with no trailing zeros after the first fractional digit: 0.00005, 2.5, 1.0.
    static func seconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        var fraction = String(attoseconds)
        fraction = String(repeating: "0", count: 18 - fraction.count) + fraction
        while fraction.count > 1, fraction.last == "0" { fraction.removeLast() }
        return "\(seconds).\(fraction)"
    }
}

extension Atomic where Value == UInt64 {
    /// Adds to a Double kept as its bit pattern.
    fileprivate func add(_ amount: Double) {
        var current = load(ordering: .relaxed)
        while true {
            let next = (Double(bitPattern: current) + amount).bitPattern
            let (exchanged, original) = compareExchange(expected: current, desired: next, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }
}
