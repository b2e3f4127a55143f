import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A swift-log handler that writes what Go's logrus v1.9.3 writes for the same entry.
///
/// Mapping from a swift-log call to a logrus entry:
/// - message: the swift-log message text unchanged (no trimming);
/// - fields: handler metadata, then the metadata provider's, then the call's
///   metadata (later wins), then the call's `error:` under `error`, as logrus'
///   `WithError` would add it;
/// - level: `LogrusLevel(level).name` (`.notice` prints `info`, `.critical` prints
///   `fatal`); filtering is swift-log's, through `logLevel`;
/// - caller (`reportCaller`): `func` is swift-log's `function`, `file` is `file:line`.
///
/// `logrus_error`: logrus records there the fields it refused (`can not add field
/// "key"`). Go refuses func values; swift-log cannot carry those, so this project
/// uses the key for what it cannot encode instead: a value containing a NaN or ±Inf
/// (which `encoding/json` rejects) is dropped in both formats and reported as
/// `can not add field "key"` (key quoted like Go `%q`), several joined by `, ` in
/// byte order of the keys. Dropping in text too keeps the two formats carrying the
/// same fields.
public struct LogrusLogHandler: LogHandler {
    public typealias Clock = @Sendable () -> (seconds: Int64, nanoseconds: Int32)

    public let label: String
    public let configuration: LogConfiguration
    public var metadata: Logger.Metadata = [:] {
        // Converted once when set rather than on every line.
        didSet { metadataFields = metadata.map { (key: $0.key, value: LogFieldValue($0.value)) } }
    }
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level

    private var metadataFields: [(key: String, value: LogFieldValue)] = []
    let formatter: LogrusFormatter
    let sink: LogSink
    let clock: Clock

    /// - Parameters:
    ///   - clock: wall clock as Unix seconds + nanoseconds; tests pass a fixed one.
    public init(
        label: String,
        configuration: LogConfiguration,
        sink: LogSink = .standardError,
        metadataProvider: Logger.MetadataProvider? = nil,
        clock: @escaping Clock = LogrusLogHandler.realtimeClock
    ) {
        self.label = label
        self.configuration = configuration
        self.sink = sink
        self.clock = clock
        self.metadataProvider = metadataProvider
        self.logLevel = configuration.level.swiftLogLevel
        self.formatter = LogrusFormatter(configuration: configuration)
    }

    /// `clock_gettime(CLOCK_REALTIME)`, what Go's `time.Now()` prints.
    public static let realtimeClock: Clock = {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (Int64(ts.tv_sec), Int32(ts.tv_nsec))
    }

    /// Drops the fields whose winning value cannot be encoded and describes them the
    /// way logrus describes refused fields. Shadowed pairs are dropped silently.
    static func dropUnencodable(
        _ fields: [(key: String, value: LogFieldValue)]
    ) -> ([(key: String, value: LogFieldValue)], String) {
        var kept: [(key: String, value: LogFieldValue)] = []
        var refused: [String] = []
        for (i, field) in fields.enumerated() {
            if fields[(i + 1)...].contains(where: { keyEqual($0.key, field.key) }) { continue }
            if field.value.isJSONEncodable {
                kept.append(field)
            } else {
                refused.append(field.key)
            }
        }
        let text = refused.sorted(by: keyLess).map { "can not add field \(goQuote($0))" }.joined(separator: ", ")
        return (kept, text)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let now = clock()
        // All pairs in precedence order; the formatter's stable sort keeps the last
        // pair of a repeated key, which is the "later wins" merge without hashing.
        let provided = metadataProvider?.get() ?? [:]
        let call = event.metadata ?? [:]
        var fields: [(key: String, value: LogFieldValue)] = []
        fields.reserveCapacity(metadataFields.count + provided.count + call.count + 1)
        fields.append(contentsOf: metadataFields)
        for (key, value) in provided { fields.append((key, LogFieldValue(value))) }
        for (key, value) in call { fields.append((key, LogFieldValue(value))) }
        if let error = event.error {
            fields.append(("error", .string(String(describing: error))))
        }

        var errorText = ""
        if !fields.allSatisfy({ $0.value.isJSONEncodable }) {
            (fields, errorText) = LogrusLogHandler.dropUnencodable(fields)
        }

        let message = event.message.description
        let entry = LogEntry(
            seconds: now.seconds,
            nanoseconds: now.nanoseconds,
            level: LogrusLevel(event.level),
            message: message,
            fields: fields,
            errorText: errorText,
            caller: configuration.reportCaller
                ? LogCaller(function: event.function, file: event.file, line: event.line) : nil
        )
        var line: [UInt8] = []
        line.reserveCapacity(96 + message.utf8.count + 40 * fields.count)
        formatter.append(entry, to: &line)
        sink.write(line)
    }
}
