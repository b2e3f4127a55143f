import GoCompatibility
import RelayAWS
import RelayCore
import RelayJSON
import RelayLogging
import RelayProfiler

/// A setting that could not be used as given: what was set, and what is used instead.
public struct SettingsWarning: Sendable, Equatable, CustomStringConvertible {
    public var variable: String
    public var value: String
    public var fallback: String
    /// Why the value was refused, when it is not plain unparsable.
    public var reason: String?
    /// A value that is used as set but deserves a word: said as it is, not in Go's
    /// "invalid value ... defaulting to" wording.
    public var notice: String?

    public init(variable: String, value: String, fallback: String, reason: String? = nil) {
        self.variable = variable
        self.value = value
        self.fallback = fallback
        self.reason = reason
    }

    /// A value used as set, with a plain statement of why it is risky.
    public static func notice(variable: String, value: String, _ text: String) -> SettingsWarning {
        var warning = SettingsWarning(variable: variable, value: value, fallback: value)
        warning.notice = text
        return warning
    }

    /// The Go extension's wording for the same situation, so existing log queries match.
    public var description: String {
        if let notice { return notice }
        let base = "invalid value for env var '\(variable)': '\(value)' defaulting to '\(fallback)'"
        return reason.map { "\(base) (\($0))" } ?? base
    }
}

/// Every setting of the extension, read once from the environment in `main` and passed
/// down as a value: nothing below `main` reads the environment.
public struct ExtensionSettings: Sendable {
    public var relay: RelayConfiguration
    public var log: LogConfiguration
    public var devMode: Bool
    public var flushOnInvoke: Bool
    /// PYROSCOPE_FLUSH_STRATEGY; PYROSCOPE_FLUSH_ON_INVOKE=true selects `invoke` when it is unset.
    public var flushStrategy: FlushStrategy
    public var selfProfiling: Bool
    /// `AWS_LAMBDA_FUNCTION_NAME`; nil outside Lambda.
    public var functionName: String?
    /// `AWS_LAMBDA_RUNTIME_API`, set by Lambda for the Extensions API.
    public var lambdaRuntimeAPI: String?
    /// `AWS_LAMBDA_INITIALIZATION_TYPE`: how Lambda runs the function.
    public var executionModel: ExecutionModel
    /// Said once at debug level (an unknown execution model, say).
    public var notes: [String] = []
    /// How often the `relay stats` line is logged (when something changed); zero: only at shutdown.
    public var statsInterval: Duration
    /// SwiftNIO's event-loop and blocking-I/O threads: one per vCPU Lambda gives the function
    /// (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE` / 1,769 MB, rounded up); nil outside Lambda (SwiftNIO's
    /// default, one per core). More threads than the CPU share can run cost the cold start:
    /// at 128 MB, one of each instead of two took 16 ms off the function's init (make bench-cost).
    public var threads: Int?
    /// CloudWatch EMF in the stats line; nil: off.
    public var emf: StatsReporter.EMF?
    /// Proxy and trust roots, for the upstream remote and AWS.
    public var network: NetworkConfiguration
    /// Upstream credentials kept in Secrets Manager or SSM, and how to fetch them.
    public var secrets: SecretSettings
    /// The settings the upstream credentials come from (named when the remote refuses them).
    public var credentialSettings: [String]
    /// Settings that could not be used as given; logged once logging is configured.
    public var warnings: [SettingsWarning] = []
    /// Settings so wrong that part of the relay cannot work (it still runs).
    public var errors: [RelayError] = []

