import Foundation
import NIOConcurrencyHelpers
import RelayTestSupport
import Testing

@testable import RelayCore

/// A client that shuts down its sending side still gets its answer (issue 18, item 6);
/// refusals that repeat per request log a bounded number of lines (item 4).
@Suite struct HalfCloseAndLogBoundTests {
    /// Sends a whole request, then `shutdown(SHUT_WR)`, then reads the answer.
    static func halfClosedPost(port: Int, body: String) -> Int? {
        guard let connection = try? RawConnection(port: port),
            (try? connection.send("POST /ingest?name=app HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")) != nil
        else { return nil }
        connection.closeSendingSide()
        return connection.readResponse()?.status
    }

    static func requestsAnswered200(_ relay: TestRelay) -> Int {
        let text = String(decoding: relay.counters.metrics.exposition(), as: UTF8.self)
        return text.split(separator: "\n").filter { $0.hasPrefix("pyroscope_relay_requests_total{") && $0.contains("status=\"200\"") }
            .compactMap { Int(Double($0.split(separator: " ").last ?? "") ?? -1) }.reduce(0, +)
    }

    @Test func halfClosedClientGetsItsAnswerOnTheMemoryAndTheSpoolPath() async throws {
        let directory = NSTemporaryDirectory() + "halfclose-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let down = NIOLockedValueBox(true)
        try await RecordingRemote.with(respond: { _ in down.withLockedValue { $0 } ? .status(.serviceUnavailable) : .status(.ok) }) { remote in
            let configuration = TestRelay.configuration(remote: remote) {
                $0.workers = 1
                $0.queueMaxItems = 2
                $0.spoolDirectory = directory
                $0.spoolMaxBytes = 16 << 20
                $0.retryPolicy = RetryPolicy(initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(100), maxAttempts: 1000)
            }
            try await TestRelay.with(configuration) { relay in
                let port = relay.port
                let statuses = await offCooperativePool { (0..<12).map { Self.halfClosedPost(port: port, body: "upload-\($0)") } }
                #expect(statuses == Array(repeating: 200, count: 12), "every half-closed client is answered")
                #expect(relay.pipeline.snapshot.spoolItems > 0, "some answers came from the spool path")
                down.withLockedValue { $0 = false }
                await relay.pipeline.flush()
                let snapshot = relay.counters.snapshot
                #expect(snapshot.accepted == 12 && snapshot.delivered == 12)
                #expect(Self.requestsAnswered200(relay) == snapshot.accepted, "requests_total{status=200} matches accepted")
                let bodies = Set(remote.received.filter { $0.indexOnConnection > 0 }.map { String(decoding: $0.body, as: UTF8.self) })
                #expect(bodies == Set((0..<12).map { "upload-\($0)" }))
            }
        }
    }

    @Test func everyRefusalThatRepeatsPerRequestLogsAtMostFiveLinesPerWindow() async throws {
        let capture = spoolTestLogger()
        var elapsed = Duration.zero
        try await RecordingRemote.with { remote in
            let configuration = TestRelay.configuration(remote: remote) {
                $0.maxBodyBytes = 10
                $0.remote = nil  // every upload refused as misconfigured
            }
            let started = ContinuousClock.now
            defer { elapsed = ContinuousClock.now - started }
            try await TestRelay.with(configuration, logger: capture.logger) { relay in
                let port = relay.port
                let kinds = [
                    "POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",  // 413
                    "POST /ingest?\(String(repeating: "q", count: 9000)) HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",  // 414
                    "POST /ingest HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",  // 400, no Host
                    "CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",  // 405
                    "POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",  // 503 misconfigured
                ]
                await offCooperativePool {
                    for _ in 0..<30 {
                        for request in kinds {
                            guard let connection = try? RawConnection(port: port), (try? connection.send(request)) != nil else { continue }
                            _ = connection.readResponse()
                        }
                    }
                }
            }
        }
        let lines = capture.lines(atLeast: .info)
        // 150 refusals of each kind; a loaded machine may spread them over several windows.
        let windows = Int(elapsed / .seconds(10)) + 1
        for marker in ["status=413", "status=414", "status=400", "status=405", "reason=misconfigured"] {
            let matching = lines.filter { $0.contains(marker) }
            #expect((1...(5 * windows)).contains(matching.count), "\(marker): \(matching.count) lines in \(windows) windows")
        }
        #expect(lines.count <= (5 * 5) * windows + 5, "\(lines.count) lines: \(lines.prefix(40))")
    }
}
