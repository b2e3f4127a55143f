import Logging
import RelayLogging
import Testing

@Suite("Levels (§2)")
struct LevelTests {
    @Test(
        "ParseLevel accepts every name in any case",
        arguments: [
            ("panic", LogrusLevel.panic), ("FATAL", .fatal), ("Error", .error), ("warn", .warning), ("WARNING", .warning),
            ("wArN", .warning), ("info", .info), ("INFO", .info), ("debug", .debug), ("TrAcE", .trace),
            ("İNFO", .info),  // U+0130 lowercases to `i` in Go
        ])
    func parses(input: String, level: LogrusLevel) {
        #expect(LogrusLevel(parsing: input) == level)
    }

    @Test(
        "ParseLevel rejects everything else, without trimming",
        arguments: [
            " info", "info ", "", "err", "information", "warnings", "ınfo", "\u{212A}", "info\n", "ＩＮＦＯ",
        ])
    func rejects(input: String) {
        #expect(LogrusLevel(parsing: input) == nil)
    }

    @Test("names: warning never warn")
    func names() {
        #expect(LogrusLevel.allCases.map(\.name) == ["panic", "fatal", "error", "warning", "info", "debug", "trace"])
        #expect(LogrusLevel.allCases.map(\.rawValue) == Array(0...6))
        #expect(LogrusLevel.error < LogrusLevel.info)
    }

    @Test("swift-log thresholds")
    func thresholds() {
        #expect(LogrusLevel.allCases.map(\.swiftLogLevel) == [.critical, .critical, .error, .warning, .info, .debug, .trace])
    }

    @Test("printing a swift-log level")
    func printing() {
        let mapped = Logger.Level.allCases.map { LogrusLevel($0).name }
        #expect(mapped == ["trace", "debug", "info", "info", "warning", "error", "fatal"])
    }
}
