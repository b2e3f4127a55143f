// Test peer for the self-profiler (not shipped): runs the real relay application with
// the environment it is given, plus one thread burning CPU in a function with a known
// name, then asks the relay to shut down. The self-profiler's last window, which goes
// through the relay's delivery pipeline, must show that function on its heaviest stack.
//
// Usage: profiler-probe SECONDS   (environment: the extension's settings)
import LambdaExtension
import Logging
import RelayLogging

#if canImport(Glibc)
    import Glibc
#endif

/// The function the test looks for by its demangled name.
@inline(never)
func spinInKnownFunctionForProfilerTest(seconds: Double) -> UInt64 {
    var value: UInt64 = 0x9E37_79B9_7F4A_7C15
    var now = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
    let end = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9 + seconds
    while true {
        // Only transparent integer operations, no iterator: even a debug build keeps
        // every cycle in this function's own frame, so it is the leaf of the samples.
        var round = 0
        while round < 100_000 {
            value = (value ^ (value &>> 12)) &* 0x2545_F491_4F6C_DD1D &+ 1
            round &+= 1
        }
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        if Double(now.tv_sec) + Double(now.tv_nsec) / 1e9 >= end { return value }
    }
}

/// Waits (at most 10 s) until the self-profiler has armed this thread's CPU timer, which
/// /proc lists as `notify: signal/tid.<tid>`, so the whole spin is sampled.
func waitUntilThisThreadIsSampled() {
    // /proc/thread-self links to "<pid>/task/<tid>"; Glibc's module has no gettid.
    var link = [CChar](repeating: 0, count: 64)
    let length = readlink("/proc/thread-self", &link, link.count - 1)
    let path = String(decoding: link[..<max(0, length)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let marker = "tid.\(path.split(separator: "/").last ?? "")\n"
    for _ in 0..<1000 {
        if let file = fopen("/proc/self/timers", "r") {
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while case let count = fread(&chunk, 1, chunk.count, file), count > 0 { bytes += chunk[..<count] }
            fclose(file)
            if String(decoding: bytes, as: UTF8.self).contains(marker) { return }
        }
        // A peer, not a test: /proc/self/timers announces nothing, so it is read again.
        usleep(10_000)
    }
}

/// The busy thread's body; nonisolated, unlike closures written in top-level code.
nonisolated func spinThenStopTheRelay(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let seconds = argument!.assumingMemoryBound(to: Double.self).pointee
    waitUntilThisThreadIsSampled()
    let result = spinInKnownFunctionForProfilerTest(seconds: seconds)
    print("spin done \(result & 1)")
    kill(getpid(), SIGTERM)
    return nil
}

var environment: [String: String] = [:]
var entry = environ
while let pointer = entry.pointee {
    let text = String(cString: pointer)
    if let equals = text.firstIndex(of: "=") { environment[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
    entry += 1
}
let seconds = CommandLine.arguments.count > 1 ? Double(CommandLine.arguments[1]) ?? 1.5 : 1.5
let settings = ExtensionSettings(environment: environment)
let logConfiguration = settings.log
LoggingSystem.bootstrap { LogrusLogHandler(label: $0, configuration: logConfiguration) }
let logger = Logger(label: "profiler-probe")

// A thread of its own, not the cooperative pool: the relay's tasks need the pool, and
// the busy function should be the one clear hot spot. It starts after the relay had a
// moment to start the profiler, and ends the relay with SIGTERM as Lambda would.
var thread = pthread_t()
let secondsBox = UnsafeMutablePointer<Double>.allocate(capacity: 1)
secondsBox.pointee = seconds
pthread_create(&thread, nil, spinThenStopTheRelay, secondsBox)

ShutdownSignals.install()  // as the extension's main: the SIGTERM below shuts the relay down gracefully
let exitCode = await RelayApplication(settings: settings, logger: logger, extensionName: "profiler-probe").run()
exit(exitCode)
