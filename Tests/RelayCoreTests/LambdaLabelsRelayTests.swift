import Foundation
import RelayTestSupport
import Testing

@testable import RelayCore

/// PYROSCOPE_LAMBDA_LABELS through the in-process relay: recorded client requests sent
/// byte for byte, what the remote receives read back by Google's protobuf. (With the
/// setting off, `FixtureReplayTests` checks that every fixture arrives as sent.)
@Suite struct LambdaLabelsRelayTests {
    static let labels = LambdaLabels(sanitizing: [
        LambdaLabel(name: "faas_name", value: "probe-fn"), LambdaLabel(name: "faas_version", value: "$LATEST"),
        LambdaLabel(name: "cloud_region", value: "eu-central-1"),
        // The fixture's profiler set `region` itself: the client's value stays.
        LambdaLabel(name: "region", value: "relay-region"),
    ])
    static let session = "__session_id__%3Defcdab8967452301"

    static func rawRequest(_ method: String, _ target: String, headers: [(String, String)], body: [UInt8]) -> [UInt8] {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1:4040\r\n"
        for (name, value) in headers + [("Content-Length", "\(body.count)")] { head += "\(name): \(value)\r\n" }
        return Array((head + "\r\n").utf8) + body
    }

    static func send(_ bytes: [UInt8], to relay: TestRelay) throws -> Int? {
        let connection = try RawConnection(port: relay.port)
        try connection.send(bytes)
        return connection.readResponse()?.status
    }

