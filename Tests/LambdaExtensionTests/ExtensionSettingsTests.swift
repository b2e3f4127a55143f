import GoCompatibility
import RelayCore
import RelayLogging
import Testing

@testable import LambdaExtension

/// Vectors from shared/reference/log-and-config-formats.md §1, §6, §7.
@Suite struct GoParsingTests {
    @Test(
        arguments: [
            ("10s", 10_000_000_000), ("0", 0), ("+0", 0), ("-0", 0), ("0s", 0), ("0.0s", 0),
            ("1.5h", 5_400_000_000_000), ("-1.5h", -5_400_000_000_000), ("2h45m", 9_900_000_000_000), ("300ms", 300_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006), ("1us", 1000), ("1\u{00B5}s", 1000), ("1\u{03BC}s", 1000),
            (".5s", 500_000_000), ("1.s", 1_000_000_000), ("00010s", 10_000_000_000), ("3m0.5s", 180_500_000_000),
            ("1.123456789123s", 1_123_456_789), ("0.0000000001s", 0), ("1.0000000005s", 1_000_000_000),
            ("9223372036854775807ns", Int64.max), ("2562047h47m16.854775807s", Int64.max),
            ("-9223372036854775808ns", Int64.min), ("2562047h", 9_223_369_200_000_000_000), ("1h1h", 7_200_000_000_000),
        ] as [(String, Int64)])
    func durations(text: String, nanoseconds: Int64) {
        #expect(GoParsing.parseDuration(text) == nanoseconds)
    }

    @Test(arguments: [
        "", ".s", " 1s", "--5m", "1", "1m1", "1S", "1d", "1e3s", "1 s", "1s ", "5m-3s", "+", "-",
        "9223372036854775808ns", "2562048h", "2562047h47m16.854775808s",
    ])
    func invalidDurations(text: String) {
        #expect(GoParsing.parseDuration(text) == nil)
    }

