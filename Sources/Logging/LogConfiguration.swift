import GoCompatibility

/// logrus' two formatters (no TTY, so never colored).
public enum LogFormat: Sendable, Equatable {
    case text
    case json
}

/// logrus `FieldMap`: the names the reserved keys are written under. The clash rule
/// (`prefixFieldClashes`) is checked against these resolved names, not the defaults.
public struct LogFieldNames: Sendable, Equatable {
    public var time: String
    public var level: String
    public var message: String
    public var logrusError: String
    public var function: String
    public var file: String

    public init(
        time: String = "time",
        level: String = "level",
        message: String = "msg",
        logrusError: String = "logrus_error",
        function: String = "func",
        file: String = "file"
    ) {
        self.time = time
        self.level = level
        self.message = message
        self.logrusError = logrusError
        self.function = function
        self.file = file
    }
}

/// Everything that decides the bytes of a line. Every field has the default the Go
/// program ends up with when no environment variable is set.
public struct LogConfiguration: Sendable {
    public var format: LogFormat
    public var level: LogrusLevel
    /// A Go layout (`Time.Format`); never validated, any string is a layout. Empty
    /// means RFC3339, as in logrus.
    public var timestampLayout: String
    public var disableTimestamp: Bool
    public var fieldNames: LogFieldNames
    /// logrus `ReportCaller`: adds `func` and `file` (swift-log's function and
    /// `file:line`). The Go program leaves it off.
    public var reportCaller: Bool
    public var timeZone: GoTimeZone
    /// Secrets (tokens, passwords, Authorization values) replaced by `[REDACTED]`
    /// wherever they occur in a message, key or value. Empty strings are ignored
    /// (they would match everywhere). Shared: values added later (secrets fetched after
    /// start) are masked by every handler made from this configuration.
    public var redactions: RedactionSet

    public init(
        format: LogFormat = .text,
        level: LogrusLevel = .info,
        timestampLayout: String = GoTimeLayout.rfc3339,
        disableTimestamp: Bool = false,
        fieldNames: LogFieldNames = LogFieldNames(),
        reportCaller: Bool = false,
        timeZone: GoTimeZone = .utc,
        redactions: RedactionSet = []
    ) {
        self.format = format
        self.level = level
        self.timestampLayout = timestampLayout
        self.disableTimestamp = disableTimestamp
        self.fieldNames = fieldNames
        self.reportCaller = reportCaller
        self.timeZone = timeZone
        self.redactions = redactions
    }
}
