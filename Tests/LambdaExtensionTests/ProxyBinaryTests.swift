import Foundation
import RelayTestSupport
import Testing

/// The shipped binary behind a real proxy (Debian's tinyproxy, with basic auth). The relay
/// runs where the test host names do not resolve: only the proxy can reach them.
@Suite(.serialized) struct ProxyBinaryTests {
    static let proxyUser = "relay"
    static let proxyPassword = "ppass-7c2e"

    static func isolatedRelay(_ environment: [String: String], resolving names: [String], in directory: String) throws -> RelayProcess {
        let command = IsolatedCommand(RelayProcess.binaryPath, replacing: try IsolatedCommand.hostFiles(names: names, in: directory))
        return try RelayProcess(environment: environment, executable: command.executable, arguments: command.arguments)
    }

    @Test func upstreamAndAWSTrafficGoThroughTheProxyAndItsPasswordIsNeverLogged() async throws {
        let pki = try await TestPKI.make(names: ["DNS:pyroscope.test"])
        defer { pki.remove() }
        let proxy = try await TinyproxyPeer.start(credentials: (Self.proxyUser, Self.proxyPassword), resolving: ["pyroscope.test", "aws.test"])
        defer { proxy.stop() }
        try await MotoPeer.with { moto in
            let arn = try await moto.createSecret(name: "grafana-password", value: TLSBinaryTests.password)
            try await RecordingRemote.with { remote in
                let nginx = try await NginxPeer.start(
                    pki: pki, forwardingTo: remote.port, http2: true, basicAuth: (TLSBinaryTests.user, TLSBinaryTests.password))
                defer { nginx.stop() }
                let proxyURL = "http://\(Self.proxyUser):\(Self.proxyPassword)@127.0.0.1:\(proxy.port)"
                let relay = try Self.isolatedRelay(
                    [
                        "PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_LISTEN_ADDRESS": "127.0.0.1:0", "TZ": "UTC", "PYROSCOPE_LOG_LEVEL": "trace",
                        "PYROSCOPE_REMOTE_ADDRESS": "https://pyroscope.test:\(nginx.port)", "PYROSCOPE_CA_FILE": pki.caFile,
                        "PYROSCOPE_BASIC_AUTH_USER": TLSBinaryTests.user, "PYROSCOPE_BASIC_AUTH_PASSWORD_SECRET_ARN": arn,
                        "AWS_ENDPOINT_URL": "http://aws.test:\(moto.port)", "HTTPS_PROXY": proxyURL, "http_proxy": proxyURL,
                    ].merging(SecretsBinaryTests.sessionKeys(moto)) { $1 }, resolving: [], in: pki.directory)
                let port = try #require(await relay.listeningPort())
                #expect(await relay.waitForLine { $0.contains("Fetched the upstream credential") } != nil, "the secret came through the proxy")
                #expect(await rawPost(port: port, body: "proxied-profile") == 200)
                let received = await remote.waitForRequests(1)
                #expect(received.first.map { String(decoding: $0.body, as: UTF8.self) } == "proxied-profile")
                relay.signal(SIGTERM)
                #expect(await relay.waitForExit() == 0)
                #expect(Set(proxy.tunnels) == ["pyroscope.test", "aws.test"], "\(proxy.log)")
                // Through the tunnel, TLS with the origin itself; HTTP/1.1 although nginx offers HTTP/2.
                #expect(nginx.accessLog.first?.hasPrefix("HTTP/1.1 \(TLSBinaryTests.user) ") == true, "\(nginx.accessLog)")
                let started = try #require(relay.output.first { $0.contains("Relaying uploads") })
                #expect(started.contains("proxy=\"http://\(Self.proxyUser):***@127.0.0.1:\(proxy.port)\""), "\(started)")
                SecretsBinaryTests.expectNoSecrets(relay.output, [Self.proxyPassword, TLSBinaryTests.password, moto.session.secretAccessKey])
            }
        }
    }

    @Test func noProxyHostsAreReachedDirectly() async throws {
        let proxy = try await TinyproxyPeer.start(credentials: (Self.proxyUser, Self.proxyPassword), resolving: ["direct.test"])
        defer { proxy.stop() }
        let directory = NSTemporaryDirectory() + "no-proxy-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await RecordingRemote.with { remote in
            let relay = try Self.isolatedRelay(
                [
                    "PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_LISTEN_ADDRESS": "127.0.0.1:0", "TZ": "UTC",
                    "PYROSCOPE_REMOTE_ADDRESS": "http://direct.test:\(remote.port)",
                    "HTTP_PROXY": "http://\(Self.proxyUser):\(Self.proxyPassword)@127.0.0.1:\(proxy.port)", "NO_PROXY": "example.com, .test",
                ], resolving: ["direct.test"], in: directory)
            let port = try #require(await relay.listeningPort())
            #expect(await rawPost(port: port, body: "direct") == 200)
            #expect(await remote.waitForRequests(1).count == 1)
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)
            #expect(proxy.tunnels.isEmpty && !proxy.log.contains("direct.test"), "\(proxy.log)")
            #expect(!(relay.output.first { $0.contains("Relaying uploads") } ?? "").contains("proxy="))
        }
    }
}