    @Test func bools() {
        for text in ["1", "t", "T", "true", "TRUE", "True"] { #expect(GoParsing.parseBool(text) == true) }
        for text in ["0", "f", "F", "false", "FALSE", "False"] { #expect(GoParsing.parseBool(text) == false) }
        for text in ["", "yes", "on", "tRUE", " true", "01", "2"] { #expect(GoParsing.parseBool(text) == nil) }
    }

    @Test func integers() {
        #expect(GoParsing.parseInt("007") == 7)
        #expect(GoParsing.parseInt("-0") == 0)
        #expect(GoParsing.parseInt("+5") == 5)
        #expect(GoParsing.parseInt("9223372036854775807") == Int.max)
        #expect(GoParsing.parseInt("-9223372036854775808") == Int.min)
        for text in [
            " 5", "5 ", "", "+", "-", "++1", "5_000", "0x10", "1e3", "1.0", "\u{0663}",
            "9223372036854775808", "-9223372036854775809",
        ] {
            #expect(GoParsing.parseInt(text) == nil, "\(text)")
        }
    }

    @Test func durationFormatting() {
        #expect(GoParsing.formatDuration(.seconds(10)) == "10s")
        #expect(GoParsing.formatDuration(.milliseconds(300)) == "300ms")
        #expect(GoParsing.formatDuration(.milliseconds(1500)) == "1.5s")
    }
}

@Suite struct ExtensionSettingsTests {
    @Test func defaultsWithAnEmptyEnvironment() {
        let settings = ExtensionSettings(environment: [:])
        #expect(settings.warnings.isEmpty && settings.errors.isEmpty)
        #expect(settings.relay.remote == RelayConfiguration.defaultRemote)
        #expect(settings.relay.remote?.origin == "https://profiles-prod-001.grafana.net")
        #expect(settings.relay.upstreamTimeout == .seconds(10))
        #expect(settings.relay.workers == 5)
        #expect(settings.relay.credentials == .none)
        #expect(settings.relay.listenAddresses == ListenAddress.loopback(port: 4040))
        #expect(!settings.devMode && !settings.flushOnInvoke && !settings.selfProfiling)
        #expect(settings.log.format == .text && settings.log.level == .info && settings.log.fieldNames == LogFieldNames())
    }

    @Test func emptyValuesMeanDefaultSilently() {
        let settings = ExtensionSettings(environment: [
            "PYROSCOPE_TIMEOUT": "", "PYROSCOPE_NUM_WORKERS": "", "PYROSCOPE_REMOTE_ADDRESS": "", "PYROSCOPE_DEV_MODE": "",
            "PYROSCOPE_LOG_LEVEL": "", "PYROSCOPE_HTTP_HEADERS": "",
        ])
        #expect(settings.warnings.isEmpty && settings.errors.isEmpty)
        #expect(settings.relay.remote == RelayConfiguration.defaultRemote)
    }

    @Test func badNumbersWarnWithTheGoWordingInDeclarationOrder() {
        let settings = ExtensionSettings(environment: ["PYROSCOPE_NUM_WORKERS": "five", "PYROSCOPE_TIMEOUT": "abc"])
        #expect(
            settings.warnings.map(\.description) == [
                "invalid value for env var 'PYROSCOPE_TIMEOUT': 'abc' defaulting to '10s'",
                "invalid value for env var 'PYROSCOPE_NUM_WORKERS': 'five' defaulting to '5'",
            ])
        #expect(settings.relay.upstreamTimeout == .seconds(10) && settings.relay.workers == 5)
    }

    @Test func valuesGoAcceptedButThatCannotRunAreRefusedWithAReason() {
        let settings = ExtensionSettings(environment: ["PYROSCOPE_TIMEOUT": "-1s", "PYROSCOPE_NUM_WORKERS": "0", "PYROSCOPE_MAX_BODY_BYTES": "-3"])
        #expect(settings.warnings.count == 3)
        #expect(settings.warnings[0].variable == "PYROSCOPE_TIMEOUT" && settings.warnings[0].fallback == "10s" && settings.warnings[0].reason != nil)
        #expect(settings.warnings[1].description.hasPrefix("invalid value for env var 'PYROSCOPE_NUM_WORKERS': '0' defaulting to '5'"))
        #expect(settings.relay.maxBodyBytes == 8 << 20)
    }

    @Test func goodValuesAreUsed() {
        let settings = ExtensionSettings(environment: [
            "PYROSCOPE_TIMEOUT": "1m30s", "PYROSCOPE_NUM_WORKERS": "+007", "PYROSCOPE_DEV_MODE": "T",
            "PYROSCOPE_FLUSH_ON_INVOKE": "1", "PYROSCOPE_SELF_PROFILING": "True", "PYROSCOPE_MAX_BODY_BYTES": "1024",
            "PYROSCOPE_LISTEN_ADDRESS": "127.0.0.1:4041", "PYROSCOPE_TENANT_ID": "t1",
            "PYROSCOPE_REMOTE_ADDRESS": "http://pyroscope:4040/base",
        ])
        #expect(settings.warnings.isEmpty && settings.errors.isEmpty)
        #expect(settings.relay.upstreamTimeout == .seconds(90) && settings.relay.workers == 7)
        #expect(settings.devMode && settings.flushOnInvoke && settings.selfProfiling)
        #expect(settings.relay.maxBodyBytes == 1024 && settings.relay.tenantID == "t1")
        #expect(settings.relay.listenAddresses == [ListenAddress(host: "127.0.0.1", port: 4041)])
        #expect(settings.relay.remote?.basePath == "/base" && settings.relay.remote?.port == 4040)
    }

    @Test func badBooleansWarnInsteadOfSilentlyMeaningFalse() {
        let settings = ExtensionSettings(environment: ["PYROSCOPE_DEV_MODE": "yes"])
        #expect(!settings.devMode)
        #expect(settings.warnings.map(\.description) == ["invalid value for env var 'PYROSCOPE_DEV_MODE': 'yes' defaulting to 'false'"])
    }

    @Test func authPrecedence() {
        let token = ExtensionSettings(environment: ["PYROSCOPE_AUTH_TOKEN": "tok", "PYROSCOPE_BASIC_AUTH_USER": "u", "PYROSCOPE_BASIC_AUTH_PASSWORD": "p"])
        #expect(token.relay.credentials == .bearer(token: "tok"))
        let basic = ExtensionSettings(environment: ["PYROSCOPE_BASIC_AUTH_USER": "u", "PYROSCOPE_BASIC_AUTH_PASSWORD": "p"])
        #expect(basic.relay.credentials == .basic(user: "u", password: "p"))
        let half = ExtensionSettings(environment: ["PYROSCOPE_BASIC_AUTH_PASSWORD": "secret-pass"])
        #expect(half.relay.credentials == .none)
        #expect(half.warnings.count == 1 && half.warnings[0].reason?.contains("PYROSCOPE_BASIC_AUTH_USER") == true)
        #expect(!half.warnings[0].description.contains("secret-pass"), "a password never appears in a warning")
        #expect(token.log.redactions.contains("tok") && basic.log.redactions.contains("p"))
    }

    @Test func unusableRemoteIsOneClearErrorAndTheRelayStillRuns() {
        let settings = ExtensionSettings(environment: ["PYROSCOPE_REMOTE_ADDRESS": "pyroscope.example.com"])
        #expect(settings.relay.remote == nil)
        #expect(settings.errors.count == 1)
        #expect(settings.errors[0].code == .invalidRemoteAddress)
        #expect(settings.errors[0].message.contains("PYROSCOPE_REMOTE_ADDRESS 'pyroscope.example.com'"))
    }

    @Test func headersJSONIsAppliedOrReportedAsAnError() {
        let good = ExtensionSettings(environment: ["PYROSCOPE_HTTP_HEADERS": #"{"X-B":"2","X-A":"1"}"#])
        #expect(good.errors.isEmpty)
        #expect(good.relay.extraHeaders.map(\.name) == ["X-A", "X-B"] && good.relay.extraHeaders.map(\.value) == ["1", "2"])
        for bad in [#"{"X-A":1}"#, "not json", #"["X-A"]"#, #"{"X-A":"1""#] {
            let settings = ExtensionSettings(environment: ["PYROSCOPE_HTTP_HEADERS": bad])
            #expect(settings.relay.extraHeaders.isEmpty)
            #expect(settings.errors.map(\.code) == [.invalidHeaders], "\(bad)")
        }
        let badName = ExtensionSettings(environment: ["PYROSCOPE_HTTP_HEADERS": #"{"Bad Name":"v","X-Ok":"v","X-Nl":"a\nb"}"#])
        #expect(badName.relay.extraHeaders.map(\.name) == ["X-Ok"])
        #expect(badName.errors.count == 2)
    }

    @Test func listenAddressWarnings() {
        let open = ExtensionSettings(environment: ["PYROSCOPE_LISTEN_ADDRESS": "0.0.0.0:4040"])
        #expect(open.relay.listenAddresses == [ListenAddress(host: "0.0.0.0", port: 4040)])
        #expect(open.warnings.first?.description.contains("credentials") == true)
        let bad = ExtensionSettings(environment: ["PYROSCOPE_LISTEN_ADDRESS": "nonsense"])
        #expect(bad.relay.listenAddresses == ListenAddress.loopback(port: 4040))
        #expect(bad.warnings.first?.fallback == "localhost:4040")
    }

    @Test func logSettings() {
        let settings = ExtensionSettings(environment: [
            "PYROSCOPE_LOG_LEVEL": "WARN", "PYROSCOPE_LOG_FORMAT": "json", "PYROSCOPE_LOG_TIMESTAMP_FORMAT": "2006-01-02 15:04:05.000",
            "PYROSCOPE_LOG_TIMESTAMP_DISABLE": "true", "PYROSCOPE_LOG_TIMESTAMP_FIELD_NAME": "@timestamp",
            "PYROSCOPE_LOG_LEVEL_FIELD_NAME": "severity", "PYROSCOPE_LOG_MSG_FIELD_NAME": "message",
            "PYROSCOPE_LOG_LOGRUS_ERROR_FIELD_NAME": "err", "PYROSCOPE_LOG_FUNC_FIELD_NAME": "fn", "PYROSCOPE_LOG_FILE_FIELD_NAME": "src",
            "PYROSCOPE_LOG_REPORT_CALLER": "true", "TZ": "UTC",
        ])
        #expect(settings.warnings.isEmpty)
        #expect(settings.log.level == .warning && settings.log.format == .json && settings.log.disableTimestamp && settings.log.reportCaller)
        #expect(settings.log.timestampLayout == "2006-01-02 15:04:05.000")
        #expect(
            settings.log.fieldNames
                == LogFieldNames(
                    time: "@timestamp", level: "severity", message: "message",
                    logrusError: "err", function: "fn", file: "src"))
        let odd = ExtensionSettings(environment: ["PYROSCOPE_LOG_LEVEL": "information", "PYROSCOPE_LOG_FORMAT": "JSON"])
        #expect(odd.log.level == .info && odd.log.format == .text, "as Go: only exactly 'json' selects JSON")
        #expect(odd.warnings.map(\.variable) == ["PYROSCOPE_LOG_LEVEL", "PYROSCOPE_LOG_FORMAT"])
    }

    @Test func timeZoneFromTZ() {
        var warnings: [SettingsWarning] = []
        #expect(ExtensionSettings.timeZone(tz: "UTC", warnings: &warnings).offset(atUnixSeconds: 0).abbreviation == "UTC")
        #expect(ExtensionSettings.timeZone(tz: "", warnings: &warnings).offset(atUnixSeconds: 0).seconds == 0)
        #expect(ExtensionSettings.timeZone(tz: "Nowhere/Atlantis", warnings: &warnings).offset(atUnixSeconds: 0).seconds == 0)
        #expect(warnings.map(\.variable) == ["TZ"])
    }

    /// SwiftNIO's threads follow the CPU share Lambda gives the memory size (1,769 MB: one vCPU).
    @Test(
        arguments: [
            ("128", 1), ("1769", 1), ("1770", 2), ("3538", 2), ("10240", 6), ("", nil), ("lots", nil), ("0", nil),
        ] as [(String, Int?)])
    func threadsFollowTheFunctionsVCPUs(memory: String, threads: Int?) {
        let environment = memory.isEmpty ? [:] : ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE": memory]
        #expect(ExtensionSettings(environment: environment).threads == threads, "\(memory) MB")
    }
}
