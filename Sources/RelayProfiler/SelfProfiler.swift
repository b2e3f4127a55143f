import CSelfProfiler
import Logging
import NIOCore
import NIOHTTP1
import RelayCore
import RelayMetrics
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What the self-profiler samples and how it names its uploads.
public struct SelfProfilerConfiguration: Sendable {
    /// Samples per second of each thread's CPU time.
    public var samplesPerSecond: Int = 100
    /// One profile upload per window; a flush or shutdown ends a window early.
    public var uploadInterval: Duration = .seconds(10)
    /// How often the sample ring is emptied and new threads get a timer. The ring holds
    /// `ringCapacity` samples: at 100 Hz on 2 busy cores that is 5 s of headroom.
    public var drainInterval: Duration = .milliseconds(500)
    public var ringCapacity: Int = 1024
    public var applicationName: String = "pyroscope.lambda.extension"
    /// Static tags, e.g. the Lambda function name, in Pyroscope's `name{k=v}` form.
    public var tags: [(name: String, value: String)] = []

    public init() {}

    public static let spyName = "swiftspy"

    /// `app{k=v,...}` as Pyroscope's ingest API takes it in `name=`.
    var seriesName: String {
        tags.isEmpty ? applicationName : applicationName + "{" + tags.map { "\($0.name)=\($0.value)" }.joined(separator: ",") + "}"
    }
}

/// A CPU sampling profiler for the extension's own process, sending pprof profiles
/// through the relay's delivery pipeline as application `pyroscope.lambda.extension`.
///
/// Each thread gets a timer on its own CPU time that sends it SIGPROF; the handler (C,
/// async-signal-safe) unwinds the thread into a preallocated ring. This service empties
/// the ring, symbolizes, encodes and submits, all outside the handler. It only exists
/// when self-profiling is on: off means no handler, no timer, no task.
public final class SelfProfiler: Service, Sendable {
    let configuration: SelfProfilerConfiguration
    let submit: @Sendable (Upload) async -> Bool
    let logger: Logger
    private let state: Mutex<Sampler>

    /// `submit` takes a finished profile into the delivery pipeline (true: accepted).
    public init(configuration: SelfProfilerConfiguration, logger: Logger, submit: @escaping @Sendable (Upload) async -> Bool) {
        self.configuration = configuration
        self.logger = logger
        self.submit = submit
        self.state = Mutex(Sampler(configuration: configuration))
    }

    public func run() async {
        let started = state.withLock { $0.start() }
        if let error = started {
            logger.warning(
                "Self-profiling unavailable; the relay runs without it",
                metadata: [LogKey.error: "\(error)", LogKey.comp: "self-profiler"])
            try? await gracefulShutdown()
            return
        }
        logger.info(
            "Self-profiling",
            metadata: [
                LogKey.application: "\(configuration.seriesName)", LogKey.hz: .stringConvertible(configuration.samplesPerSecond), LogKey.comp: "self-profiler",
            ])
        var nextUpload = ContinuousClock.now + configuration.uploadInterval
        while true {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.configuration.drainInterval) }
            } catch {
                break
            }
            state.withLock { $0.collect(rescanThreads: true) }
            if ContinuousClock.now >= nextUpload {
                await flush()
                nextUpload = .now + configuration.uploadInterval
            }
        }
        // Shutdown: stop sampling first so the last window is complete, then send it.
        state.withLock { $0.stop() }
        await flush()
    }

    /// Ends the current window now and submits it (nothing when it has no samples).
    public func flush() async {
        guard let profile = state.withLock({ $0.takeProfile(now: unixNanoseconds()) }) else { return }
        let upload = Upload(method: .POST, target: profile.target, headers: profile.headers, body: ByteBuffer(bytes: profile.body))
        let accepted = await submit(upload)
        logger.debug(
            accepted ? "Self-profile submitted" : "Self-profile dropped: queue full",
            metadata: [
                LogKey.samples: .stringConvertible(profile.samples), LogKey.bytes: .stringConvertible(profile.body.count),
                LogKey.droppedSamples: .stringConvertible(csp_dropped_samples()), LogKey.comp: "self-profiler",
            ])
    }
}

/// The profiler's state, only touched under the service's lock.
struct Sampler: ~Copyable {
    struct Profile {
        var target: String
        var headers: HTTPHeaders
        var body: [UInt8]
        var samples: Int
    }

    let configuration: SelfProfilerConfiguration
    private var timers: [Int32: UInt] = [:]
    private var running = false
    private var windowStart: Int64 = unixNanoseconds()
    private var stacks: [[UInt]: Int] = [:]
    private var sampleCount = 0
    private var symbolizer: Symbolizer?
    private let buffer: UnsafeMutableBufferPointer<csp_sample>

    init(configuration: SelfProfilerConfiguration) {
        self.configuration = configuration
        buffer = .allocate(capacity: 128)
    }

