import Foundation
import NIOCore
import NIOHTTP1
import RelayTestSupport
import Testing

@testable import RelayCore

/// Strict where HTTP is strict, bounded where a client could make the relay send what no
/// server accepts (issue 18, items 1 and 8), with raw sockets for the bytes clients send.
@Suite struct IngressStrictnessTests {
    static func exchange(_ port: Int, _ request: String) -> (status: Int, headers: [(String, String)], body: String, closed: Bool)? {
        guard let connection = try? RawConnection(port: port), (try? connection.send(request)) != nil,
            let answer = connection.readResponse()
        else { return nil }
        // Only an answer that says `Connection: close` is waited on for the close.
        let closing = answer.headers.contains { $0.0 == "connection" && $0.1.lowercased() == "close" }
        return (answer.status, answer.headers, String(decoding: answer.body, as: UTF8.self), closing && connection.isClosedByPeer())
    }

    @Test func targetOverTheLimitGets414AndAHeadOverTheLimitGets431AndNeitherIsRelayed() async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let port = relay.port
                let longQuery = String(repeating: "q", count: 70 << 10)  // the crash's 64 KiB+ query
                let tooLong = await offCooperativePool {
                    Self.exchange(port, "POST /ingest?name=app&x=\(longQuery) HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
                }
                // Past the parser's own bound it stops reading: the answer is 431 either way.
                #expect(tooLong?.status == 431 && tooLong?.closed == true)
                let justOver = String(repeating: "q", count: 8 << 10)
                let target414 = await offCooperativePool {
                    Self.exchange(port, "POST /ingest?x=\(justOver) HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
                }
                #expect(target414?.status == 414 && target414?.body.contains("8192") == true && target414?.closed == true)
                let bigHeader = String(repeating: "h", count: 20 << 10)
                let head431 = await offCooperativePool {
                    Self.exchange(port, "POST /ingest HTTP/1.1\r\nHost: x\r\nX-A: \(bigHeader)\r\nX-B: \(bigHeader)\r\nContent-Length: 1\r\n\r\nx")
                }
                #expect(head431?.status == 431 && head431?.closed == true)
                let manyHeaders = (0..<10_000).map { "X-\($0): v\r\n" }.joined()
                let many = await offCooperativePool { Self.exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\(manyHeaders)\r\n") }
                #expect(many?.status == 431)
                // Just under the limits is relayed.
                let fits = String(repeating: "q", count: 8000)
                #expect(await rawPost(port: port, path: "/ingest?x=\(fits)", body: "ok") == 200)
                let received = await remote.waitForRequests(1)
                #expect(received.count == 1 && received[0].uri.hasSuffix(fits))
                await relay.pipeline.flush()
                #expect(remote.received.count == 1)
            }
        }
    }

