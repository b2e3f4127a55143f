import Logging
import Testing

@testable import RelayLogging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

private func fileExists(_ path: String) -> Bool {
    access(path, R_OK) == 0
}

private let zoneinfo = "/usr/share/zoneinfo"

@Suite("LogrusLogHandler through swift-log")
struct HandlerTests {
    @Test("logLevel comes from the configured logrus level; swift-log filters")
    func filtering() {
        let h = Harness(LogConfiguration(level: .warning, disableTimestamp: true))
        #expect(h.logger.logLevel == .warning)
        h.logger.info("dropped")
        h.logger.notice("dropped")
        h.logger.warning("kept")
        h.logger.critical("fatal")
        #expect(h.lines == ["level=warning msg=kept\n", "level=fatal msg=fatal\n"])
    }

    @Test("notice prints as info")
    func notice() {
        let h = Harness(LogConfiguration(disableTimestamp: true))
        h.logger.notice("n")
        #expect(h.lines == ["level=info msg=n\n"])
    }

    @Test("metadata precedence: handler, then provider, then the call")
    func precedence() {
        let sink = LogSink.memory()
        let provider = Logger.MetadataProvider { ["a": "provider", "b": "provider"] }
        var logger = Logger(label: "t") { label in
            LogrusLogHandler(
                label: label, configuration: LogConfiguration(format: .json, disableTimestamp: true),
                sink: sink, metadataProvider: provider, clock: { (0, 0) })
        }
        logger[metadataKey: "a"] = "handler"
        logger[metadataKey: "c"] = "handler"
        logger.info("m", metadata: ["b": "call"])
        #expect(sink.lines == [#"{"a":"provider","b":"call","c":"handler","level":"info","msg":"m"}"# + "\n"])
    }

    @Test("a NaN shadowed by a later source is not reported; a winning NaN is")
    func shadowedNaN() {
        let h = Harness(LogConfiguration(format: .json, disableTimestamp: true), metadata: ["x": .stringConvertible(Double.nan), "y": "ok"])
        h.logger.info("m", metadata: ["x": "fine"])
        h.logger.info("m", metadata: ["y": .stringConvertible(-Double.infinity)])
        #expect(
            h.lines == [
                #"{"level":"info","msg":"m","x":"fine","y":"ok"}"# + "\n",
                #"{"level":"info","logrus_error":"can not add field \"x\", can not add field \"y\"","msg":"m"}"# + "\n",
            ])
    }

    @Test("the formatter keeps the last of repeated keys")
    func repeatedKeys() {
        let config = LogConfiguration(disableTimestamp: true)
        #expect(format(config, entryAtU(.info, "m", [("a", .int(1)), ("b", .int(2)), ("a", .int(3))])) == "level=info msg=m a=3 b=2\n")
    }

    @Test("reportCaller adds func and file:line; F/Fi clashes are copied, not moved")
    func caller() {
        let json = Harness(LogConfiguration(format: .json, disableTimestamp: true, reportCaller: true))
        json.logger.info("m", metadata: ["func": "user"], file: "Sources/x.swift", function: "run()", line: 42)
        #expect(json.lines == [#"{"fields.func":"user","file":"Sources/x.swift:42","func":"run()","level":"info","msg":"m"}"# + "\n"])

        let text = Harness(LogConfiguration(disableTimestamp: true, reportCaller: true))
        text.logger.info("m", metadata: ["func": "user"], file: "Sources/x.swift", function: "run()", line: 42)
        #expect(text.lines == [#"level=info msg=m func="run()" file="Sources/x.swift:42" fields.func=user func="run()""# + "\n"])
    }

    @Test("caller keys under configured names, placed per §4.1")
    func callerRenamed() {
        let config = LogConfiguration(
            disableTimestamp: true, fieldNames: LogFieldNames(function: "fn", file: "src"), reportCaller: true)
        let entry = entryAtU(.error, "m", [("a", .int(1))], errorText: "e", caller: LogCaller(function: "f", file: "x.swift", line: 3))
        #expect(format(config, entry) == "level=error msg=m logrus_error=e fn=f src=\"x.swift:3\" a=1\n")
    }

    @Test("without reportCaller, func and file are ordinary fields")
    func noCaller() {
        let h = Harness(LogConfiguration(format: .json, disableTimestamp: true))
        h.logger.info("m", metadata: ["func": "user", "file": "f"])
        #expect(h.lines == [#"{"file":"f","func":"user","level":"info","msg":"m"}"# + "\n"])
    }

    @Test("the clash rule uses resolved names: a renamed level name clashes with a user field")
    func renamedClash() {
        let config = LogConfiguration(disableTimestamp: true, fieldNames: LogFieldNames(level: "comp"))
        let h = Harness(config)
        h.logger.info("m", metadata: ["comp": "controller", "level": "x"])
        #expect(h.lines == ["comp=info msg=m fields.comp=controller level=x\n"])
    }

    @Test("timestamps print in the configured zone")
    func fixedZone() {
        let config = LogConfiguration(timestampLayout: "2006-01-02T15:04:05.000 MST -07:00", timeZone: .fixed(offsetSeconds: 19800, name: "IST"))
        let h = Harness(config)
        h.logger.info("m")
        #expect(h.lines == [#"time="2006-01-02T20:34:05.123 IST +05:30" level=info msg=m"# + "\n"])
    }

    @Test("an empty layout means RFC3339")
    func emptyLayout() {
        let h = Harness(LogConfiguration(timestampLayout: ""))
        h.logger.info("m")
        #expect(h.lines == [#"time="2006-01-02T15:04:05Z" level=info msg=m"# + "\n"])
    }

    @Test("8 tasks × 1,000 lines: 8,000 whole lines, none interleaved")
    func concurrency() async {
        let sink = LogSink.memory()
        let logger = Logger(label: "t") { label in
            LogrusLogHandler(label: label, configuration: LogConfiguration(format: .json), sink: sink, clock: { (0, 0) })
        }
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for i in 0..<1000 {
                        logger.info("line", metadata: ["task": .stringConvertible(task), "i": .stringConvertible(i)])
                    }
                }
            }
        }
        let lines = sink.lines
        #expect(lines.count == 8000)
        var seen = Set<String>()
        for line in lines {
            #expect(line.hasPrefix(#"{"i":"#) && line.hasSuffix("}\n"))
            #expect(line.utf8.filter { $0 == UInt8(ascii: "\n") }.count == 1)
            seen.insert(line)
        }
        // With a fixed clock, each (task, i) pair gives exactly one distinct line.
        #expect(seen.count == 8000)
        #expect(seen.contains(#"{"i":999,"level":"info","msg":"line","task":7,"time":"1970-01-01T00:00:00Z"}"# + "\n"))
    }

    @Test("the stderr sink writes whole lines to a descriptor")
    func descriptorSink() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let sink = LogSink.fileDescriptor(fds[1])
        let logger = Logger(label: "t") { label in
            LogrusLogHandler(label: label, configuration: LogConfiguration(disableTimestamp: true), sink: sink)
        }
        logger.info("hello", metadata: ["k": "v"])
        close(fds[1])
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
        #expect(String(decoding: buffer[0..<max(n, 0)], as: UTF8.self) == "level=info msg=hello k=v\n")
    }
}