    /// Every variable the extension reads; the README's table lists exactly these.
    public static let variables: [String] = [
        "PYROSCOPE_REMOTE_ADDRESS", "PYROSCOPE_AUTH_TOKEN", "PYROSCOPE_BASIC_AUTH_USER", "PYROSCOPE_BASIC_AUTH_PASSWORD",
        "PYROSCOPE_TENANT_ID", "PYROSCOPE_HTTP_HEADERS", "PYROSCOPE_TIMEOUT", "PYROSCOPE_NUM_WORKERS", "PYROSCOPE_DRAIN_CONCURRENCY",
        "PYROSCOPE_DEV_MODE", "PYROSCOPE_FLUSH_ON_INVOKE", "PYROSCOPE_FLUSH_STRATEGY", "PYROSCOPE_SELF_PROFILING",
        "PYROSCOPE_LISTEN_ADDRESS", "PYROSCOPE_MAX_BODY_BYTES", "PYROSCOPE_QUEUE_MAX_BYTES",
        "PYROSCOPE_SPOOL_DIR", "PYROSCOPE_SPOOL_MAX_BYTES",
        "PYROSCOPE_RETRY_MAX_ATTEMPTS", "PYROSCOPE_RETRY_INITIAL_BACKOFF", "PYROSCOPE_RETRY_MAX_BACKOFF", "PYROSCOPE_MAX_UPLOAD_AGE",
        "PYROSCOPE_LOG_LEVEL", "PYROSCOPE_LOG_FORMAT", "PYROSCOPE_LOG_TIMESTAMP_FORMAT", "PYROSCOPE_LOG_TIMESTAMP_DISABLE",
        "PYROSCOPE_LOG_TIMESTAMP_FIELD_NAME", "PYROSCOPE_LOG_LEVEL_FIELD_NAME", "PYROSCOPE_LOG_MSG_FIELD_NAME",
        "PYROSCOPE_LOG_LOGRUS_ERROR_FIELD_NAME", "PYROSCOPE_LOG_FUNC_FIELD_NAME", "PYROSCOPE_LOG_FILE_FIELD_NAME",
        "PYROSCOPE_LOG_REPORT_CALLER", "PYROSCOPE_STATS_INTERVAL", "PYROSCOPE_EMF_NAMESPACE",
        "TZ", "AWS_LAMBDA_RUNTIME_API", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_INITIALIZATION_TYPE",
        "PYROSCOPE_AUTH_TOKEN_SECRET_ARN", "PYROSCOPE_BASIC_AUTH_PASSWORD_SECRET_ARN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_SSM", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
        "NO_PROXY", "no_proxy", "PYROSCOPE_CA_FILE", "SSL_CERT_FILE",
        "PYROSCOPE_LAMBDA_LABELS", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_REGION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_LOG_STREAM_NAME",
    ]

