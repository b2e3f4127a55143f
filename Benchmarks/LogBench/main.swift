import GoCompatibility
import Logging
import RelayLogging

// Formats N realistic lines (message + svc, comp, path, status, bytes) through
// swift-log into a discarding sink, once per format, and reports lines per second.
// Timestamps are in the zone `TZ` selects, as in the extension (unset: /etc/localtime).
//
//     swift build -c release --product LogBench && TZ=Europe/Berlin .build/release/LogBench [N]
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

let arguments = CommandLine.arguments
let count = arguments.count > 1 ? Int(arguments[1]) ?? 200_000 : 200_000
let zone = GoTimeZone.goLocal(tz: getenv("TZ").map { String(cString: $0) }).zone

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func run(_ format: LogFormat) -> (linesPerSecond: Double, bytes: Int) {
    let sink = LogSink.discarding()
    var logger = Logger(label: "bench") { label in
        LogrusLogHandler(label: label, configuration: LogConfiguration(format: format, level: .info, timeZone: zone), sink: sink)
    }
    logger[metadataKey: "svc"] = "pyroscope-lambda-ext-main"
    logger[metadataKey: "comp"] = "controller"
    // Warm up allocator and caches.
    for i in 0..<min(count, 10_000) {
        logger.info("Relayed profile upload", metadata: ["path": "/ingest", "status": .stringConvertible(200), "bytes": .stringConvertible(i)])
    }
    let before = sink.discardedBytes
    let start = monotonicSeconds()
    for i in 0..<count {
        logger.info("Relayed profile upload", metadata: ["path": "/ingest", "status": .stringConvertible(200), "bytes": .stringConvertible(i)])
    }
    let elapsed = monotonicSeconds() - start
    return (Double(count) / elapsed, sink.discardedBytes - before)
}

let text = run(.text)
let json = run(.json)
print("| format | lines/s |")
print("|---|---|")
print("| text | \(Int(text.linesPerSecond)) |")
print("| json | \(Int(json.linesPerSecond)) |")
print("{\"log_text_lines_per_second\":\(Int(text.linesPerSecond)),\"log_json_lines_per_second\":\(Int(json.linesPerSecond))}")
