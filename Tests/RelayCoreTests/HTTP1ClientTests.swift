import NIOCore
import NIOHTTP1
import NIOPosix
import RelayTestSupport
import Testing

@testable import RelayCore

/// The relay's own HTTP/1.1 client against a real NIO server (`RecordingRemote`): pooling,
/// the dead-connection retry, deadlines, body limits, discard, shutdown and cancellation.
/// TLS, proxies and early answers are covered end to end with nginx, tinyproxy and Python
/// servers (TLSBinaryTests, ProxyBinaryTests, EarlyUpstreamAnswerTests).
@Suite struct HTTP1ClientTests {
    static func withClient<T>(
        _ configuration: HTTP1ClientConfiguration = .init(), _ body: (HTTP1Client) async throws -> T
    ) async throws -> T {
        let client = HTTP1Client(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
        do {
            let result = try await body(client)
            await client.shutdown()
            return result
        } catch {
            await client.shutdown()
            throw error
        }
    }

    static func post(_ remote: RecordingRemote, _ path: String = "/ingest", body: String = "profile") -> HTTP1Request {
        HTTP1Request(method: .POST, url: remote.address + path, body: ByteBuffer(string: body))
    }

    @Test func sequentialRequestsShareOneKeepAliveConnection() async throws {
        try await RecordingRemote.with { remote in
            try await Self.withClient { client in
                for index in 0..<5 {
                    let response = try await client.execute(Self.post(remote, body: "upload-\(index)"), deadline: .now() + .seconds(10))
                    #expect(response.status == .ok)
                }
                let received = remote.received
                #expect(received.map(\.indexOnConnection) == [1, 2, 3, 4, 5], "one connection, reused")
                #expect(received.map { String(decoding: $0.body, as: UTF8.self) } == (0..<5).map { "upload-\($0)" })
                #expect(received.allSatisfy { $0.value("content-length") == "8" && $0.value("host") == "127.0.0.1:\(remote.port)" })
            }
        }
    }

    @Test func aPooledConnectionThatDiesBeforeAnsweringIsRetriedOnceOnAFreshOneWhenAllowed() async throws {
        // The second request on any connection finds it dead: closed without an answer.
        try await RecordingRemote.with(respond: { $0.indexOnConnection == 2 ? .reset : .status(.ok) }) { remote in
            try await Self.withClient(.init(retriesDeadPooledConnection: true)) { client in
                let first = try await client.execute(Self.post(remote), deadline: .now() + .seconds(10))
                let second = try await client.execute(Self.post(remote), deadline: .now() + .seconds(10))
                #expect(first.status == .ok && second.status == .ok)
                #expect(remote.received.map(\.indexOnConnection) == [1, 2, 1], "the dead one, then once on a fresh connection")
            }
        }
    }

    @Test func withoutTheRetryADeadPooledConnectionIsTheCallersToHandle() async throws {
        try await RecordingRemote.with(respond: { $0.indexOnConnection == 2 ? .reset : .status(.ok) }) { remote in
            try await Self.withClient(.init(retriesDeadPooledConnection: false)) { client in
                let first = try await client.execute(Self.post(remote), deadline: .now() + .seconds(10))
                #expect(first.status == .ok)
                do {
                    _ = try await client.execute(Self.post(remote), deadline: .now() + .seconds(10))
                    Issue.record("a connection closed without an answer answered")
                } catch {
                    #expect(HTTP1Client.isDeadConnection(error), "\(error)")
                    #expect(UpstreamAttemptCause(error: error) == .connection)
                }
                #expect(remote.received.count == 2, "sent once, not retried")
                let third = try await client.execute(Self.post(remote), deadline: .now() + .seconds(10))
                #expect(third.status == .ok, "the next connects anew")
            }
        }
    }

    @Test func anAnswerSlowerThanTheDeadlineIsATimeout() async throws {
        let gate = RecordingRemote.Gate()
        try await RecordingRemote.with(respond: { _ in .held(gate, .ok) }) { remote in
            try await Self.withClient { client in
                do {
                    _ = try await client.execute(Self.post(remote), deadline: .now() + .milliseconds(200))
                    Issue.record("answered although the remote holds the answer")
                } catch let error as HTTP1ClientError {
                    #expect(error.code == .deadlineExceeded)
                    #expect(UpstreamAttemptCause(error: error) == .timeout)
                }
                gate.open()
            }
        }
    }

    @Test func aBodyOverTheLimitKeepsItsStartAndTheConnection() async throws {
        let long = String(repeating: "e", count: 100_000)
        try await RecordingRemote.with(respond: { _ in .status(.badRequest, body: long) }) { remote in
            try await Self.withClient { client in
                let first = try await client.execute(Self.post(remote), deadline: .now() + .seconds(10), bodyLimit: 16)
                #expect(first.status == .badRequest && first.bodyTruncated && String(buffer: first.body) == String(repeating: "e", count: 16))
                let second = try await client.execute(Self.post(remote), deadline: .now() + .seconds(10), bodyLimit: 1 << 20)
                #expect(!second.bodyTruncated && second.body.readableBytes == long.utf8.count)
                #expect(remote.received.map(\.indexOnConnection) == [1, 2], "the rest was read, so the connection served again")
            }
        }
    }

    /// An API answer longer than its bound is refused, not handed over cut short.
    @Test func aWholeAnswerOverItsBoundIsAnError() async throws {
        try await RecordingRemote.with(respond: { _ in .status(.ok, body: String(repeating: "a", count: 2_000)) }) { remote in
            try await Self.withClient { client in
                let whole = try await client.executeWhole(Self.post(remote), deadline: .now() + .seconds(10), maxBodyBytes: 2_000)
                #expect(whole.body.readableBytes == 2_000)
                do {
                    _ = try await client.executeWhole(Self.post(remote), deadline: .now() + .seconds(10), maxBodyBytes: 1_999)
                    Issue.record("a body over the bound was handed over")
                } catch let error as HTTP1ClientError {
                    #expect(error.code == .invalidResponse && error.message.contains("127.0.0.1:\(remote.port)"), "\(error)")
                }
            }
        }
    }

    @Test func discardedConnectionsAreNotUsedAgain() async throws {
        try await RecordingRemote.with { remote in
            try await Self.withClient { client in
                _ = try await client.execute(Self.post(remote), deadline: .now() + .seconds(10))
                client.discardConnections()
                _ = try await client.execute(Self.post(remote), deadline: .now() + .seconds(10))
                #expect(remote.received.map(\.indexOnConnection) == [1, 1])
            }
        }
    }

    @Test func afterShutdownRequestsFailAtOnce() async throws {
        try await RecordingRemote.with { remote in
            let client = HTTP1Client(eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
            _ = try await client.execute(Self.post(remote), deadline: .now() + .seconds(10))
            await client.shutdown()
            await #expect(throws: HTTP1ClientError.self) { try await client.execute(Self.post(remote), deadline: .now() + .seconds(10)) }
            #expect(remote.received.count == 1)
        }
    }

    @Test func cancellingTheCallerEndsItsRequest() async throws {
        let gate = RecordingRemote.Gate()
        try await RecordingRemote.with(respond: { _ in .held(gate, .ok) }) { remote in
            try await Self.withClient { client in
                let request = Task { try await client.execute(Self.post(remote), deadline: nil) }
                _ = await remote.waitForRequests(1)
                request.cancel()
                let result = await request.result
                guard case .failure(let error as HTTP1ClientError) = result else {
                    Issue.record("a cancelled request ended with \(result)")
                    return
                }
                #expect(error.code == .cancelled)
                gate.open()
            }
        }
    }

    /// What could smuggle a header or a second request is refused before it is written,
    /// and the message names the header, not its value.
    @Test(arguments: [
        (["X-Token": "secret-value\r\nX-Injected: 1"], "/ingest"), (["X-Token": "secret-value\u{0}"], "/ingest"),
        (["Bad Name": "v"], "/ingest"), ([:], "/ingest?name=a b"), ([:], "/in\ngest"),
    ])
    func headsThatCannotGoOnTheWireAreRefused(headers: [String: String], path: String) async throws {
        try await RecordingRemote.with { remote in
            try await Self.withClient { client in
                var request = Self.post(remote, path)
                for (name, value) in headers { request.headers.add(name: name, value: value) }
                do {
                    _ = try await client.execute(request, deadline: .now() + .seconds(10))
                    Issue.record("sent")
                } catch let error as HTTP1ClientError {
                    #expect(error.code == .invalidRequest && !error.message.contains("secret-value"), "\(error)")
                }
                #expect(remote.received.isEmpty)
                let fine = try await client.execute(Self.post(remote), deadline: .now() + .seconds(10))
                #expect(fine.status == .ok && remote.received.count == 1)
            }
        }
    }

    @Test func anUnusableURLIsRefusedBeforeAnyConnection() async throws {
        try await Self.withClient { client in
            for url in ["ftp://example.com/", "http://", "localhost:4040/ingest", "http://host:99999/"] {
                await #expect(throws: HTTP1ClientError.self, "\(url)") { try await client.execute(HTTP1Request(method: .GET, url: url)) }
            }
        }
    }

    @Test(arguments: [
        ("http://127.0.0.1:4040/ingest?name=a", "http", "127.0.0.1", 4040, "127.0.0.1:4040", "/ingest?name=a"),
        ("https://profiles.grafana.net", "https", "profiles.grafana.net", 443, "profiles.grafana.net", "/"),
        ("HTTPS://User:pw@Example.COM:8443/base/", "https", "example.com", 8443, "Example.COM:8443", "/base/"),
        ("http://[::1]:9000?x=1#frag", "http", "::1", 9000, "[::1]:9000", "/?x=1"),
        ("http://sm.local/a#b", "http", "sm.local", 80, "sm.local", "/a"),
    ])
    func urlsAreSplitForSending(url: String, scheme: String, host: String, port: Int, authority: String, target: String) throws {
        let parsed = try #require(RequestURL(url))
        #expect(parsed.origin.scheme.rawValue == scheme && parsed.origin.host == host && parsed.origin.port == port)
        #expect(parsed.origin.authority == authority && parsed.pathAndQuery == target)
    }

    @Test func ipLiteralsGetNoServerNameIndication() throws {
        #expect(try #require(RequestURL("https://127.0.0.1/")).origin.serverNameIndication == nil)
        #expect(try #require(RequestURL("https://[::1]/")).origin.serverNameIndication == nil)
        #expect(try #require(RequestURL("https://pyroscope.test/")).origin.serverNameIndication == "pyroscope.test")
    }

    /// Basic credentials as RFC 7617 §2 writes them (base64 itself: RelayJSONTests).
    @Test func basicCredentialsAsRFC7617() {
        #expect(basicAuthorizationValue(user: "Aladdin", password: "open sesame") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
    }
}