    deinit { buffer.deallocate() }

    var periodNanos: Int64 { 1_000_000_000 / Int64(max(1, configuration.samplesPerSecond)) }

    /// Installs the handler and arms a timer per thread. Returns an error text on failure.
    mutating func start() -> String? {
        let status = csp_install(UInt32(max(16, configuration.ringCapacity)))
        guard status == 0 else { return "installing the SIGPROF handler: \(String(cString: strerror(status)))" }
        running = true
        windowStart = unixNanoseconds()
        rescanThreads()
        if timers.isEmpty {
            stop()
            // Threads are found in /proc/self/task, and symbols in /proc/self/exe.
            guard access("/proc/self/task", R_OK) == 0 else { return "/proc is not mounted: it lists the threads to sample" }
            return "no thread timer could be created (timer_create on thread CPU clocks)"
        }
        return nil
    }

    /// Gives new threads a timer and deletes the timers of threads that ended.
    mutating func rescanThreads() {
        guard running else { return }
        let threads = Set(Self.threadIDs())
        for (tid, timer) in timers where !threads.contains(tid) {
            _ = csp_disarm(timer)
            timers[tid] = nil
        }
        for tid in threads where timers[tid] == nil {
            var timer: UInt = 0
            // A thread may end between listing and arming: skip it.
            if csp_arm_thread(tid, periodNanos, &timer) == 0 { timers[tid] = timer }
        }
    }

    mutating func stop() {
        guard running else { return }
        for timer in timers.values { _ = csp_disarm(timer) }
        timers.removeAll()
        csp_uninstall()
        running = false
        collect(rescanThreads: false)
    }

    /// Moves finished samples from the ring into this window's stack counts.
    mutating func collect(rescanThreads rescan: Bool) {
        while true {
            let count = Int(csp_drain(buffer.baseAddress, Int32(buffer.count)))
            for sample in buffer[..<count] {
                var sample = sample
                let depth = Int(min(sample.depth, UInt32(CSP_MAX_FRAMES)))
                guard depth > 0 else { continue }
                let frames = withUnsafeBytes(of: &sample.frames) { raw in
                    Array(raw.bindMemory(to: UInt.self).prefix(depth))
                }
                stacks[frames, default: 0] += 1
                sampleCount += 1
            }
            if count < buffer.count { break }
        }
        if rescan { rescanThreads() }
    }

    /// Ends the window: symbolized, encoded as pprof, gzipped, as an ingest request.
    mutating func takeProfile(now: Int64) -> Profile? {
        collect(rescanThreads: false)
        let start = windowStart
        windowStart = now
        guard sampleCount > 0 else { return nil }
        let symbolizer = self.symbolizer ?? Symbolizer()
        self.symbolizer = symbolizer
        // Return addresses point after their call, possibly into the next function.
        var named: [[String]: Int] = [:]
        for (frames, count) in stacks {
            let names = frames.enumerated().map { symbolizer.functionName(at: $0.offset == 0 ? $0.element : $0.element &- 1) }
            named[names, default: 0] += count
        }
        symbolizer.releasePages()
        let samples = sampleCount
        stacks.removeAll(keepingCapacity: true)
        sampleCount = 0

        let profile = PprofProfile(
            samples: named.map { PprofProfile.Sample(functions: $0.key, count: $0.value) },
            periodNanos: periodNanos, startUnixNanos: start, durationNanos: max(0, now - start),
            executablePath: symbolizer.modules.first?.path ?? "")
        guard let body = gzip(profile.encoded()) else { return nil }
        let from = start / 1_000_000_000
        let until = max(from + 1, (now + 999_999_999) / 1_000_000_000)
        let target =
            "/ingest?name=\(queryEscape(configuration.seriesName))&from=\(from)&until=\(until)"
            + "&format=pprof&sampleRate=\(configuration.samplesPerSecond)&spyName=\(SelfProfilerConfiguration.spyName)"
        // The headers pyroscope-io's pprof ingest sends.
        let headers = HTTPHeaders([("Content-Type", "binary/octet-stream"), ("Content-Encoding", "gzip")])
        return Profile(target: target, headers: headers, body: body, samples: samples)
    }

    static func threadIDs() -> [Int32] {
        (directoryEntryNames("/proc/self/task") ?? []).compactMap { Int32($0) }
    }
}

func gzip(_ bytes: [UInt8], level: Int32 = 6) -> [UInt8]? {
    var capacity = bytes.count + bytes.count / 8 + 128
    var out = [UInt8](repeating: 0, count: capacity)
    let status = bytes.withUnsafeBufferPointer { input in
        out.withUnsafeMutableBufferPointer { output in
            csp_gzip(input.baseAddress, input.count, output.baseAddress, &capacity, level)
        }
    }
    guard status == 0 else { return nil }
    out.removeSubrange(capacity...)
    return out
}