    @Test func pushFixtureArrivesWithTheLabelsAndTheClientsOwnValueKept() async throws {
        let fixture = try ClientFixture.load("pyroscope-io-1.4.0-push-periodic")
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote) { $0.labels = Self.labels }) { relay in
                #expect(try Self.send(fixture.rawRequest, to: relay) == 200)
                let received = try #require(await remote.waitForRequests(1).first)
                #expect(received.uri == fixture.rawPath)
                #expect(received.value("content-encoding") == "gzip")
                #expect(received.value("content-length") == "\(received.body.count)")
                let decoded = try await PushBodies.decode([fixture.body, received.body])
                let sent = try #require(decoded[0].series)
                let arrived = try #require(decoded[1].series, "\(decoded[1].error ?? "")")
                #expect(arrived.count == sent.count)
                for (before, after) in zip(sent, arrived) {
                    #expect(after.samples == before.samples, "samples untouched")
                    #expect(Array(after.labels.prefix(before.labels.count)) == before.labels, "the client's labels first, as sent")
                    #expect(
                        Array(after.labels.dropFirst(before.labels.count))
                            == [["faas_name", "probe-fn"], ["faas_version", "$LATEST"], ["cloud_region", "eu-central-1"]])
                    #expect(after.labels.filter { $0[0] == "region" } == [["region", "eu-west-1"]], "the client's region wins")
                }
                let exposition = String(decoding: relay.counters.metrics.exposition(), as: UTF8.self)
                #expect(exposition.contains(#"pyroscope_relay_labels_not_applied_total{reason="malformed_push_body"} 0"#))
            }
        }
    }

    @Test func legacyIngestFixtureGainsTheLabelsInItsNameAndKeepsItsBody() async throws {
        let fixture = try ClientFixture.load("pyroscope-io-0.8.16-ingest-legacy")
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote) { $0.labels = Self.labels }) { relay in
                #expect(try Self.send(fixture.rawRequest, to: relay) == 200)
                let received = try #require(await remote.waitForRequests(1).first)
                let name =
                    "name=probe.app%7B\(Self.session)%2Ccloud_region%3Deu-central-1%2Cfaas_name%3Dprobe-fn%2Cfaas_version%3D%24LATEST%2Cregion%3Drelay-region%7D"
                #expect(received.uri == fixture.rawPath.replacingFirst("name=probe.app", with: name))
                #expect(received.body == fixture.body)
            }
        }
    }

    /// As pyroscope-go and the Java agent send: multipart with tags in the name; only the
    /// name changes, the client's `region` keeps its value, the body and boundary stay.
    @Test func multipartIngestKeepsItsBodyAndTheClientsLabel() async throws {
        let boundary = "b0e1d2c3"
        let body =
            Array(
                "--\(boundary)\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"profile.pprof\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                    .utf8) + [0x1f, 0x8b, 0, 1, 2, 3] + Array("\r\n--\(boundary)--\r\n".utf8)
        let target = "/ingest?name=svc.cpu%7Bregion%3Dus-east-1%7D&from=1700000000&until=1700000010&spyName=gospy&sampleRate=100&format=pprof"
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote) { $0.labels = Self.labels }) { relay in
                let request = Self.rawRequest(
                    "POST", target, headers: [("Content-Type", "multipart/form-data; boundary=\(boundary)"), ("User-Agent", "Go-http-client/1.1")], body: body)
                #expect(try Self.send(request, to: relay) == 200)
                let received = try #require(await remote.waitForRequests(1).first)
                #expect(
                    received.uri
                        == "/ingest?name=svc.cpu%7B\(Self.session)%2Ccloud_region%3Deu-central-1%2Cfaas_name%3Dprobe-fn%2Cfaas_version%3D%24LATEST%2Cregion%3Dus-east-1%7D&from=1700000000&until=1700000010&spyName=gospy&sampleRate=100&format=pprof"
                )
                #expect(received.body == body)
                #expect(received.value("content-type") == "multipart/form-data; boundary=\(boundary)")
            }
        }
    }

    @Test func malformedPushBodyArrivesUnchangedCountedAndSaidOnce() async throws {
        let recording = LogRecording()
        let garbage = Array("this is not a PushRequest".utf8)
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote) { $0.labels = Self.labels }, logger: recording.logger(level: .warning)) {
                relay in
                for _ in 0..<2 {
                    let request = Self.rawRequest(
                        "POST", "/push.v1.PusherService/Push", headers: [("Content-Type", "application/proto")], body: garbage)
                    let status = try Self.send(request, to: relay)
                    #expect(status == 200)
                }
                await relay.pipeline.flush()
                let received = remote.received
                #expect(received.map(\.body) == [garbage, garbage], "relayed as sent, never dropped")
                #expect(relay.counters.snapshot.delivered == 2)
                let exposition = String(decoding: relay.counters.metrics.exposition(), as: UTF8.self)
                #expect(exposition.contains(#"pyroscope_relay_labels_not_applied_total{reason="malformed_push_body"} 2"#))
                #expect(exposition.contains(#"pyroscope_relay_labels_not_applied_total{reason="unsupported_content_type"} 0"#))
            }
        }
        let warnings = recording.all.filter { $0.message.contains("PYROSCOPE_LAMBDA_LABELS") }
        #expect(warnings.count == 2, "each said, within the rate limit")
        #expect(warnings.allSatisfy { $0.level == .warning && $0.metadata["reason"] == "malformed_push_body" })
    }

    /// The spool keeps the client's bytes: a relay restarted with other label values sends
    /// its own values, once, not the first relay's (which it would keep, as a client's,
    /// had the first relay stored a labelled body).
    @Test func spooledUploadsCarryTheLabelsOnceAfterARestart() async throws {
        let directory = NSTemporaryDirectory() + "labels-spool-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let push = try ClientFixture.load("pyroscope-io-1.4.0-push-periodic")
        let ingest = try ClientFixture.load("pyroscope-io-0.8.16-ingest-legacy")
        func labels(version: String) -> LambdaLabels {
            LambdaLabels(sanitizing: [LambdaLabel(name: "faas_name", value: "probe-fn"), LambdaLabel(name: "faas_version", value: version)])
        }
        func spooling(_ remote: RecordingRemote, version: String) -> RelayConfiguration {
            TestRelay.configuration(remote: remote) {
                $0.labels = labels(version: version)
                $0.spoolDirectory = directory
                $0.queueMaxBytes = 1  // everything goes to the spool
                $0.workers = 1
                $0.drainTimeout = .milliseconds(300)
                $0.retryPolicy = RetryPolicy(initialBackoff: .seconds(60), maxBackoff: .seconds(60), maxAttempts: 100)
            }
        }
        try await RecordingRemote.with(respond: { _ in .status(.serviceUnavailable) }) { down in
            try await TestRelay.with(spooling(down, version: "1")) { relay in
                // What waits in memory or is in flight at a graceful shutdown is dropped, not
                // spooled: fillers take those places, the fixtures go to the spool.
                var statuses: [Int?] = []
                for index in 0..<3 { statuses.append(await DeliveryTests.post(relay, "filler-\(index)", path: "/filler")) }
                statuses += [try Self.send(push.rawRequest, to: relay), try Self.send(ingest.rawRequest, to: relay)]
                #expect(statuses == [200, 200, 200, 200, 200])
                _ = await down.waitForRequests(1)
            }
        }
        try await RecordingRemote.with { remote in
            try await TestRelay.with(spooling(remote, version: "2")) { relay in
                await relay.pipeline.flush()
                let received = remote.received.filter { !$0.uri.hasPrefix("/filler") }
                try #require(received.count == 2)
                let pushed = try #require(received.first { $0.uri.hasPrefix("/push") })
                let decoded = try #require(try await PushBodies.decode([pushed.body])[0].series)
                for series in decoded {
                    #expect(series.labels.filter { $0[0] == "faas_version" } == [["faas_version", "2"]])
                    #expect(series.labels.filter { $0[0] == "faas_name" }.count == 1)
                }
                let ingested = try #require(received.first { $0.uri.hasPrefix("/ingest") })
                #expect(ingested.uri.contains("faas_version%3D2%7D"))
                #expect(!ingested.uri.contains("faas_version%3D1"))
                #expect(ingested.body == ingest.body)
            }
        }
    }
}
