/// A bounded window of recent latencies, for p50/p99 in the stats line (histogram buckets
/// are too coarse for that).
struct LatencySamples {
    static let capacity = 2048
    private var values: [Double] = []
    private var next = 0
    /// Samples ever added.
    private(set) var total = 0

    mutating func add(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let milliseconds = Double(seconds) * 1000 + Double(attoseconds) / 1e15
        if values.count < Self.capacity {
            values.append(milliseconds)
        } else {
            values[next] = milliseconds
        }
        next = (next + 1) % Self.capacity
        total += 1
    }

    func percentiles() -> (p50: Double, p99: Double) {
        guard !values.isEmpty else { return (0, 0) }
        let sorted = values.sorted()
        func at(_ q: Double) -> Double { sorted[min(sorted.count - 1, Int((Double(sorted.count) * q).rounded(.up)) - 1)] }
        return (at(0.5), at(0.99))
    }
}
