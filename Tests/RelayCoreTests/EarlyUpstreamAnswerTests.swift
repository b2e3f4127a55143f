import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
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

    /// No head over 48 KiB is sent (`UpstreamHeadGuard`): it is answered as the remote would,
    /// 431, and dropped as a rejection; a large head under it goes out on a pooled connection.
    @Test func headTooLargeToSendSafelyIsRefusedBeforeSendingOnAPooledConnection() async throws {
        try await RecordingRemote.with { remote in
            try await Self.withUploader { uploader in
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
            }
        }
    }

    /// The real uploader on its own client, shut down on every path.
    static func withUploader(_ body: (HTTPClientUploader) async throws -> Void) async throws {
        let uploader = HTTPClientUploader(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, timeout: .seconds(10), workers: 1)
        do {
            try await body(uploader)
        } catch {
            await uploader.shutdown()
            throw error
        }
        await uploader.shutdown()
    }

    /// A remote that, like nginx with its 8 KiB request-line buffer, answers 414 as soon as
    /// 8 KiB of a head have arrived without its end, and closes without reading the rest.
    static let headRefusingServer = #"""
        import re, signal, socket, threading
        # Ignored signals are inherited: the test runner's must not keep this server alive.
        for sig in (signal.SIGTERM, signal.SIGALRM): signal.signal(sig, signal.SIG_DFL)
        signal.alarm(60)
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0)); s.listen(16); print(s.getsockname()[1], flush=True)
        def serve(c):
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf[:8192] and len(buf) < 8192:
                    d = c.recv(65536)
                    if not d: c.close(); return
                    buf += d
                end = buf.find(b"\r\n\r\n")
                if end < 0 or end >= 8192:
                    c.sendall(b"HTTP/1.1 414 URI Too Long\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo long\n"); c.close(); return
                n = int((re.search(rb"(?i)content-length: *(\d+)", buf[:end]) or [0, b"0"])[1]); buf = buf[end + 4:]
                while len(buf) < n:
                    d = c.recv(65536)
                    if not d: c.close(); return
                    buf += d
                buf = buf[n:]; c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        while True:
            c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
        """#

    @Test(arguments: [false, true])
    func remoteAnswering414BeforeReadingTheWholeHeadIsARejection(pooled: Bool) async throws {
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        server.arguments = ["-c", Self.headRefusingServer]
        let output = Pipe()
        server.standardOutput = output
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { kill(server.processIdentifier, SIGKILL) }
        let port = try #require(
            await offCooperativePool {
                Int(String(decoding: output.fileHandleForReading.availableData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
            })
        try await Self.withUploader { uploader in
            func request(query: String, body: Int) -> UpstreamRequest {
                UpstreamRequest(
                    method: .POST, url: "http://127.0.0.1:\(port)/ingest?q=\(query)", headers: ["Host": "127.0.0.1"],
                    body: ByteBuffer(repeating: UInt8(ascii: "b"), count: body))
            }
            if pooled { #expect(try await uploader.send(request(query: "small", body: 10)).status == .ok) }
            for (size, body) in [(20 << 10, 10), (45 << 10, 10), (45 << 10, 4 << 20)] {
                let answer = try await uploader.send(request(query: String(repeating: "q", count: size), body: body))
                #expect(answer.status == .uriTooLong, "\(size) B query, \(body) B body")
            }
            #expect(try await uploader.send(request(query: "after", body: 10)).status == .ok)
        }
    }

    /// A header value no server may receive (a line break in a token from a secret) is
    /// refused before sending, and the error describing it does not carry the value.
    @Test func headerValuesNeverAppearInTheFailureDescribingThem() async throws {
        try await RecordingRemote.with { remote in
            try await Self.withUploader { uploader in
                let request = UpstreamRequest(
                    method: .POST, url: "\(remote.address)/ingest?name=app",
                    headers: ["Host": "127.0.0.1", "Authorization": "Bearer sekrit-TOKEN-123\n"], body: ByteBuffer(string: "body"))
                do {
                    let answer = try await uploader.send(request)
                    Issue.record("a head with a line break in a value was sent and answered \(answer.status)")
                } catch {
                    #expect(!"\(error)".contains("sekrit"), "\(error)")
                    #expect(!HTTPClientUploader.describe(error).contains("sekrit"))
                }
                #expect(remote.received.isEmpty, "nothing reached the remote")
            }
        }
    }
}