    public init(environment: [String: String]) {
        var reader = EnvironmentReader(environment: environment)

        // Declaration order of the Go program: TIMEOUT warns before NUM_WORKERS.
        let timeout = reader.duration("PYROSCOPE_TIMEOUT", default: .seconds(10), mustBePositive: true)
        let workers = reader.integer("PYROSCOPE_NUM_WORKERS", default: 5, range: 1...256)
        let drainConcurrency = reader.integer("PYROSCOPE_DRAIN_CONCURRENCY", default: RelayConfiguration.defaultDrainConcurrency, range: 1...256)
        let maxBody = reader.integer("PYROSCOPE_MAX_BODY_BYTES", default: 8 << 20, range: 1...(1 << 30))
        let queueBytes = reader.integer("PYROSCOPE_QUEUE_MAX_BYTES", default: RelayConfiguration.defaultQueueMaxBytes, range: 1...(1 << 34))
        let spoolDirectory = reader.string("PYROSCOPE_SPOOL_DIR") ?? RelayConfiguration.defaultSpoolDirectory
        let spoolBytes = reader.integer("PYROSCOPE_SPOOL_MAX_BYTES", default: RelayConfiguration.defaultSpoolMaxBytes, range: 0...(1 << 40))

        let defaults = RetryPolicy()
        let retryPolicy = RetryPolicy(
            initialBackoff: reader.duration("PYROSCOPE_RETRY_INITIAL_BACKOFF", default: defaults.initialBackoff, mustBePositive: true),
            maxBackoff: reader.duration("PYROSCOPE_RETRY_MAX_BACKOFF", default: defaults.maxBackoff, mustBePositive: true),
            maxAttempts: reader.integer("PYROSCOPE_RETRY_MAX_ATTEMPTS", default: defaults.maxAttempts, range: 1...1000),
            maxAge: reader.duration("PYROSCOPE_MAX_UPLOAD_AGE", default: defaults.maxAge, mustBePositive: true))

        // The default is parsed only where it is used: the first parse of an address pays the
        // String machinery's one-time set-up, and a function always names its own remote.
        var remote: RemoteEndpoint?
        if let text = reader.string("PYROSCOPE_REMOTE_ADDRESS") {
            do { remote = try RemoteEndpoint(parsing: text) } catch {
                remote = nil
                reader.errors.append(error)
            }
        } else {
            remote = RelayConfiguration.defaultRemote
        }

        // Plain values or AWS secrets (ExtensionSettings+Network.swift).
        let authentication = Self.upstreamAuthentication(&reader)
        let credentials = authentication.credentials
        secrets = authentication.secrets
        credentialSettings = authentication.settingsInUse

        let extraHeaders = reader.headers("PYROSCOPE_HTTP_HEADERS")

        var listen = ListenAddress.loopback(port: 4040)
        if let text = reader.string("PYROSCOPE_LISTEN_ADDRESS") {
            do {
                listen = try ListenAddress.parse(text)
                if listen.contains(where: \.isPubliclyReachable) {
                    reader.warnings.append(
                        .notice(
                            variable: "PYROSCOPE_LISTEN_ADDRESS", value: text,
                            "Listening on \(text) as PYROSCOPE_LISTEN_ADDRESS says. Other hosts can reach this address, and the relay adds your Pyroscope credentials to every upload it receives, so anyone who can connect to it can send data to your Pyroscope account. Set PYROSCOPE_LISTEN_ADDRESS=localhost:4040 unless other hosts must send to this relay."
                        ))
                }
            } catch {
                reader.warnings.append(SettingsWarning(variable: "PYROSCOPE_LISTEN_ADDRESS", value: text, fallback: "localhost:4040", reason: error.message))
            }
        }

        relay = RelayConfiguration(
            remote: remote, credentials: credentials, tenantID: reader.headerValue("PYROSCOPE_TENANT_ID", what: "a tenant ID") ?? "",
            extraHeaders: extraHeaders, upstreamTimeout: timeout, workers: workers, drainConcurrency: drainConcurrency, maxBodyBytes: maxBody,
            queueMaxBytes: queueBytes, listenAddresses: listen, retryPolicy: retryPolicy,
            spoolDirectory: spoolBytes > 0 ? spoolDirectory : nil, spoolMaxBytes: spoolBytes)

        devMode = reader.bool("PYROSCOPE_DEV_MODE")
        flushOnInvoke = reader.bool("PYROSCOPE_FLUSH_ON_INVOKE")
        flushStrategy = flushOnInvoke ? .invoke : .background
        if let text = reader.string("PYROSCOPE_FLUSH_STRATEGY") {
            if let strategy = FlushStrategy(rawValue: text.lowercased()) {
                flushStrategy = strategy
                if flushOnInvoke, strategy != .invoke {
                    reader.warnings.append(
                        SettingsWarning(
                            variable: "PYROSCOPE_FLUSH_ON_INVOKE", value: "true", fallback: "false",
                            reason: "PYROSCOPE_FLUSH_STRATEGY=\(text) takes precedence"))
                }
            } else {
                reader.warnings.append(
                    SettingsWarning(
                        variable: "PYROSCOPE_FLUSH_STRATEGY", value: text, fallback: flushStrategy.rawValue,
                        reason: "use background, invoke or end"))
            }
        }
        let (model, note) = ExecutionModel.parse(environment["AWS_LAMBDA_INITIALIZATION_TYPE"])
        executionModel = model
        threads = Self.memoryMegabytes(reader).map { megabytes in (megabytes + 1768) / 1769 }
        if let note { notes.append(note) }
        if !model.deliversInvokeEvents, flushStrategy != .background {
            // Named after the setting the user wrote (FLUSH_ON_INVOKE selects `invoke` too).
            let variable = reader.string("PYROSCOPE_FLUSH_STRATEGY") != nil ? "PYROSCOPE_FLUSH_STRATEGY" : "PYROSCOPE_FLUSH_ON_INVOKE"
            reader.warnings.append(
                SettingsWarning(
                    variable: variable, value: environment[variable] ?? "", fallback: "background",
                    reason: "Lambda Managed Instances never freeze the environment and send no INVOKE events to extensions; uploads go out continuously"))
            flushStrategy = .background
        }
        // Where Lambda freezes the environment, an upload on the wire at the freeze finds its
        // connection broken (or its deadline passed) at the thaw, although the remote may have
        // stored it: it is not sent again, so that it is never stored twice. Lambda Managed
        // Instances never freeze; outside Lambda (dev mode) nothing freezes either.
        relay.resendsUnknownFate = devMode || !model.deliversInvokeEvents
        selfProfiling = reader.bool("PYROSCOPE_SELF_PROFILING")
        lambdaRuntimeAPI = reader.string("AWS_LAMBDA_RUNTIME_API")
        network = Self.networkConfiguration(&reader, lambdaRuntimeAPI: lambdaRuntimeAPI)
        relay.network = network
        relay.credentialSettings = credentialSettings
        relay.labels = Self.lambdaLabels(&reader)
        statsInterval = reader.duration("PYROSCOPE_STATS_INTERVAL", default: .seconds(60), mustBePositive: false)
        if statsInterval < .zero {
            reader.warnings.append(
                SettingsWarning(
                    variable: "PYROSCOPE_STATS_INTERVAL", value: environment["PYROSCOPE_STATS_INTERVAL"] ?? "",
                    fallback: "1m0s", reason: "use 0 to turn the periodic line off"))
            statsInterval = .seconds(60)
        }
        self.functionName = reader.string("AWS_LAMBDA_FUNCTION_NAME")
        let functionName = self.functionName ?? "local"

        var log = LogConfiguration()
        if let text = reader.string("PYROSCOPE_LOG_LEVEL") {
            if let level = LogrusLevel(parsing: text) {
                log.level = level
            } else {
                reader.warnings.append(SettingsWarning(variable: "PYROSCOPE_LOG_LEVEL", value: text, fallback: "info"))
            }
        }
        if let text = reader.string("PYROSCOPE_LOG_FORMAT") {
            // As Go: exactly "json" selects JSON, anything else text; we also say so.
            log.format = text == "json" ? .json : .text
            if text != "json", text != "text" {
                reader.warnings.append(SettingsWarning(variable: "PYROSCOPE_LOG_FORMAT", value: text, fallback: "text", reason: "use text or json"))
            }
        }
        log.timestampLayout = reader.string("PYROSCOPE_LOG_TIMESTAMP_FORMAT") ?? log.timestampLayout
        log.disableTimestamp = reader.bool("PYROSCOPE_LOG_TIMESTAMP_DISABLE")
        log.reportCaller = reader.bool("PYROSCOPE_LOG_REPORT_CALLER")
        log.fieldNames.time = reader.string("PYROSCOPE_LOG_TIMESTAMP_FIELD_NAME") ?? log.fieldNames.time
        log.fieldNames.level = reader.string("PYROSCOPE_LOG_LEVEL_FIELD_NAME") ?? log.fieldNames.level
        log.fieldNames.message = reader.string("PYROSCOPE_LOG_MSG_FIELD_NAME") ?? log.fieldNames.message
        log.fieldNames.logrusError = reader.string("PYROSCOPE_LOG_LOGRUS_ERROR_FIELD_NAME") ?? log.fieldNames.logrusError
        log.fieldNames.function = reader.string("PYROSCOPE_LOG_FUNC_FIELD_NAME") ?? log.fieldNames.function
        log.fieldNames.file = reader.string("PYROSCOPE_LOG_FILE_FIELD_NAME") ?? log.fieldNames.file
        log.timeZone = Self.timeZone(tz: environment["TZ"], warnings: &reader.warnings)
        if let namespace = reader.string("PYROSCOPE_EMF_NAMESPACE") {
            if log.format == .json {
                emf = StatsReporter.EMF(namespace: namespace, functionName: functionName)
            } else {
                reader.warnings.append(
                    SettingsWarning(
                        variable: "PYROSCOPE_EMF_NAMESPACE", value: namespace, fallback: "", reason: "EMF needs PYROSCOPE_LOG_FORMAT=json"))
            }
        }
        var secretValues = relay.credentials.secrets + (remote?.userInfo.map { [$0.password] } ?? [])
        secretValues += extraHeaders.filter { ["authorization", "x-api-key", "cookie"].contains($0.name.lowercased()) }.map(\.value)
        secretValues += network.proxy.secrets
        if case .environment(let keys) = secrets.awsCredentials { secretValues += keys.secrets }
        if case .container(_, let token?) = secrets.awsCredentials { secretValues.append(token) }
        // Fetched secrets are added to the same set once known (RelayApplication).
        log.redactions = RedactionSet(secretValues)
        self.log = log

        warnings = reader.warnings
        errors = reader.errors
    }

