import Foundation
import RelayTestSupport
import Testing

/// The shipped binary relaying over HTTPS to nginx (a real TLS server with basic auth) in
/// front of a recording remote, with certificates made for the test.
@Suite(.serialized) struct TLSBinaryTests {
    static let user = "123456"
    static let password = "glc_pw-tls-5e8a"

    static func environment(_ nginx: NginxPeer, _ extra: [String: String]) -> [String: String] {
        [
            "PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_LISTEN_ADDRESS": "127.0.0.1:0", "TZ": "UTC",
            "PYROSCOPE_REMOTE_ADDRESS": "https://127.0.0.1:\(nginx.port)", "PYROSCOPE_LOG_LEVEL": "trace",
            "PYROSCOPE_BASIC_AUTH_USER": user, "PYROSCOPE_BASIC_AUTH_PASSWORD": password,
        ].merging(extra) { $1 }
    }

    static func withNginx<T>(http2: Bool = false, names: [String] = ["IP:127.0.0.1"], _ body: (NginxPeer, RecordingRemote, TestPKI) async throws -> T)
        async throws -> T
    {
        let pki = try await TestPKI.make(names: names)
        defer { pki.remove() }
        return try await RecordingRemote.with { remote in
            let nginx = try await NginxPeer.start(pki: pki, forwardingTo: remote.port, http2: http2, basicAuth: (user, password))
            defer { nginx.stop() }
            return try await body(nginx, remote, pki)
        }
    }

    @Test(arguments: [false, true])
    func relaysOverHTTPSWithBasicAuthToAPrivateCA(http2: Bool) async throws {
        try await Self.withNginx(http2: http2) { nginx, remote, pki in
            let relay = try RelayProcess(environment: Self.environment(nginx, ["PYROSCOPE_CA_FILE": pki.caFile]))
            let port = try #require(await relay.listeningPort())
            for index in 0..<3 { #expect(await rawPost(port: port, path: "/ingest?name=tls.app", body: "profile-\(index)") == 200) }
            let received = await remote.waitForRequests(3)
            #expect(Set(received.map { String(decoding: $0.body, as: UTF8.self) }) == ["profile-0", "profile-1", "profile-2"])
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)
            // nginx checked the password and says which protocol carried the uploads: HTTP/1.1
            // also where the server offers HTTP/2 (the relay's client offers only http/1.1 in ALPN).
            let log = nginx.accessLog
            #expect(log.count == 3 && log.allSatisfy { $0.hasPrefix("HTTP/1.1 \(Self.user) ") && $0.hasSuffix(" 200") }, "\(log)")
            #expect(!relay.output.contains { $0.contains(Self.password) })
        }
    }

    @Test func anUntrustedCertificateSendsNothingAndSaysWhyAtOnce() async throws {
        try await Self.withNginx { nginx, remote, _ in
            let relay = try RelayProcess(
                environment: Self.environment(
                    nginx, ["PYROSCOPE_LOG_LEVEL": "info", "PYROSCOPE_RETRY_INITIAL_BACKOFF": "100ms", "PYROSCOPE_RETRY_MAX_BACKOFF": "200ms"]))
            let port = try #require(await relay.listeningPort())
            let posted = ContinuousClock.now
            #expect(await rawPost(port: port, body: "profile") == 200)
            let warning = try #require(await relay.waitForLine(timeout: .seconds(5)) { $0.contains("cause=tls") })
            #expect(ContinuousClock.now - posted < .seconds(1), "explained within a second, not after PYROSCOPE_TIMEOUT")
            #expect(warning.contains("level=warning") && warning.contains("TLS verification of 127.0.0.1 failed") && warning.contains("PYROSCOPE_CA_FILE"))
            // A few more attempts, backed off: awaited on the relay's count of them.
            let series = #"pyroscope_relay_upstream_attempts_total{outcome="connection_error",status_class="none",cause="tls"}"#
            try await eventually("a second TLS attempt", timeout: .seconds(10)) { (await ObservabilityTests.metric(port: port, series) ?? 0) >= 2 }
            let metrics = try #require(await ObservabilityTests.scrape(port: port))
            let text = String(decoding: metrics, as: UTF8.self)
            let attempts = text.split(separator: "\n").first {
                $0.hasPrefix(#"pyroscope_relay_upstream_attempts_total{outcome="connection_error",status_class="none",cause="tls"}"#)
            }
            let count = attempts.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
            #expect(count >= 2, "each failed handshake is a counted attempt: \(attempts ?? "none")")
            relay.signal(SIGTERM)
            _ = await relay.waitForExit()
            #expect(remote.received.isEmpty && nginx.accessLog.isEmpty, "nothing was sent")
            #expect(relay.output.filter { $0.contains("cause=tls") }.count == 1, "the first failure at once, the rest rate-limited")
        }
    }

    /// Amazon Linux keeps its bundle at /etc/pki/tls/certs/ca-bundle.crt. The relay runs in a
    /// mount namespace whose /etc has only that file (holding the test CA) and the loader
    /// cache: it trusts the server only if NIOSSL looks there.
    @Test func amazonLinuxsBundlePathIsFound() async throws {
        try await Self.withNginx { nginx, remote, pki in
            func isolatedEtc(bundle: String) throws -> String {
                let etc = pki.directory + "/etc-\(UUID().uuidString)"
                try FileManager.default.createDirectory(atPath: etc + "/pki/tls/certs", withIntermediateDirectories: true)
                try FileManager.default.copyItem(atPath: bundle, toPath: etc + "/pki/tls/certs/ca-bundle.crt")
                if FileManager.default.fileExists(atPath: "/etc/ld.so.cache") {
                    try FileManager.default.copyItem(atPath: "/etc/ld.so.cache", toPath: etc + "/ld.so.cache")
                }
                return etc
            }
            // The server's CA at the Amazon Linux path: delivered.
            let trusted = IsolatedCommand(RelayProcess.binaryPath, replacing: [("/etc", try isolatedEtc(bundle: pki.caFile))])
            let relay = try RelayProcess(environment: Self.environment(nginx, [:]), executable: trusted.executable, arguments: trusted.arguments)
            let port = try #require(await relay.listeningPort())
            #expect(await rawPost(port: port, body: "via-amazon-linux-bundle") == 200)
            #expect(await remote.waitForRequests(1).count == 1)
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)

            // The control: another CA at that path, and the same server is refused.
            let other = try await TestPKI.make()
            defer { other.remove() }
            let untrusted = IsolatedCommand(RelayProcess.binaryPath, replacing: [("/etc", try isolatedEtc(bundle: other.caFile))])
            let control = try RelayProcess(environment: Self.environment(nginx, [:]), executable: untrusted.executable, arguments: untrusted.arguments)
            let controlPort = try #require(await control.listeningPort())
            #expect(await rawPost(port: controlPort, body: "refused") == 200)
            #expect(await control.waitForLine(timeout: .seconds(5)) { $0.contains("cause=tls") } != nil)
            control.signal(SIGTERM)
            _ = await control.waitForExit()
            #expect(remote.received.count == 1)
        }
    }

    @Test func sslCertFileReplacesTheSystemRoots() async throws {
        try await Self.withNginx { nginx, remote, pki in
            let relay = try RelayProcess(environment: Self.environment(nginx, ["SSL_CERT_FILE": pki.caFile]))
            let port = try #require(await relay.listeningPort())
            #expect(await rawPost(port: port, body: "profile") == 200)
            #expect(await remote.waitForRequests(1).count == 1)
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)
        }
    }
}