    @Test func http11NeedsExactlyOneHost() async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let port = relay.port
                let missing = await offCooperativePool { Self.exchange(port, "POST /ingest HTTP/1.1\r\nContent-Length: 1\r\n\r\nx") }
                #expect(missing?.status == 400 && missing?.body.contains("Host") == true && missing?.closed == true)
                let twice = await offCooperativePool {
                    Self.exchange(port, "POST /ingest HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 1\r\n\r\nx")
                }
                #expect(twice?.status == 400 && twice?.body.contains("more than one Host") == true)
                // HTTP/1.0 may omit it.
                let old = await offCooperativePool { Self.exchange(port, "POST /ingest HTTP/1.0\r\nContent-Length: 2\r\n\r\nok") }
                #expect(old?.status == 200)
                #expect(await remote.waitForRequests(1).count == 1)
                await relay.pipeline.flush()
                #expect(remote.received.count == 1)
            }
        }
    }

    @Test func absoluteFormTargetIsRelayedAsItsPathUnderTheBasePath() async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote, basePath: "/base/pfx")) { relay in
                let port = relay.port
                let answer = await offCooperativePool {
                    Self.exchange(port, "POST http://evil.example/x?name=app HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 1\r\n\r\nx")
                }
                #expect(answer?.status == 200)
                let bare = await offCooperativePool {
                    Self.exchange(port, "POST HTTPS://evil.example:8443?name=b HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 1\r\n\r\nx")
                }
                #expect(bare?.status == 200)
                let received = await remote.waitForRequests(2)
                #expect(Set(received.map(\.uri)) == ["/base/pfx/x?name=app", "/base/pfx?name=b"])
                #expect(!received.contains { $0.uri.contains("evil") })
                for bad in ["evil.example:443", "*", "ftp://evil.example/x", "http:///x", "x/y"] {
                    let refused = await offCooperativePool {
                        Self.exchange(port, "POST \(bad) HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
                    }
                    #expect(refused?.status == 400, "\(bad)")
                }
                await relay.pipeline.flush()
                #expect(remote.received.count == 2)
            }
        }
    }

    @Test func connectIsRefusedAndNeverRelayed() async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let port = relay.port
                let answer = await offCooperativePool {
                    Self.exchange(port, "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n")
                }
                #expect(answer?.status == 405 && answer?.closed == true)
                let originForm = await offCooperativePool {
                    Self.exchange(port, "CONNECT /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
                }
                #expect(originForm?.status == 405)
                #expect(await rawPost(port: port, body: "after") == 200)
                await relay.pipeline.flush()
                #expect(remote.received.map(\.method) == ["POST"])
                #expect(relay.counters.snapshot.received == 1)
            }
        }
    }

    @Test func controlCharacterInAHeaderValueGets400() async throws {
        try await RecordingRemote.with { remote in
            try await TestRelay.with(TestRelay.configuration(remote: remote)) { relay in
                let port = relay.port
                for value in ["a\u{1}b", "a\u{7F}b", "a\u{8}"] {
                    let answer = await offCooperativePool {
                        Self.exchange(port, "POST /ingest HTTP/1.1\r\nHost: x\r\nX-Odd: \(value)\r\nContent-Length: 1\r\n\r\nx")
                    }
                    #expect(answer?.status == 400, "\(Array(value.utf8))")
                }
                let tab = await offCooperativePool {
                    Self.exchange(port, "POST /ingest HTTP/1.1\r\nHost: x\r\nX-Tab: a\tb\r\nContent-Length: 1\r\n\r\nx")
                }
                #expect(tab?.status == 200)
                let received = await remote.waitForRequests(1)
                #expect(received.first?.value("x-tab") == "a\tb")
            }
        }
    }

    @Test func pathClassesByByteSuffix() {
        let routes = [LocalRoute.healthz, LocalRoute(path: "/metrics") { .init(body: ByteBuffer()) }]
        #expect(IngressHandler.pathClass("/ingest?name=a", routes: routes) == "ingest")
        #expect(IngressHandler.pathClass("/base/ingest", routes: routes) == "ingest")
        #expect(IngressHandler.pathClass("/ingestx", routes: routes) == "other")
        #expect(IngressHandler.pathClass("/push.v1.PusherService/Push", routes: routes) == "push")
        #expect(IngressHandler.pathClass("/metrics?x", routes: routes) == "local")
        #expect(IngressHandler.pathClass("/é/ingest", routes: routes) == "ingest")
        #expect(IngressHandler.pathClass("st", routes: routes) == "other")
    }

    @Test(arguments: RequestHeadPolicyCase.all)
    func requestHeadPolicy(_ row: RequestHeadPolicyCase) {
        let policy = RequestHeadPolicy(limits: IngressLimits())
        var head = HTTPRequestHead(version: row.version, method: HTTPMethod(rawValue: row.method), uri: row.target)
        for (name, value) in row.headers { head.headers.add(name: name, value: value) }
        switch (policy.check(head), row.expected) {
        case (.accept(let target), .accept(let expected)): #expect(target == expected)
        case (.refuse(let status, _), .refuse(let expected)): #expect(status.code == expected)
        case (let verdict, _): Issue.record("\(row.target): \(verdict), expected \(row.expected)")
        }
    }
}

struct RequestHeadPolicyCase: Sendable, CustomTestStringConvertible {
    enum Expected: Sendable { case accept(String), refuse(UInt) }
    var method = "POST"
    var target: String
    var version = HTTPVersion.http1_1
    var headers: [(String, String)] = [("Host", "x")]
    var expected: Expected

    var testDescription: String { "\(method) \(target.prefix(40)) \(version)" }

    static let all: [RequestHeadPolicyCase] = [
        .init(target: "/ingest?name=a", expected: .accept("/ingest?name=a")),
        .init(target: "http://h/x?y", expected: .accept("/x?y")),
        .init(target: "HTTP://h:1/x", expected: .accept("/x")),
        .init(target: "https://user:pw@h/p", expected: .accept("/p")),
        .init(target: "http://h", expected: .accept("/")),
        .init(target: "http://h?q=1", expected: .accept("/?q=1")),
        .init(target: "http://", expected: .refuse(400)),
        .init(target: "http:/x", expected: .refuse(400)),
        .init(target: "h:443", expected: .refuse(400)),
        .init(method: "OPTIONS", target: "*", expected: .refuse(400)),
        .init(method: "CONNECT", target: "h:443", expected: .refuse(405)),
        .init(target: "/" + String(repeating: "a", count: 8192), expected: .refuse(414)),
        .init(target: "/" + String(repeating: "a", count: 8191), expected: .accept("/" + String(repeating: "a", count: 8191))),
        .init(target: "/x", headers: [], expected: .refuse(400)),
        .init(target: "/x", version: .http1_0, headers: [], expected: .accept("/x")),
        .init(target: "/x", version: .http1_0, headers: [("Host", "a"), ("host", "b")], expected: .refuse(400)),
        .init(target: "/x", headers: [("Host", "x"), ("X", String(repeating: "v", count: 33 << 10))], expected: .refuse(431)),
        .init(target: "/x", headers: [("Host", "x")] + (0..<300).map { ("X-\($0)", "v") }, expected: .refuse(431)),
        .init(target: "/x", headers: [("Host", "x"), ("X", "a\u{0}b")], expected: .refuse(400)),
        .init(target: "/x", headers: [("HOST", "a, b")], expected: .refuse(400)),
        .init(target: "/x", headers: [("hOsT", "")], expected: .accept("/x")),
        .init(target: "/x", headers: [("Hostx", "a"), ("X-Host", "b")], expected: .refuse(400)),
    ]
}
