import Foundation
import NIOCore
import RelayMetrics
import RelayTestSupport
import Testing

@testable import RelayCore

@Suite(.serialized) struct ObservabilityTests {
    static var promtool: String { ProcessInfo.processInfo.environment["PROMTOOL"] ?? "/usr/bin/promtool" }

    static func scrape(port: Int) async -> [UInt8]? {
        await offCooperativePool {
            guard let connection = try? RawConnection(port: port),
                (try? connection.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")) != nil
            else { return nil }
            return connection.readResponse()?.body
        }
    }

    /// The value of the exposition line for `series` (name and labels as exposed), 0 when
    /// there is none yet; nil when the scrape failed.
    static func metric(port: Int, _ series: String) async -> Double? {
        guard let exposition = await scrape(port: port) else { return nil }
        let line = String(decoding: exposition, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix(series + " ") }
        return line.map { Double($0.split(separator: " ").last ?? "") ?? 0 } ?? 0
    }

    /// Nothing queued, spooled or in flight: whatever the relay was to send is sent.
    static func isSettled(port: Int) async -> Bool {
        for gauge in ["pyroscope_relay_uploads_in_flight", "pyroscope_relay_queue_items", "pyroscope_relay_spool_items"] {
            guard await metric(port: port, gauge) == 0 else { return false }
        }
        return true
    }

    @Test func promtoolFindsNothingToCriticiseInTheLiveExposition() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.promtool), "needs promtool: `make test` unpacks it into .build-tools/")
        try await RecordingRemote.with(respond: { $0.uri.hasPrefix("/bad") ? .status(.badRequest) : .status(.ok) }) { remote in
            let relay = try RelayProcess(environment: RelayBinaryTests.devEnvironment(remote: remote))
            let port = try #require(await relay.listeningPort())
            for path in ["/ingest?name=a", "/push.v1.PusherService/Push", "/bad", "/other"] {
                #expect(await rawPost(port: port, path: path, body: "x") == 200)
            }
            await remote.waitForRequests(4)
            // The remote has the requests; the relay records an attempt once it has read
            // the answer. Scrape until nothing is in flight (bounded), then check.
            var exposition = try #require(await Self.scrape(port: port))
            func settled(_ text: [UInt8]) -> Bool {
                let text = String(decoding: text, as: UTF8.self)
                return text.contains("pyroscope_relay_uploads_in_flight 0") && text.contains("pyroscope_relay_queue_items 0")
            }
            try await eventually("nothing in flight", timeout: .seconds(10)) {
                exposition = try #require(await Self.scrape(port: port))
                return settled(exposition)
            }
            relay.signal(SIGTERM)
            _ = await relay.waitForExit()
            let text = String(decoding: exposition, as: UTF8.self)
            #expect(text.contains("process_resident_memory_bytes "))
            #expect(text.contains("process_cpu_seconds_total "))
            #expect(text.contains(#"pyroscope_relay_requests_total{path_class="push",status="200"} 1"#))
            #expect(text.contains(#"pyroscope_relay_upstream_attempts_total{outcome="error_status",status_class="4xx",cause="client_error"} 1"#))
            #expect(text.contains(#"pyroscope_relay_upstream_attempts_total{outcome="success",status_class="2xx",cause="none"} 3"#))
            #expect(text.contains("pyroscope_relay_upstream_request_duration_seconds_count 4"))
            let (status, findings) = try await runProgram(Self.promtool, ["check", "metrics"], input: exposition)
            #expect(status == 0 && findings.isEmpty, "promtool: \(findings)")
        }
    }

    @Test func histogramBucketsCountRight() {
        let metrics = RelayMetrics(dropReasons: [])
        for duration: Duration in [.microseconds(30), .microseconds(300), .milliseconds(2), .seconds(5)] {
            metrics.answerDuration.record(duration)
        }
        let lines = Set(String(decoding: metrics.exposition(), as: UTF8.self).split(separator: "\n").map(String.init))
        for expected in [
            #"pyroscope_relay_request_duration_seconds_bucket{le="0.00005"} 1"#,
            #"pyroscope_relay_request_duration_seconds_bucket{le="0.00025"} 1"#,
            #"pyroscope_relay_request_duration_seconds_bucket{le="0.0005"} 2"#,
            #"pyroscope_relay_request_duration_seconds_bucket{le="0.0025"} 3"#,
            #"pyroscope_relay_request_duration_seconds_bucket{le="1.0"} 3"#,
            #"pyroscope_relay_request_duration_seconds_bucket{le="+Inf"} 4"#,
            "pyroscope_relay_request_duration_seconds_count 4",
        ] {
            #expect(lines.contains(expected), "missing \(expected)")
        }
    }

    @Test func statsLineCarriesCountersLatenciesAndValidEMF() async throws {
        try await RecordingRemote.with { remote in
            let relay = try RelayProcess(
                environment: RelayBinaryTests.devEnvironment(
                    remote: remote,
                    [
                        "PYROSCOPE_LOG_FORMAT": "json", "PYROSCOPE_STATS_INTERVAL": "200ms", "PYROSCOPE_EMF_NAMESPACE": "PyroscopeRelay",
                        "AWS_LAMBDA_FUNCTION_NAME": "checkout-api",
                    ]))
            let port = try #require(await relay.listeningPort())
            for index in 0..<3 { #expect(await rawPost(port: port, body: "u\(index)") == 200) }
            await remote.waitForRequests(3)
            let line = try #require(await relay.waitForLine { $0.contains(#""phase":"interval""#) && $0.contains(#""delivered":3"#) })
            // Nothing changes any more: no further interval lines (awaited for four intervals).
            let isInterval: @Sendable (String) -> Bool = { $0.contains(#""msg":"relay stats""#) && $0.contains(#""phase":"interval""#) }
            let before = relay.output.filter(isInterval).count
            _ = await relay.waitForLines(before + 1, timeout: .milliseconds(800), isInterval)
            let intervalLines = relay.output.filter { $0.contains(#""msg":"relay stats""#) && $0.contains(#""phase":"interval""#) }
            relay.signal(SIGTERM)
            #expect(await relay.waitForExit() == 0)
            #expect(intervalLines.filter { $0.contains(#""delivered":3"#) }.count == 1, "logged only when something changed")
            #expect(relay.output.contains { $0.contains(#""msg":"relay stats""#) && $0.contains(#""phase":"shutdown""#) })

            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            for field in [
                "received", "accepted", "delivered", "dropped", "retries", "upload_p50_ms", "upload_p99_ms", "answer_p99_ms",
                "dropped_queue_full", "dropped_max_retries",
            ] {
                #expect(object[field] is NSNumber, "\(field) is a number")
            }
            #expect((object["upload_p99_ms"] as? Double ?? 0) > 0)
            // EMF rules: at most 100 metrics, valid units, every metric and dimension a top-level key.
            let aws = try #require(object["_aws"] as? [String: Any])
            #expect(aws["Timestamp"] is NSNumber)
            let directive = try #require((aws["CloudWatchMetrics"] as? [[String: Any]])?.first)
            #expect(directive["Namespace"] as? String == "PyroscopeRelay")
            let dimensions = try #require(directive["Dimensions"] as? [[String]])
            #expect(dimensions == [["FunctionName"]])
            #expect(object["FunctionName"] as? String == "checkout-api")
            let metrics = try #require(directive["Metrics"] as? [[String: String]])
            #expect(!metrics.isEmpty && metrics.count <= 100)
            let units: Set<String> = ["Count", "Bytes", "Milliseconds", "Seconds", "Percent", "None"]
            for metric in metrics {
                let name = try #require(metric["Name"])
                #expect(units.contains(metric["Unit"] ?? ""), "unit of \(name)")
                #expect(object[name] is NSNumber, "\(name) present as a top-level number")
            }
        }
    }
}
