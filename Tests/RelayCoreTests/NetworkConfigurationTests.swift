import Foundation
import Logging
import RelayTestSupport
import Testing

@testable import RelayCore

@Suite struct NetworkConfigurationTests {
    @Test(arguments: [
        ("", "example.com", 443, false),
        ("*", "anything.example", 443, true),
        ("example.com", "example.com", 443, true),
        ("example.com", "profiles.example.com", 443, true),
        ("example.com", "notexample.com", 443, false),
        (".example.com", "example.com", 443, false),
        (".example.com", "a.example.com", 443, true),
        ("*.example.com", "a.example.com", 443, true),
        ("example.com:8443", "example.com", 443, false),
        ("example.com:8443", "example.com", 8443, true),
        (" Example.COM , other.test", "example.com", 443, true),
        ("10.0.0.0/8", "10.1.2.3", 443, true),
        ("10.0.0.0/8", "11.1.2.3", 443, false),
        ("192.168.1.5", "192.168.1.5", 80, true),
        ("192.168.1.5:80", "192.168.1.5", 443, false),
        ("fd00::/8", "fd12::1", 443, true),
        ("[::1]:443", "::1", 443, true),
    ])
    func noProxyMatchesAsGoDoes(rule: String, host: String, port: Int, matches: Bool) {
        #expect(NoProxyRule(rule).matches(host: host, port: port) == matches, "NO_PROXY=\(rule) for \(host):\(port)")
    }

    @Test func theProxyIsChosenPerDestination() throws {
        let https = try ProxyServer(parsing: "http://user:p%40ss@proxy.internal:3128")
        let http = try ProxyServer(parsing: "proxy.internal:8080")
        let proxy = ProxyConfiguration(https: https, http: http, noProxy: NoProxyRule(".corp"), directHosts: ["169.254.100.1"])
        #expect(proxy.proxy(for: URLTarget("https://profiles-prod-001.grafana.net")!) == https)
        #expect(proxy.proxy(for: URLTarget("http://pyroscope.example:4040/base")!) == http)
        for direct in ["http://localhost:4040", "http://127.0.0.1:9001", "http://[::1]:80", "http://169.254.170.2/creds", "https://pyroscope.corp"] {
            #expect(proxy.proxy(for: URLTarget(direct)!) == nil, "\(direct) is reached directly")
        }
        #expect(https.host == "proxy.internal" && https.port == 3128 && https.password == "p@ss")
        #expect(https.description == "http://user:***@proxy.internal:3128" && http.description == "http://proxy.internal:8080")
        #expect(https.secrets.contains("p@ss") && https.secrets.contains { $0.hasPrefix("Basic ") })
        #expect(ProxyServer.redacted("http://user:secret@proxy:1") == "http://user:***@proxy:1")
        #expect(throws: ProxyParseError.self) { try ProxyServer(parsing: "https://proxy:443") }
        #expect(throws: ProxyParseError.self) { try ProxyServer(parsing: "socks5://proxy:1080") }
    }

    @Test func urlTargets() {
        #expect(URLTarget("https://Host.Example:8443/p?q") == URLTarget(scheme: "https", host: "host.example", port: 8443))
        #expect(URLTarget("http://[fe80::1]/x") == URLTarget(scheme: "http", host: "fe80::1", port: 80))
        #expect(URLTarget("https://user:pw@host") == URLTarget(scheme: "https", host: "host", port: 443))
        #expect(URLTarget("host:80") == nil && URLTarget("http://host:0") == nil)
    }

    @Test func failuresAreExplainedOnceAtFirstThenWithCountsAtMostOncePerInterval() throws {
        let logs = LogRecording()
        let reporter = UpstreamFailureReporter(
            context: .init(remote: try RemoteEndpoint(parsing: "https://pyroscope.example/base"), credentialSettings: ["PYROSCOPE_AUTH_TOKEN"]),
            interval: .seconds(60))
        let start = ContinuousClock.now
        for second in 0..<30 { reporter.record(.serverError, status: 503, detail: "busy", logger: logs.logger(), now: start + .seconds(second)) }
        reporter.record(.notFound, status: 404, detail: "", logger: logs.logger(), now: start + .seconds(30))
        reporter.record(.serverError, status: 503, detail: "busy", logger: logs.logger(), now: start + .seconds(61))
        let lines = logs.all
        #expect(lines.map { $0.metadata["cause"] } == ["server_error", "not_found", "server_error"])
        #expect(lines.map { $0.metadata["count"] } == ["1", "1", "30"], "the later line counts the failures since the first")
        #expect(lines.allSatisfy { $0.level == .warning && $0.metadata["host"] == "pyroscope.example" })
        #expect(lines[1].message.contains("check the base path of PYROSCOPE_REMOTE_ADDRESS (https://pyroscope.example/base)"))
        #expect(reporter.explanation(.unauthorized, status: 403).contains("check PYROSCOPE_AUTH_TOKEN"))
        let bare = UpstreamFailureReporter(context: .init(remote: nil))
        #expect(bare.explanation(.unauthorized).contains("no credentials are configured"))
        let privateCA = UpstreamFailureReporter(context: .init(remote: nil, trust: TrustConfiguration(additionalCAFile: "/opt/ca.pem")))
        #expect(privateCA.explanation(.tls).contains("PYROSCOPE_CA_FILE=/opt/ca.pem is in use"))
    }

    @Test func aBundleIsCheckedForItsPEMMarkerWithoutParsingIt() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/bundle-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The marker after 16 KB of comment lines.
        let split = String(repeating: "#", count: (16 << 10) - 10) + "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        try split.write(toFile: directory + "/split.pem", atomically: true, encoding: .utf8)
        try String(repeating: "no certificate here\n", count: 2000).write(toFile: directory + "/text.pem", atomically: true, encoding: .utf8)
        #expect(TrustConfiguration.problem(withBundle: directory + "/split.pem") == nil)
        #expect(TrustConfiguration.problem(withBundle: directory + "/text.pem") == "it holds no PEM certificate")
        #expect(TrustConfiguration.problem(withBundle: directory + "/missing.pem")?.contains("cannot be read (No such file or directory)") == true)
        #expect(TrustConfiguration.problem(withBundle: directory)?.contains("cannot be read") == true, "a folder")
    }

    @Test func causesOfStatuses() {
        let expected: [(UInt, UpstreamAttemptCause)] = [
            (200, .none), (204, .none), (301, .unexpectedStatus), (400, .clientError), (401, .unauthorized), (403, .unauthorized),
            (404, .notFound), (413, .tooLarge), (429, .rateLimited), (500, .serverError), (503, .serverError),
        ]
        for (status, cause) in expected { #expect(UpstreamAttemptCause(status: status) == cause, "\(status)") }
        #expect(UpstreamAttemptCause.allCases.count == 14, "a closed set: the metric's cause label stays bounded")
    }
}
