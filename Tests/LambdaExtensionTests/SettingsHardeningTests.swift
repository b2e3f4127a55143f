import RelayCore
import Testing

@testable import LambdaExtension

/// Settings that end up in header values (issue 18, items 2 and 9).
@Suite struct SettingsHardeningTests {
    @Test func valuesAreTrimmedOfSurroundingWhiteSpace() {
        let settings = ExtensionSettings(environment: [
            "PYROSCOPE_AUTH_TOKEN": "sekrit-TOKEN-123\n", "PYROSCOPE_TENANT_ID": "  tenant-7\t", "PYROSCOPE_TIMEOUT": " 5s\n",
            "PYROSCOPE_HTTP_HEADERS": #"{"X-Key":"value\n"}"#, "PYROSCOPE_REMOTE_ADDRESS": "http://pyroscope:4040\n",
        ])
        #expect(settings.errors.isEmpty && settings.warnings.isEmpty, "\(settings.errors) \(settings.warnings)")
        #expect(settings.relay.credentials == .bearer(token: "sekrit-TOKEN-123"))
        #expect(settings.relay.tenantID == "tenant-7" && settings.relay.upstreamTimeout == .seconds(5))
        #expect(settings.relay.extraHeaders.map(\.value) == ["value"])
        #expect(settings.relay.remote?.origin == "http://pyroscope:4040")
        #expect(settings.log.redactions.contains("sekrit-TOKEN-123"))
        let blank = ExtensionSettings(environment: ["PYROSCOPE_AUTH_TOKEN": " \n"])
        #expect(blank.relay.credentials == .none && blank.errors.isEmpty, "white space alone is unset")
    }

    @Test(arguments: ["PYROSCOPE_AUTH_TOKEN", "PYROSCOPE_TENANT_ID"])
    func aValueThatCannotBeAHeaderValueIsOneErrorNamingTheVariableNeverTheValue(variable: String) {
        let settings = ExtensionSettings(environment: [variable: "first-SECRET-half\nsecond-SECRET-half"])
        #expect(settings.errors.count == 1)
        let message = settings.errors.first.map { "\($0)" } ?? ""
        #expect(message.contains(variable))
        #expect(!message.contains("SECRET"), "\(message)")
        #expect(settings.relay.credentials == .none && settings.relay.tenantID == "")
        for control in ["a\u{1}b", "a\u{7F}b", "a\rb"] {
            #expect(ExtensionSettings(environment: [variable: control]).errors.count == 1)
        }
        #expect(ExtensionSettings(environment: [variable: "a\tb c"]).errors.isEmpty, "HTAB and spaces inside are allowed")
    }

    @Test func extraHeadersWithControlCharactersOrTooLargeAreErrors() {
        let control = ExtensionSettings(environment: ["PYROSCOPE_HTTP_HEADERS": #"{"X-Bell":"a\u0007b","X-Ok":"v"}"#])
        #expect(control.relay.extraHeaders.map(\.name) == ["X-Ok"] && control.errors.count == 1)
        let big = String(repeating: "v", count: 9 << 10)
        let large = ExtensionSettings(environment: ["PYROSCOPE_HTTP_HEADERS": #"{"X-Big":"\#(big)"}"#])
        #expect(large.relay.extraHeaders.isEmpty)
        #expect(large.errors.count == 1 && large.errors[0].message.contains("8192"))
    }

    @Test func nonLoopbackListenAddressSaysPlainlyItIsUsedAndWhyItIsRisky() {
        let open = ExtensionSettings(environment: ["PYROSCOPE_LISTEN_ADDRESS": "0.0.0.0:60375"])
        #expect(open.relay.listenAddresses == [ListenAddress(host: "0.0.0.0", port: 60375)])
        let text = open.warnings.first?.description ?? ""
        #expect(text.hasPrefix("Listening on 0.0.0.0:60375 as PYROSCOPE_LISTEN_ADDRESS says"), "\(text)")
        #expect(text.contains("credentials") && text.contains("anyone who can connect"))
        #expect(!text.contains("invalid value") && !text.contains("defaulting"))
    }
}
