import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import RelayTestSupport
import Testing

@testable import RelayCore

/// Nothing a server sends may end the process or be miscounted (issue 18, item 1): an
/// answer that comes before the request is written whole is the outcome, a 4xx is
/// `rejected_4xx` and never `connection_error`, on fresh and on pooled connections.
@Suite struct EarlyUpstreamAnswerTests {
    static func attempts(_ relay: TestRelay, outcome: String) -> Double {
        let text = String(decoding: relay.counters.metrics.exposition(), as: UTF8.self)
        return text.split(separator: "\n").filter { $0.hasPrefix("pyroscope_relay_upstream_attempts_total{outcome=\"\(outcome)\"") }
            .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
    }

    /// The remote answers 413 at the head of every `/big` upload, without reading its
    /// body, and closes, as Python's `http.server` and nginx do.
    @Test(arguments: [false, true])
    func earlyRejectionWhileTheBodyIsWrittenIsRejected4xx(pooled: Bool) async throws {
        try await RecordingRemote.with(answerEarly: { $0.uri.hasPrefix("/big") ? .payloadTooLarge : nil }) { remote in
            let configuration = TestRelay.configuration(remote: remote) {
                $0.workers = 1
                $0.retryPolicy = DeliveryTests.quickRetries
            }
            try await TestRelay.with(configuration) { relay in
                if pooled {
                    // A small upload first leaves a keep-alive connection in the pool.
                    #expect(await rawPost(port: relay.port, path: "/small", body: "s") == 200)
                    await relay.pipeline.flush()
                }
                let big = String(repeating: "b", count: 4 << 20)  // more than the socket buffers hold
                #expect(await rawPost(port: relay.port, path: "/big", body: big) == 200)
                await relay.pipeline.flush()
                let snapshot = relay.counters.snapshot
                #expect(snapshot.dropped == [.rejected4xx: 1], "\(snapshot.dropped)")
                #expect(snapshot.retries == 0, "a rejection is final")
                #expect(Self.attempts(relay, outcome: "connection_error") == 0)
                #expect(Self.attempts(relay, outcome: "error_status") == 1)
                #expect(remote.received.filter { $0.uri == "/big" }.count == 1)
            }
        }
    }

    /// async-http-client 1.37 traps on a request head over 64 KiB sent on a pooled
    /// connection with a body (HTTPRequestStateMachine.swift:813). No such head is sent:
    /// it is answered as the remote would, 431, and dropped as a rejection.
    @Test func headTooLargeToSendSafelyIsRefusedBeforeSendingOnAPooledConnection() async throws {
        try await RecordingRemote.with { remote in
            let client = HTTPClient(
                eventLoopGroup: .singletonMultiThreadedEventLoopGroup,
                configuration: HTTPClientUploader.clientConfiguration(timeout: .seconds(10), workers: 1))
            let uploader = HTTPClientUploader(client: client, timeout: .seconds(10))
            func request(query: String) -> UpstreamRequest {
                UpstreamRequest(
                    method: .POST, url: "\(remote.address)/ingest?name=app&q=\(query)", headers: ["Host": "127.0.0.1"],
                    body: ByteBuffer(string: "body"))
            }
            let first = try await uploader.send(request(query: "small"))
            #expect(first.status == .ok)
            let huge = try await uploader.send(request(query: String(repeating: "q", count: 70 << 10)))
            #expect(huge.status == .requestHeaderFieldsTooLarge && huge.bodyExcerpt.contains("not sent"))
            let under = try await uploader.send(request(query: String(repeating: "q", count: 40 << 10)))
            #expect(under.status == .ok, "a large head under the guard goes out on the pooled connection")
            #expect(remote.received.count == 2)
            try await client.shutdown()
        }
    }

    @Test func errorsThatCarryHeaderValuesAreDescribedWithoutThem() {
        let error = HTTPClientError.invalidHeaderFieldValues(["Bearer sekrit-TOKEN-123\n"])
        let text = HTTPClientUploader.describe(error)
        #expect(!text.contains("sekrit") && text.contains("Invalid header field values"))
        #expect(HTTPClientUploader.describe(HTTPClientError.remoteConnectionClosed).contains("Remote connection closed"))
    }
}
