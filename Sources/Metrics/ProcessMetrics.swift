import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The standard `process_*` metrics, read from /proc at scrape time (Linux only): what
/// the relay costs the function it shares memory and CPU with.
public final class ProcessMetrics: Sendable {
    let residentMemory: Gauge
    let virtualMemory: Gauge
    let cpuSeconds: Counter
    let openFDs: Gauge
    let maxFDs: Gauge
    let threads: Gauge
    let startTime: Gauge
    /// CPU seconds already added to the counter (counters only go up by increments).
    private let reportedCPU = Mutex<Double>(0)

    public init(registry: MetricsRegistry) {
        func descriptor(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "process", metricName: name, unitName: unit, helpText: help)
        }
        residentMemory = registry.makeGauge(descriptor: descriptor("resident_memory", "bytes", "Resident memory size in bytes."))
        virtualMemory = registry.makeGauge(descriptor: descriptor("virtual_memory", "bytes", "Virtual memory size in bytes."))
        cpuSeconds = registry.makeCounter(descriptor: descriptor("cpu_seconds", "total", "Total user and system CPU time spent in seconds."))
        openFDs = registry.makeGauge(descriptor: descriptor("open_fds", "", "Number of open file descriptors."))
        maxFDs = registry.makeGauge(descriptor: descriptor("max_fds", "", "Maximum number of open file descriptors."))
        threads = registry.makeGauge(descriptor: descriptor("threads", "", "Number of OS threads in the process."))
        startTime = registry.makeGauge(
            descriptor: descriptor("start_time", "seconds", "Start time of the process since unix epoch in seconds."))
        // Not read here: the values are read at each scrape (`update()`), and reading
        // /proc at construction delayed the relay's bind at start-up.
    }

    /// Reads /proc/self and sets the metrics.
    public func update() {
        #if os(Linux)
            let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
            let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
            if let stat = Self.read("/proc/self/stat"), let close = stat.lastIndex(of: ")") {
                // Fields after "(comm)": state is field 3; utime 14, stime 15, num_threads 20,
                // starttime 22, vsize 23, rss 24 (1-based, man 5 proc).
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                func field(_ number: Int) -> Double { fields.count > number - 3 ? Double(fields[number - 3]) ?? 0 : 0 }
                let cpu = (field(14) + field(15)) / ticks
                let delta = reportedCPU.withLock { reported -> Double in
                    defer { reported = max(reported, cpu) }
                    return max(0, cpu - reported)
                }
                if delta > 0 { cpuSeconds.increment(by: delta) }
                threads.set(field(20))
                virtualMemory.set(field(23))
                residentMemory.set(field(24) * pageSize)
                if let bootTime = Self.bootTimeOnce { startTime.set(bootTime + field(22) / ticks) }
            }
            openFDs.set(Double(Self.countEntries("/proc/self/fd")))
            var limit = rlimit()
            if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { maxFDs.set(Double(limit.rlim_cur)) }
        #endif
    }

    static func read(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes.append(contentsOf: buffer[..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The boot time does not change: /proc/stat (a line per CPU and more) is read once.
    static let bootTimeOnce = bootTime()

    static func bootTime() -> Double? {
        guard let stat = read("/proc/stat") else { return nil }
        for line in stat.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6))
        }
        return nil
    }

    static func countEntries(_ path: String) -> Int {
        max(0, (directoryEntryNames(path)?.count ?? 1) - 1)  // the directory handle itself
    }
}