    /// Go's `Local` zone from `TZ` (unset: /etc/localtime; empty or `UTC`: UTC; a zone
    /// that cannot be loaded: UTC, with a warning).
    static func timeZone(tz: String?, warnings: inout [SettingsWarning]) -> GoTimeZone {
        let (zone, problem) = GoTimeZone.goLocal(tz: tz)
        if let problem, let tz { warnings.append(SettingsWarning(variable: "TZ", value: tz, fallback: "UTC", reason: problem)) }
        return zone
    }
}

/// Reads variables with the Go program's rules: unset and empty mean "default".
struct EnvironmentReader {
    let environment: [String: String]
    var warnings: [SettingsWarning] = []
    var errors: [RelayError] = []

    /// The value without surrounding white space (a token pasted or read from a file
    /// often ends in a newline); nil when that leaves nothing.
    func string(_ name: String) -> String? {
        guard let value = environment[name]?.trimmingGoSpace(), !value.isEmpty else { return nil }
        return value
    }

    /// RFC 9110 field values: no control characters but HTAB (async-http-client refuses
    /// the rest before sending).
    static func isHeaderValue(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 == UInt8(ascii: "\t") || ($0 >= 0x20 && $0 != 0x7F) }
    }

    /// A JSON object whose values are all strings (of a repeated key the first counts, as
    /// with `JSONDecoder` before).
    static func stringObject(_ text: String) throws(JSONError) -> [String: String] {
        let json = try JSONValue.parse(text)
        guard let members = json.dictionary else { throw JSONError(.typeMismatch, "expected an object, found \(json.typeName)") }
        var strings: [String: String] = [:]
        for (key, _) in members { strings[key] = try json.required(key, \.string) }
        return strings
    }

    /// A setting sent as a header value: nil, with an error naming the variable and never
    /// the value (it may be a secret), when it cannot be one.
    mutating func headerValue(_ name: String, what: String) -> String? {
        guard let value = string(name) else { return nil }
        guard Self.isHeaderValue(value) else {
            errors.append(
                RelayError(
                    .invalidHeaders,
                    "\(name) has a control character or line break inside it, so it cannot be sent as \(what) and is not used; set it to the value alone"
                ))
            return nil
        }
        return value
    }

    mutating func bool(_ name: String) -> Bool {
        guard let text = string(name) else { return false }
        if let value = GoParsing.parseBool(text) { return value }
        warnings.append(SettingsWarning(variable: name, value: text, fallback: "false"))
        return false
    }

    mutating func integer(_ name: String, default fallback: Int, range: ClosedRange<Int>) -> Int {
        guard let text = string(name) else { return fallback }
        guard let value = GoParsing.parseInt(text) else {
            warnings.append(SettingsWarning(variable: name, value: text, fallback: "\(fallback)"))
            return fallback
        }
        guard range.contains(value) else {
            warnings.append(
                SettingsWarning(
                    variable: name, value: text, fallback: "\(fallback)",
                    reason: "must be from \(range.lowerBound) to \(range.upperBound)"))
            return fallback
        }
        return value
    }

    mutating func duration(_ name: String, default fallback: Duration, mustBePositive: Bool) -> Duration {
        guard let text = string(name) else { return fallback }
        guard let nanos = GoParsing.parseDuration(text) else {
            warnings.append(SettingsWarning(variable: name, value: text, fallback: GoParsing.formatDuration(fallback)))
            return fallback
        }
        if mustBePositive, nanos <= 0 {
            warnings.append(SettingsWarning(variable: name, value: text, fallback: GoParsing.formatDuration(fallback), reason: "must be positive"))
            return fallback
        }
        return .nanoseconds(nanos)
    }

    /// A JSON object of strings. Unusable JSON is an error (the relay runs without them),
    /// as is a name or value that cannot be sent in an HTTP header.
    mutating func headers(_ name: String) -> [(name: String, value: String)] {
        guard let text = string(name) else { return [] }
        let decoded: [String: String]
        do {
            decoded = try Self.stringObject(text)
        } catch {
            errors.append(
                RelayError(
                    .invalidHeaders,
                    "\(name) is not a JSON object of strings, so no extra headers are sent; write it like {\"X-Header\":\"value\"}",
                    underlying: error))
            return []
        }
        var headers: [(name: String, value: String)] = []
        for (key, rawValue) in decoded.sorted(by: { $0.key < $1.key }) {
            let value = rawValue.trimmingGoSpace()
            let validName =
                !key.isEmpty
                && key.utf8.allSatisfy { byte in
                    (0x21...0x7E).contains(byte) && !"()<>@,;:\\\"/[]?={}".utf8.contains(byte)
                }
            let validValue = Self.isHeaderValue(value)
            guard validName, validValue else {
                errors.append(
                    RelayError(
                        .invalidHeaders,
                        "\(name) entry '\(key)' is not a valid HTTP header \(validName ? "value" : "name"), so it is not sent"))
                continue
            }
            headers.append((key, value))
        }
        let bytes = headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }
        if bytes > Self.maxExtraHeaderBytes {
            errors.append(
                RelayError(
                    .invalidHeaders,
                    "\(name) adds \(bytes) bytes of headers to every upload, over the \(Self.maxExtraHeaderBytes) the relay sends, so none are sent"
                ))
            return []
        }
        return headers
    }

    /// Extra headers in all: with the ingress bounds on what clients send, every request
    /// head the relay sends stays far below the 64 KiB that `UpstreamHeadGuard` guards.
    static let maxExtraHeaderBytes = 8 << 10
}

extension ExtensionSettings {
    /// The self-profiler's series: tagged with the function's name in Lambda, so each
    /// function's extension has a series of its own next to the function's profiles.
    public var selfProfilerConfiguration: SelfProfilerConfiguration {
        var configuration = SelfProfilerConfiguration()
        if let functionName { configuration.tags = [(name: "function_name", value: functionName)] }
        return configuration
    }
}
