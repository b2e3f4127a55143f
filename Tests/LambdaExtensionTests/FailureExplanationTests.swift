import Foundation
import RelayTestSupport
import Testing

/// Each way an upload can fail gives one `warn` line at once that says what to check, at the
/// default log level; no credential appears in any line, even at trace.
@Suite(.serialized) struct FailureExplanationTests {
    static let token = "tok-explain-4d9a"

    static func environment(remote: String, _ extra: [String: String] = [:]) -> [String: String] {
        [
            "PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_LISTEN_ADDRESS": "127.0.0.1:0", "TZ": "UTC", "PYROSCOPE_REMOTE_ADDRESS": remote,
            "PYROSCOPE_AUTH_TOKEN": token, "PYROSCOPE_RETRY_INITIAL_BACKOFF": "100ms", "PYROSCOPE_RETRY_MAX_BACKOFF": "200ms",
            "PYROSCOPE_RETRY_MAX_ATTEMPTS": "3", "PYROSCOPE_TIMEOUT": "1s",
        ].merging(extra) { $1 }
    }

    /// Posts one upload and returns the relay's warning for `cause`, then stops the relay.
    static func warning(cause: String, relay: RelayProcess, path: String = "/ingest?name=app", within limit: Duration = .seconds(5)) async throws -> String {
        let port = try #require(await relay.listeningPort())
        let posted = ContinuousClock.now
        #expect(await rawPost(port: port, path: path, body: "profile") == 200)
        let line = try #require(await relay.waitForLine(timeout: .seconds(10)) { $0.contains("cause=\(cause)") })
        #expect(ContinuousClock.now - posted < limit, "explained at once")
        #expect(line.contains("level=warning") && line.contains("Upload attempt failed"))
        return line
    }

    static func stop(_ relay: RelayProcess) async {
        relay.signal(SIGTERM)
        _ = await relay.waitForExit()
        #expect(!relay.output.contains { $0.contains(token) }, "the token never appears")
    }

    @Test func statusAnswersNameWhatToCheck() async throws {
        try await RecordingRemote.with(respond: { request in
            switch request.uri {
            case let uri where uri.hasPrefix("/prefix/a401"): .status(.unauthorized, body: "invalid credentials")
            case let uri where uri.hasPrefix("/prefix/a403"): .status(.forbidden)
            case let uri where uri.hasPrefix("/prefix/a413"): .status(.payloadTooLarge)
            case let uri where uri.hasPrefix("/prefix/a503"): .status(.serviceUnavailable)
            default: .status(.notFound)
            }
        }) { remote in
            let relay = try RelayProcess(
                environment: Self.environment(remote: "http://127.0.0.1:\(remote.port)/prefix", ["PYROSCOPE_LOG_LEVEL": "trace"]))
            let unauthorized = try await Self.warning(cause: "unauthorized", relay: relay, path: "/a401")
            #expect(unauthorized.contains("refused the credentials (401): check PYROSCOPE_AUTH_TOKEN") && unauthorized.contains("status=401"))
            let notFound = try await Self.warning(cause: "not_found", relay: relay, path: "/a404")
            #expect(notFound.contains("check the base path of PYROSCOPE_REMOTE_ADDRESS (http://127.0.0.1:\(remote.port)/prefix)"))
            let tooLarge = try await Self.warning(cause: "too_large", relay: relay, path: "/a413")
            #expect(tooLarge.contains("answered 413") && tooLarge.contains("body limit"))
            let serverError = try await Self.warning(cause: "server_error", relay: relay, path: "/a503")
            #expect(serverError.contains("is failing (503)"))
            // A 403 is the same cause as the 401 just logged: counted, not logged again yet.
            let port = try #require(await relay.listeningPort())
            #expect(await rawPost(port: port, path: "/a403", body: "x") == 200)
            // Its attempt is counted (the 401's and the 403's); the output is whole once it exits.
            let series = #"pyroscope_relay_upstream_attempts_total{outcome="error_status",status_class="4xx",cause="unauthorized"}"#
            try await eventually("the 403 attempt counted") { await ObservabilityTests.metric(port: port, series) == 2 }
            await Self.stop(relay)
            #expect(relay.output.filter { $0.contains("cause=unauthorized") }.count == 1)
        }
    }

    @Test func refusedConnectionsNameHostAndPort() async throws {
        let port = try freeLoopbackPort()  // nothing listens there
        let relay = try RelayProcess(environment: Self.environment(remote: "http://127.0.0.1:\(port)"))
        let line = try await Self.warning(cause: "refused", relay: relay)
        #expect(line.contains("127.0.0.1:\(port) refused the connection"))
        await Self.stop(relay)
    }

    @Test func timeoutsNameTheSetting() async throws {
        try await RecordingRemote.with(respond: { _ in .delayed(.seconds(10), .ok) }) { remote in
            let relay = try RelayProcess(environment: Self.environment(remote: remote.address))
            let line = try await Self.warning(cause: "timeout", relay: relay, within: .seconds(3))
            #expect(line.contains("within PYROSCOPE_TIMEOUT"))
            await Self.stop(relay)
        }
    }

    /// The relay runs where no name resolves and DNS queries go to 127.0.0.1 (nothing there).
    @Test func unresolvableHostsAreOneCountedAttemptEach() async throws {
        let directory = NSTemporaryDirectory() + "dns-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let command = IsolatedCommand(RelayProcess.binaryPath, replacing: try IsolatedCommand.hostFiles(names: [], in: directory))
        let relay = try RelayProcess(
            environment: Self.environment(remote: "https://pyroscope.invalid"), executable: command.executable, arguments: command.arguments)
        let line = try await Self.warning(cause: "dns", relay: relay)
        #expect(line.contains("cannot resolve the host name pyroscope.invalid"))
        let port = try #require(await relay.listeningPort())
        // Three attempts, 100-200 ms apart, then the upload is dropped: awaited.
        _ = await relay.waitForLine { $0.contains("reason=max_retries") }
        let metrics = String(decoding: try #require(await ObservabilityTests.scrape(port: port)), as: UTF8.self)
        #expect(metrics.contains(#"pyroscope_relay_upstream_attempts_total{outcome="connection_error",status_class="none",cause="dns"} 3"#), "\(metrics)")
        await Self.stop(relay)
        #expect(relay.output.contains { $0.contains("reason=max_retries") && $0.contains("attempt=3") })
    }
}
