import Foundation
import RelayTestSupport
import Testing

/// Issue 18 tried again the way it was found: the shipped binary, raw clients, and
/// Python's `http.server` (the project's capture server) as the remote.
@Suite(.serialized) struct RelayBinaryHardeningTests {
    /// The capture server on port 0, stopped when `body` returns.
    static func withCaptureServer<T>(_ body: (Int) async throws -> T) async throws -> T {
        let directory = NSTemporaryDirectory() + "capture-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = Process()
        let python = FileManager.default.isExecutableFile(atPath: testPython) ? testPython : "/usr/bin/python3"
        server.executableURL = URL(fileURLWithPath: python)
        server.arguments = [
            ClientFixture.repositoryRoot + "/Tests/Peers/capture_server.py", "--port", "0", "--port-file", directory + "/port", "--quiet",
            "--max-seconds", "120",
        ]
        server.standardError = FileHandle.nullDevice
        server.standardOutput = FileHandle.nullDevice
        try server.run()
        defer { server.terminate() }
        var port: Int?
        try await eventually("the capture server's port file") {
            port = (try? String(contentsOfFile: directory + "/port", encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            return port != nil
        }
        return try await body(try #require(port, "capture server did not start"))
    }

    static func environment(remote: String, _ extra: [String: String] = [:]) -> [String: String] {
        var environment = [
            "PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_REMOTE_ADDRESS": remote, "PYROSCOPE_LISTEN_ADDRESS": "127.0.0.1:0", "TZ": "UTC",
        ]
        environment.merge(extra) { $1 }
        return environment
    }

    static func healthz(port: Int) async -> Int? {
        await offCooperativePool { rawHealthz(port: port) }
    }

    /// Was: a pooled keep-alive connection, then a 64 KiB+ query; http.server answered 414
    /// before the head was written and async-http-client trapped (HTTPRequestStateMachine
    /// .swift:813), losing everything queued.
    @Test func longQueryAfterAPooledUploadNoLongerEndsTheProcess() async throws {
        try await Self.withCaptureServer { remotePort in
            let relay = try RelayProcess(environment: Self.environment(remote: "http://127.0.0.1:\(remotePort)"))
            let port = try #require(await relay.listeningPort())
            #expect(await rawPost(port: port, body: "first") == 200)
            // Delivered: the connection is pooled.
            let delivered = "pyroscope_relay_uploads_delivered_total"
            try await eventually("the first upload delivered") { await ObservabilityTests.metric(port: port, delivered) == 1 }
            let query = String(repeating: "a", count: 70 << 10)
            #expect(await rawPost(port: port, path: "/ingest?name=app&q=\(query)", body: "second") == 431)
            #expect(await rawPost(port: port, path: "/ingest?name=app&q=\(String(query.prefix(9000)))", body: "third") == 414)
            #expect(await rawPost(port: port, body: "fourth") == 200)
            // Sent on the pooled connection, or the process ended.
            try await eventually("the fourth upload delivered") {
                guard relay.process.isRunning else { return true }
                return await ObservabilityTests.metric(port: port, delivered) == 2
            }
            #expect(relay.process.isRunning, "\(relay.output.suffix(5))")
            #expect(await Self.healthz(port: port) == 200)
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)
            let summary = try #require(relay.output.first { $0.contains("relay stats") && $0.contains("phase=shutdown") })
            #expect(summary.contains("delivered=2") && summary.contains("dropped=0"), "\(summary)")
        }
    }

    /// Was: a token with a trailing newline failed every upload and logged itself on each retry.
    @Test func tokenWithATrailingNewlineWorksAndABrokenOneIsOneErrorWithoutTheValue() async throws {
        try await RecordingRemote.with { remote in
            let relay = try RelayProcess(
                environment: Self.environment(remote: remote.address, ["PYROSCOPE_AUTH_TOKEN": "sekrit-TOKEN-123\n", "PYROSCOPE_LOG_LEVEL": "trace"]))
            let port = try #require(await relay.listeningPort())
            #expect(await rawPost(port: port, body: "x") == 200)
            #expect(await remote.waitForRequests(1).first?.value("authorization") == "Bearer sekrit-TOKEN-123")
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)
            #expect(!relay.output.joined(separator: "\n").contains("sekrit"))
        }
        try await RecordingRemote.with { remote in
            let relay = try RelayProcess(
                environment: Self.environment(
                    remote: remote.address, ["PYROSCOPE_AUTH_TOKEN": "first-SEKRIT\nsecond-SEKRIT", "PYROSCOPE_LOG_LEVEL": "trace"]))
            let port = try #require(await relay.listeningPort())
            #expect(await rawPost(port: port, body: "x") == 200)
            await remote.waitForRequests(1)
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)
            let all = relay.output.joined(separator: "\n")
            #expect(!all.contains("SEKRIT"), "\(all)")
            let errors = relay.output.filter { $0.contains("level=error") }
            #expect(errors.count == 1 && errors[0].contains("PYROSCOPE_AUTH_TOKEN"), "\(errors)")
        }
    }

