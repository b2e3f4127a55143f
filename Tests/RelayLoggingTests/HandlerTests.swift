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

@Suite("Named time zones (TZif)")
struct NamedZoneTests {
    @Test("UTC and empty names are Go's UTC")
    func utc() throws {
        #expect(try #require(LogTimeZone.named("UTC")).offset(atUnixSeconds: 0) == (0, "UTC"))
        #expect(try #require(LogTimeZone.named("")).offset(atUnixSeconds: 0) == (0, "UTC"))
    }

    @Test("missing or escaping names are nil")
    func missing() {
        #expect(LogTimeZone.named("No/Such_Zone") == nil)
        #expect(LogTimeZone.named("../etc/passwd") == nil)
        #expect(LogTimeZone.named("Asia/Kolkata", zoneinfoDirectory: "/nonexistent") == nil)
    }

    @Test("Asia/Kolkata is IST +05:30", .enabled(if: fileExists(zoneinfo + "/Asia/Kolkata"), "tzdata is not installed (no /usr/share/zoneinfo/Asia/Kolkata)"))
    func kolkata() throws {
        let zone = try #require(LogTimeZone.named("Asia/Kolkata"))
        let u = Times.U
        let (offset, name) = zone.offset(atUnixSeconds: u.seconds)
        #expect(offset == 19800 && name == "IST")
        #expect(u.inZone(offset: offset, name: name).format("2006-01-02T15:04:05 MST Z07:00") == "2006-01-02T20:34:05 IST +05:30")
        // far future: past the last transition, the TZ footer decides
        #expect(zone.offset(atUnixSeconds: 4_102_444_800) == (19800, "IST"))
    }

    @Test(
        "Europe/Berlin switches CET/CEST at the EU dates",
        .enabled(if: fileExists(zoneinfo + "/Europe/Berlin"), "tzdata is not installed (no /usr/share/zoneinfo/Europe/Berlin)"))
    func berlin() throws {
        let zone = try #require(LogTimeZone.named("Europe/Berlin"))
        func at(_ i: Instant) -> (Int, String) { let r = zone.offset(atUnixSeconds: i.seconds); return (r.seconds, r.abbreviation) }
        #expect(at(Instant(2024, 1, 15, 12, 0, 0, nanos: 0)) == (3600, "CET"))
        #expect(at(Instant(2024, 7, 15, 12, 0, 0, nanos: 0)) == (7200, "CEST"))
        // 2024-03-31 01:00 UTC and 2024-10-27 01:00 UTC are the transitions
        #expect(at(Instant(2024, 3, 31, 0, 59, 59, nanos: 0)) == (3600, "CET"))
        #expect(at(Instant(2024, 3, 31, 1, 0, 0, nanos: 0)) == (7200, "CEST"))
        #expect(at(Instant(2024, 10, 27, 0, 59, 59, nanos: 0)) == (7200, "CEST"))
        #expect(at(Instant(2024, 10, 27, 1, 0, 0, nanos: 0)) == (3600, "CET"))
        // beyond any table: 2100 via the footer rule
        #expect(at(Instant(2100, 7, 1, 0, 0, 0, nanos: 0)) == (7200, "CEST"))
        #expect(at(Instant(2100, 12, 1, 0, 0, 0, nanos: 0)) == (3600, "CET"))
        // before standard time: local mean time
        #expect(at(Instant(1850, 1, 1, 0, 0, 0, nanos: 0)) == (3208, "LMT"))

        let h = Harness(LogConfiguration(timestampLayout: "2006-01-02 15:04:05 MST", timeZone: zone), at: Instant(2024, 7, 15, 12, 0, 0, nanos: 0))
        h.logger.info("m")
        #expect(h.lines == [#"time="2024-07-15 14:00:00 CEST" level=info msg=m"# + "\n"])
    }

    @Test("southern hemisphere DST via the footer (Australia/Sydney)", .enabled(if: fileExists(zoneinfo + "/Australia/Sydney"), "tzdata is not installed"))
    func sydney() throws {
        let zone = try #require(LogTimeZone.named("Australia/Sydney"))
        #expect(zone.offset(atUnixSeconds: Instant(2100, 1, 15, 0, 0, 0, nanos: 0).seconds) == (39600, "AEDT"))
        #expect(zone.offset(atUnixSeconds: Instant(2100, 7, 15, 0, 0, 0, nanos: 0).seconds) == (36000, "AEST"))
    }

    @Test("numeric abbreviations such as +04 (Asia/Dubai)", .enabled(if: fileExists(zoneinfo + "/Asia/Dubai"), "tzdata is not installed"))
    func dubai() throws {
        let zone = try #require(LogTimeZone.named("Asia/Dubai"))
        #expect(zone.offset(atUnixSeconds: Times.U.seconds) == (14400, "+04"))
    }

    @Test("TZ as Go's initLocal reads it")
    func goLocal() {
        #expect(LogTimeZone.goLocal(tz: "").offset(atUnixSeconds: 0) == (0, "UTC"))
        #expect(LogTimeZone.goLocal(tz: ":UTC").offset(atUnixSeconds: 0) == (0, "UTC"))
        #expect(LogTimeZone.goLocal(tz: "Not/AZone").offset(atUnixSeconds: 0) == (0, "UTC"))
        #expect(LogTimeZone.goLocal(tz: nil, localtimePath: "/nonexistent").offset(atUnixSeconds: 0) == (0, "UTC"))
        if fileExists(zoneinfo + "/Asia/Kolkata") {
            #expect(LogTimeZone.goLocal(tz: ":Asia/Kolkata").offset(atUnixSeconds: Times.U.seconds) == (19800, "IST"))
            #expect(LogTimeZone.goLocal(tz: zoneinfo + "/Asia/Kolkata").offset(atUnixSeconds: Times.U.seconds) == (19800, "IST"))
        }
    }

    @Test("POSIX TZ strings as Go's tzset reads them")
    func posix() throws {
        let us = try #require(PosixTZ("EST5EDT,M3.2.0,M11.1.0"))
        #expect(us.lookup(Instant(2030, 1, 1, 0, 0, 0, nanos: 0).seconds)! == (-18000, "EST"))
        #expect(us.lookup(Instant(2030, 7, 1, 0, 0, 0, nanos: 0).seconds)! == (-14400, "EDT"))
        let angle = try #require(PosixTZ("<+0330>-3:30"))
        #expect(angle.lookup(0)! == (12600, "+0330"))
        #expect(PosixTZ("AB1") == nil)
        #expect(PosixTZ("EST5EDT,M13.1.0,M11.1.0") == nil)
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
