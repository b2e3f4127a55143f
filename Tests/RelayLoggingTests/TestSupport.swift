import Logging

@testable import GoCompatibility
@testable import RelayLogging

/// An instant plus the zone it is printed in, as in the spec's vectors.
struct Instant: Sendable, CustomStringConvertible {
    var seconds: Int64
    var nanoseconds: Int32
    var offset: Int
    var zoneName: String

    /// A wall-clock time in a zone with the given offset.
    init(_ y: Int64, _ mo: Int, _ d: Int, _ h: Int, _ mi: Int, _ s: Int, nanos: Int32, offset: Int = 0, zone: String = "UTC") {
        seconds = daysFromCivil(year: y, month: mo, day: d) * 86400 + Int64(h * 3600 + mi * 60 + s) - Int64(offset)
        nanoseconds = nanos
        self.offset = offset
        zoneName = zone
    }

    init(seconds: Int64, nanoseconds: Int32, offset: Int, zoneName: String) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
        self.offset = offset
        self.zoneName = zoneName
    }

    func format(_ layout: String) -> String {
        GoTimeLayout(layout).format(unixSeconds: seconds, nanoseconds: nanoseconds, zone: offset, zoneName: zoneName)
    }

    /// The same instant printed in another zone.
    func inZone(offset: Int, name: String) -> Instant {
        Instant(seconds: seconds, nanoseconds: nanoseconds, offset: offset, zoneName: name)
    }

    var description: String { "\(seconds).\(nanoseconds)@\(offset)\(zoneName)" }
}

/// The spec's times: U, I (same wall clock at +05:30 "IST"), B, C (−09:30, unnamed).
enum Times {
    static let U = Instant(2006, 1, 2, 15, 4, 5, nanos: 123_456_789)
    static let I = Instant(2006, 1, 2, 15, 4, 5, nanos: 123_456_789, offset: 19800, zone: "IST")
    static let B = Instant(2023, 3, 9, 0, 7, 8, nanos: 500_000)
    static let C = Instant(2023, 11, 25, 12, 30, 9, nanos: 100_000_000, offset: -34200, zone: "")
}

/// A handler wired to a memory sink and a clock fixed at U, driven through swift-log.
struct Harness {
    let sink = LogSink.memory()
    let logger: Logger

    init(_ configuration: LogConfiguration = LogConfiguration(), at instant: Instant = Times.U, metadata: Logger.Metadata = [:]) {
        let sink = self.sink
        let clock: LogrusLogHandler.Clock = { (instant.seconds, instant.nanoseconds) }
        var logger = Logger(label: "test") { label in
            LogrusLogHandler(label: label, configuration: configuration, sink: sink, clock: clock)
        }
        for (k, v) in metadata { logger[metadataKey: k] = v }
        self.logger = logger
    }

    var lines: [String] { sink.lines }
}

func format(_ configuration: LogConfiguration, _ entry: LogEntry) -> String {
    LogrusFormatter(configuration: configuration).format(entry)
}

/// An entry at U, as the spec's examples use.
func entryAtU(_ level: LogrusLevel, _ message: String, _ fields: [(key: String, value: LogFieldValue)] = [], errorText: String = "", caller: LogCaller? = nil)
    -> LogEntry
{
    LogEntry(seconds: Times.U.seconds, nanoseconds: Times.U.nanoseconds, level: level, message: message, fields: fields, errorText: errorText, caller: caller)
}
