import NIOCore
import NIOHTTP1
import NIOPosix
import RelayTestSupport
import Testing

@testable import RelayCore

@Suite struct IngressTests {
    @Test func chunkedBodyIsReassembledAndRelayed() async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let connection = try RawConnection(port: relay.port)
                try connection.send(
                    "POST /ingest?name=app&format=folded HTTP/1.1\r\nHost: localhost:4040\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfoo;b\r\n6\r\nar 10\n\r\n0\r\n\r\n"
                )
                #expect(connection.readResponse()?.status == 200)
                let received = try #require(await remote.waitForRequests(1).first)
                #expect(received.body == Array("foo;bar 10\n".utf8))
                #expect(received.values("transfer-encoding").isEmpty || received.values("content-length") == ["11"])
            }
        }
    }

    @Test func keepAliveServesManyRequestsOnOneConnection() async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let connection = try RawConnection(port: relay.port)
                for index in 0..<5 {
                    try connection.send("POST /push/\(index) HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n\(index)")
                    #expect(connection.readResponse()?.status == 200)
                }
                let received = await remote.waitForRequests(5)
                #expect(Set(received.map(\.uri)) == Set((0..<5).map { "/push/\($0)" }))
            }
        }
    }

    @Test func anyMethodAndPathIsRelayedButHealthzIsAnsweredLocally() async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let connection = try RawConnection(port: relay.port)
                try connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                let health = try #require(connection.readResponse())
                #expect(health.status == 200 && health.body == Array("ok\n".utf8))
                try connection.send("PUT /custom/thing?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
                #expect(connection.readResponse()?.status == 200)
                try connection.send("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                #expect(connection.readResponse()?.status == 200)
                let received = await remote.waitForRequests(2)
                #expect(received.map(\.method).sorted() == ["POST", "PUT"])
                #expect(Set(received.map(\.uri)) == ["/custom/thing?x=1", "/healthz"])
                #expect(relay.counters.snapshot.received == 2)
            }
        }
    }

    @Test func declaredBodyOverTheLimitGets413AndIsNotRelayed() async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote) { $0.maxBodyBytes = 100 }) { relay in
                let connection = try RawConnection(port: relay.port)
                try connection.send("POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n" + String(repeating: "a", count: 101))
                let answer = try #require(connection.readResponse())
                #expect(answer.status == 413)
                #expect(answer.headers.contains { $0.0 == "connection" && $0.1 == "close" })
                #expect(connection.isClosedByPeer())

                // Exactly at the limit is fine.
                let second = try RawConnection(port: relay.port)
                try second.send("POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + String(repeating: "b", count: 100))
                #expect(second.readResponse()?.status == 200)
                let received = await remote.waitForRequests(1)
                #expect(received.count == 1 && received[0].body.count == 100)
                #expect(relay.counters.snapshot.tooLarge == 1)
            }
        }
    }

    @Test func chunkedBodyGrowingOverTheLimitGets413() async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote) { $0.maxBodyBytes = 10 }) { relay in
                let connection = try RawConnection(port: relay.port)
                try connection.send("POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n")
                #expect(connection.readResponse()?.status == 413)
                #expect(relay.counters.snapshot.tooLarge == 1)
                #expect(relay.counters.snapshot.received == 0)
            }
            #expect(remote.received.isEmpty)
        }
    }

    @Test(arguments: [
        "GARBAGE\r\n\r\n",
        "POST /x HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        "POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
        "POST /x HTTP/1.1\r\nBad Header Name: v\r\n\r\n",
        "\u{0}\u{1}\u{2}\u{3}\r\n\r\n",
    ])
    func malformedRequestGets400AndTheRelayKeepsServing(request: String) async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let bad = try RawConnection(port: relay.port)
                try bad.send(request)
                let answer = bad.readResponse()
                #expect(answer?.status == 400)
                #expect(bad.isClosedByPeer())

                let good = try RawConnection(port: relay.port)
                try good.send("POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
                #expect(good.readResponse()?.status == 200)
                #expect(await remote.waitForRequests(1).count == 1)
            }
        }
    }

    @Test func expectContinueGetsAnInterimAnswer() async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let connection = try RawConnection(port: relay.port)
                try connection.send("POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
                try connection.send("abc")
                #expect(connection.readResponse()?.status == 200)
                let received = try #require(await remote.waitForRequests(1).first)
                #expect(received.body == Array("abc".utf8))
                #expect(received.values("expect").isEmpty)
            }
        }
    }

    @Test func fullQueueAnswers503WithRetryAfterAndCountsTheDrop() async throws {
        // The remote holds every request until the posts are done, so the one sender and the
        // two-slot queue fill up however slowly a loaded machine posts; the posts run off the
        // cooperative pool so blocking reads cannot stall the relay's tasks.
        let gate = RecordingRemote.Gate()
        try await RecordingRemote.with(respond: { _ in .held(gate, .ok) }) { remote in
            let configuration = TestRelay.configuration(remote: remote) {
                $0.workers = 1
                $0.queueMaxItems = 2
            }
            try await TestRelay.with(configuration) { relay in
                let port = relay.port
                @Sendable func post(_ index: Int) -> (status: Int, retryAfter: Bool)? {
                    guard let connection = try? RawConnection(port: port),
                        (try? connection.send("POST /push/\(index) HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")) != nil,
                        let answer = connection.readResponse()
                    else { return nil }
                    return (answer.status, answer.headers.contains { $0.0 == "retry-after" && $0.1 == "1" })
                }
                let first = await offCooperativePool { post(0) }
                await remote.waitForRequests(1)  // the sender holds #0
                let rest = await offCooperativePool { (1..<6).map { post($0) } }
                let answers = [first] + rest
                let statuses = answers.map { $0?.status ?? 0 }
                #expect(answers.allSatisfy { $0.map { $0.status != 503 || $0.retryAfter } ?? false }, "503s carry Retry-After")
                #expect(statuses == [200, 200, 200, 503, 503, 503])
                gate.open()
                await relay.pipeline.flush()
                let snapshot = relay.counters.snapshot
                #expect(snapshot.received == 6)
                #expect(snapshot.accepted == 3 && snapshot.delivered == 3)
                #expect(snapshot.dropped == [.queueFull: 3])
            }
        }
    }

    @Test func unusableRemoteRefusesUploadsButKeepsAnswering() async throws {
        try await RecordingRemote.with { remote in
            let configuration = TestRelay.configuration(remote: remote) { $0.remote = nil }
            try await TestRelay.with(configuration) { relay in
                let connection = try RawConnection(port: relay.port)
                try connection.send("POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
                #expect(connection.readResponse()?.status == 503)
                try connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(connection.readResponse()?.status == 200)
                #expect(relay.counters.snapshot.dropped == [.misconfigured: 1])
            }
        }
    }

    @Test func thousandConcurrentUploadsAreDeliveredExactlyOnce() async throws {
        let count = 1000
        try await RecordingRemote.with { remote in
            let configuration = TestRelay.configuration(remote: remote) { $0.queueMaxItems = count }
            try await TestRelay.with(configuration) { relay in
                let client = HTTP1Client(
                    eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                    configuration: .init(connectTimeout: .seconds(60), idleTimeout: .seconds(5), maxIdleConnectionsPerOrigin: 64))
                // Failures are collected, not thrown: the client must be shut down on every path.
                // 64 in flight at a time, as many connections as the client keeps: 1,000
                // connects at once kept the shared event loops busy long enough to starve the
                // timing tests running beside this one.
                let concurrency = 64
                let results = await withTaskGroup(of: Result<UInt, any Error>.self) { group in
                    func upload(_ index: Int) {
                        group.addTask {
                            let request = HTTP1Request(
                                method: .POST, url: "http://127.0.0.1:\(relay.port)/ingest?name=app&n=\(index)", body: ByteBuffer(string: "upload-\(index)"))
                            do {
                                return .success(try await client.execute(request, deadline: .now() + .seconds(30)).status.code)
                            } catch {
                                return .failure(error)
                            }
                        }
                    }
                    for index in 0..<concurrency { upload(index) }
                    var next = concurrency
                    var results: [Result<UInt, any Error>] = []
                    for await result in group {
                        results.append(result)
                        if next < count {
                            upload(next)
                            next += 1
                        }
                    }
                    return results
                }
                await client.shutdown()
                let statuses = results.compactMap { try? $0.get() }
                let failures = results.compactMap { result -> String? in
                    guard case .failure(let error) = result else { return nil }
                    return "\(error)"
                }
                #expect(failures.isEmpty, "\(failures.count) failed: \(Set(failures))")
                #expect(statuses.count == count && statuses.allSatisfy { $0 == 200 })
                await relay.pipeline.flush()
                let received = remote.received
                #expect(received.count == count)
                let bodies = received.map { String(decoding: $0.body, as: UTF8.self) }
                #expect(Set(bodies) == Set((0..<count).map { "upload-\($0)" }), "every upload once, none twice")
                #expect(relay.counters.snapshot.delivered == count)
            }
        }
    }
}