@Suite("Redaction")
struct RedactionTests {
    static let secret = "s3cr3t-T0ken"

    static func log(_ format: LogFormat) -> [String] {
        let h = Harness(LogConfiguration(format: format, redactions: ["", secret, "Bearer " + secret, "hunter2"]))
        h.logger.info(
            "auth with Bearer \(secret) failed",
            metadata: [
                "Authorization": "Bearer \(secret)",
                "key-\(secret)": "v",
                "nested": ["x": "\(secret)!", "list": ["a\(secret)b"]],
                "pw": .stringConvertible(12_345),
            ])
        return h.lines
    }

    @Test("a configured secret never appears, in either format", arguments: [LogFormat.text, .json])
    func neverAppears(format: LogFormat) {
        let lines = Self.log(format)
        #expect(lines.count == 1)
        #expect(!lines[0].contains(Self.secret))
        #expect(lines[0].contains("[REDACTED]"))
    }

    @Test("the longest secret is masked whole; exact JSON")
    func exact() {
        #expect(
            Self.log(.json) == [
                #"{"Authorization":"[REDACTED]","key-[REDACTED]":"v","level":"info","msg":"auth with [REDACTED] failed","nested":{"list":["a[REDACTED]b"],"x":"[REDACTED]!"},"pw":12345,"time":"2006-01-02T15:04:05Z"}"#
                    + "\n"
            ])
    }

    @Test("numbers that contain a secret become redacted strings; keys in logrus_error too")
    func numbersAndErrors() {
        let h = Harness(LogConfiguration(format: .text, disableTimestamp: true, redactions: ["234"]))
        h.logger.info("m", metadata: ["n": .stringConvertible(12_345), "k234": .stringConvertible(Double.nan)])
        #expect(h.lines == [#"level=info msg=m logrus_error="can not add field \"k[REDACTED]\"" n="1[REDACTED]5""# + "\n"])
    }
}
@Suite("Redaction of values learned after start")
struct LearnedRedactionTests {
    @Test("a secret added to the shared set is masked by loggers made before", arguments: [LogFormat.text, .json])
    func addedLater(format: LogFormat) {
        let configuration = LogConfiguration(format: format)
        let h = Harness(configuration)
        h.logger.info("fetched pw-learned-1 and pw-learned-2")
        configuration.redactions.add(["pw-learned-1", "", "pw-learned-2"])
        h.logger.info("fetched pw-learned-1", metadata: ["value": "pw-learned-2"])
        #expect(h.lines.count == 2)
        #expect(h.lines[0].contains("pw-learned-1"), "not masked before it was known")
        #expect(!h.lines[1].contains("pw-learned") && h.lines[1].contains("[REDACTED]"))
        #expect(configuration.redactions.contains("pw-learned-2") && !configuration.redactions.contains(""))
    }
}