    /// Was: with 256 descriptors, 240 idle connections made the relay unreachable.
    @Test func hundredsOfIdleConnectionsUnderALowDescriptorLimitLeaveTheRelayReachable() async throws {
        try await RecordingRemote.with { remote in
            let relay = try RelayProcess(
                environment: Self.environment(remote: remote.address), executable: "/usr/bin/prlimit",
                arguments: ["--nofile=256:256", RelayProcess.binaryPath])
            let port = try #require(await relay.listeningPort(), "\(relay.output)")
            #expect(relay.output.contains { $0.contains("Relay listening") && $0.contains("max_connections=160") }, "\(relay.output)")
            let (health, uploads) = await offCooperativePool { () -> ([Int?], [Int?]) in
                let idle = (0..<400).compactMap { _ in try? RawConnection(port: port, timeoutSeconds: 5) }
                var health: [Int?] = []
                var uploads: [Int?] = []
                for index in 0..<5 {
                    health.append(rawHealthz(port: port))
                    let upload = try? RawConnection(port: port, timeoutSeconds: 5)
                    try? upload?.send("POST /ingest?name=app HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n\(index)")
                    uploads.append(upload?.readResponse()?.status)
                }
                _ = idle
                return (health, uploads)
            }
            #expect(health == Array(repeating: 200, count: 5))
            #expect(uploads == Array(repeating: 200, count: 5))
            #expect(await remote.waitForRequests(5).count == 5, "the upstream still gets descriptors")
            let metrics = await offCooperativePool { () -> String in
                let connection = try? RawConnection(port: port, timeoutSeconds: 5)
                try? connection?.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                return connection?.readResponse().map { String(decoding: $0.body, as: UTF8.self) } ?? ""
            }
            #expect(metrics.contains("pyroscope_relay_client_connections_closed_total{reason=\"replaced\"}"))
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)
            #expect(relay.output.filter { $0.contains("Client connection limit reached") }.count <= 5)
        }
    }

    /// Was: 129,153 "queue full" lines in 20 s. Now at most 5 per reason and 10 s.
    @Test func floodAgainstARemoteAnswering503LogsABoundedNumberOfLines() async throws {
        try await RecordingRemote.with(respond: { _ in .status(.serviceUnavailable) }) { remote in
            let relay = try RelayProcess(
                environment: Self.environment(
                    remote: remote.address,
                    [
                        "PYROSCOPE_QUEUE_MAX_BYTES": "4096", "PYROSCOPE_SPOOL_MAX_BYTES": "0", "PYROSCOPE_NUM_WORKERS": "1",
                        "PYROSCOPE_RETRY_INITIAL_BACKOFF": "10ms", "PYROSCOPE_RETRY_MAX_BACKOFF": "20ms",
                    ]))
            let port = try #require(await relay.listeningPort())
            let before = relay.output.count
            let refused = await offCooperativePool { () -> Int in
                var refused = 0
                guard let connection = try? RawConnection(port: port, timeoutSeconds: 5) else { return 0 }
                for index in 0..<1000 {
                    guard
                        (try? connection.send(
                            "POST /ingest?name=app HTTP/1.1\r\nHost: x\r\nContent-Length: 64\r\n\r\n\(String(repeating: "x", count: 60))\(String(format: "%04d", index))"
                        )) != nil,
                        let answer = connection.readResponse()
                    else { break }
                    if answer.status == 503 { refused += 1 }
                }
                return refused
            }
            #expect(refused > 500, "the flood was refused (\(refused))")
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)
            let lines = Array(relay.output.dropFirst(before))
            let queueFull = lines.filter { $0.contains("Refused upload: queue full") }
            #expect((1...10).contains(queueFull.count), "\(queueFull.count) queue-full lines")
            #expect(lines.count < 40, "\(lines.count) lines for \(refused) refusals: \(lines.prefix(50))")
        }
    }

    @Test func nonLoopbackListenAddressWarningSaysTheAddressIsUsed() async throws {
        try await RecordingRemote.with { remote in
            let relay = try RelayProcess(environment: Self.environment(remote: remote.address, ["PYROSCOPE_LISTEN_ADDRESS": "0.0.0.0:0"]))
            let line = await relay.waitForLine { $0.contains("PYROSCOPE_LISTEN_ADDRESS") }
            relay.signal(SIGTERM)
            _ = await relay.waitForExit()
            #expect(line?.contains("level=warning") == true && line?.contains("Listening on 0.0.0.0:0 as PYROSCOPE_LISTEN_ADDRESS says") == true)
            #expect(line?.contains("defaulting") == false)
        }
    }
}
