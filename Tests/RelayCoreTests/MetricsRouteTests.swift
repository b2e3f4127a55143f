import RelayCore
import RelayTestSupport
import Testing

@Suite struct MetricsRouteTests {
    @Test func metricsReflectAKnownSequenceOfEventsAndAreNeverRelayed() async throws {
        try await RecordingRemote.with(respond: { request in request.uri.hasPrefix("/bad") ? .status(.badRequest) : .status(.ok) }) { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote) { $0.maxBodyBytes = 10 }) { relay in
                let connection = try RawConnection(port: relay.port)
                for path in ["/ingest", "/push", "/bad"] {
                    try connection.send("POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")
                    #expect(connection.readResponse()?.status == 200)
                }
                await relay.pipeline.flush()
                let tooLarge = try RawConnection(port: relay.port)
                try tooLarge.send("POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
                #expect(tooLarge.readResponse()?.status == 413)

                try connection.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                let answer = try #require(connection.readResponse())
                #expect(answer.status == 200)
                #expect(answer.headers.contains { $0.0 == "content-type" && $0.1.hasPrefix("text/plain; version=0.0.4") })
                let text = String(decoding: answer.body, as: UTF8.self)
                let lines = Set(text.split(separator: "\n").map(String.init))
                for expected in [
                    "# HELP pyroscope_relay_uploads_received_total Uploads whose whole body the relay read from a profiler.",
                    "# TYPE pyroscope_relay_uploads_received_total counter",
                    "pyroscope_relay_uploads_received_total 3",
                    "pyroscope_relay_uploads_accepted_total 3",
                    "pyroscope_relay_uploads_delivered_total 2",
                    "pyroscope_relay_upstream_sent_bytes_total 8",
                    "pyroscope_relay_uploads_too_large_total 1",
                    "pyroscope_relay_malformed_requests_total 0",
                    #"pyroscope_relay_uploads_dropped_total{reason="rejected_4xx"} 1"#,
                    #"pyroscope_relay_uploads_dropped_total{reason="queue_full"} 0"#,
                    "pyroscope_relay_queue_items 0.0",
                    "pyroscope_relay_uploads_in_flight 0.0",
                ] {
                    #expect(lines.contains(expected), "missing: \(expected)\n\(text)")
                }
                #expect(remote.received.allSatisfy { !$0.uri.hasPrefix("/metrics") })
                #expect(remote.received.count == 3)
            }
        }
    }
}
