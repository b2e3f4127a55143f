import NIOCore
import NIOEmbedded
import Testing

@testable import RelayCore

/// The ingress handlers' answers on `EmbeddedChannel`s, without sockets: what the socket
/// tests (`IngressTests`, `IngressStrictnessTests`, `ClientConnectionLimitTests`) check end
/// to end, here per status and connection outcome, in microseconds.
@Suite struct IngressHandlerEmbeddedTests {
    static func upload(_ body: String = "profile", target: String = "/ingest?name=app", headers: String = "") -> String {
        "POST \(target) HTTP/1.1\r\nHost: x\r\n\(headers)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    @Test func anUploadIsQueuedAndAnswered200OnAConnectionKeptAlive() throws {
        let ingress = EmbeddedIngress()
        let channel = try ingress.connect()
        defer { _ = try? channel.finish() }
        for index in 0..<3 {
            let answers = try ingress.send(Self.upload("u\(index)"), on: channel)
            #expect(answers.map(\.status) == [200] && answers.first?.closes == false)
        }
        #expect(channel.isActive, "kept alive")
        #expect(ingress.pipeline.snapshot.queuedItems == 3)
        #expect(ingress.pipeline.counters.snapshot.accepted == 3)
    }

    /// The ingress adds NIO's HTTP handlers one by one (not through configureHTTPServerPipeline,
    /// whose encoder learns of HEAD from the decoder): the answer to HEAD must still be a head
    /// alone, or the client would read its body as the start of the next answer.
    @Test func headIsAnsweredWithAHeadAloneAndTheConnectionStaysUsable() throws {
        let ingress = EmbeddedIngress(maxItems: 1)
        let channel = try ingress.connect()
        defer { _ = try? channel.finish() }
        #expect(try ingress.send(Self.upload("fills the queue"), on: channel).map(\.status) == [200])
        // Any method is an upload to relay; the queue is full, so the answer is a 503 with a text.
        try channel.writeInbound(ByteBuffer(string: "HEAD /ingest HTTP/1.1\r\nHost: x\r\n\r\n"))
        ingress.run()
        let head = String(decoding: try EmbeddedIngress.written(by: channel), as: UTF8.self)
        #expect(head.hasPrefix("HTTP/1.1 503") && head.hasSuffix("\r\n\r\n"), "\(head)")
        #expect(head.lowercased().contains("content-length: ") && !head.lowercased().contains("content-length: 0\r\n"))
        let answers = try ingress.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", on: channel)
        #expect(answers.map(\.status) == [200] && channel.isActive)
    }

    @Test(arguments: [
        ("POST /ingest HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", "Connection: close"),
        ("POST /ingest HTTP/1.0\r\nContent-Length: 1\r\n\r\nx", "HTTP/1.0 without keep-alive"),
    ])
    func aClientAskingToCloseIsAnsweredThenClosed(request: String, why: String) throws {
        let ingress = EmbeddedIngress()
        let (answer, closed) = try ingress.exchange(request)
        #expect(answer?.status == 200 && answer?.closes == true, "\(why)")
        #expect(closed, "\(why)")
        #expect(ingress.pipeline.snapshot.queuedItems == 1)
    }

    @Test func aDeclaredBodyOverTheLimitGets413AndTheConnectionCloses() throws {
        let ingress = EmbeddedIngress(maxBodyBytes: 100)
        let (answer, closed) = try ingress.exchange(Self.upload(String(repeating: "x", count: 101)))
        #expect(answer?.status == 413 && answer?.closes == true && answer?.body.contains("larger than 100 bytes") == true)
        #expect(closed)
        #expect(ingress.pipeline.snapshot.queuedItems == 0)
        #expect(ingress.pipeline.counters.snapshot.tooLarge == 1)
    }

    @Test func aChunkedBodyGrowingOverTheLimitGets413() throws {
        let ingress = EmbeddedIngress(maxBodyBytes: 100)
        let chunk = String(repeating: "y", count: 60)
        let request = "POST /ingest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3c\r\n\(chunk)\r\n3c\r\n\(chunk)\r\n0\r\n\r\n"
        let (answer, closed) = try ingress.exchange(request)
        #expect(answer?.status == 413 && closed)
        #expect(ingress.pipeline.snapshot.queuedItems == 0)
    }

    @Test func aTargetOverTheLimitGets414() throws {
        let ingress = EmbeddedIngress(limits: IngressLimits(maxTargetBytes: 64))
        let (answer, closed) = try ingress.exchange(Self.upload(target: "/ingest?q=" + String(repeating: "a", count: 64)))
        #expect(answer?.status == 414 && answer?.closes == true && closed)
        #expect(ingress.pipeline.counters.snapshot.received == 0)
    }

    @Test func aHeadOverTheLimitGets431WhetherThePolicyOrTheParserFindsIt() throws {
        let limits = IngressLimits(maxHeadBytes: 512, maxHeaderCount: 8)
        // Over the bound for the whole head (the parser's list bound is the policy's).
        let manyFields = (0..<6).map { "X-Field-\($0): \(String(repeating: "v", count: 100))\r\n" }.joined()
        let byPolicy = EmbeddedIngress(limits: limits)
        let (policyAnswer, policyClosed) = try byPolicy.exchange(Self.upload(headers: manyFields))
        #expect(policyAnswer?.status == 431 && policyClosed)
        // One field over the parser's bound: its error is answered 431, not 400.
        let byParser = EmbeddedIngress(limits: limits)
        let (parserAnswer, parserClosed) = try byParser.exchange(Self.upload(headers: "X-Big: \(String(repeating: "v", count: 600))\r\n"))
        #expect(parserAnswer?.status == 431 && parserClosed)
        // Too many header lines.
        let byCount = EmbeddedIngress(limits: limits)
        let (countAnswer, _) = try byCount.exchange(Self.upload(headers: (0..<9).map { "X-\($0): v\r\n" }.joined()))
        #expect(countAnswer?.status == 431)
        for ingress in [byPolicy, byParser, byCount] { #expect(ingress.pipeline.snapshot.queuedItems == 0) }
    }

    @Test func connectGets405AndAMissingHostGets400() throws {
        let ingress = EmbeddedIngress()
        let (connect, connectClosed) = try ingress.exchange("CONNECT remote:443 HTTP/1.1\r\nHost: remote:443\r\n\r\n")
        // NIO's encoder writes no body (nor length) in an answer to CONNECT: the close ends it.
        #expect(connect?.status == 405 && connect?.closes == true && connectClosed)
        let (noHost, noHostClosed) = try ingress.exchange("POST /ingest HTTP/1.1\r\nContent-Length: 1\r\n\r\nx")
        #expect(noHost?.status == 400 && noHostClosed)
        let (garbage, garbageClosed) = try ingress.exchange("NOT HTTP AT ALL\r\n\r\n")
        #expect(garbage?.status == 400 && garbageClosed)
        #expect(ingress.pipeline.snapshot.queuedItems == 0)
    }

    @Test func aFullPipelineAnswers503WithRetryAfterAndKeepsTheConnection() async throws {
        let ingress = EmbeddedIngress(maxItems: 1)
        let channel = try ingress.connect()
        defer { _ = try? channel.finish() }
        #expect(try ingress.send(Self.upload("first"), on: channel).map(\.status) == [200])
        let refused = try #require(try ingress.send(Self.upload("second"), on: channel).first)
        #expect(refused.status == 503 && refused.value("retry-after") == "1" && refused.body.contains("queue full"))
        #expect(channel.isActive, "backpressure, not a broken connection")
        #expect(ingress.pipeline.counters.snapshot.dropped == [.queueFull: 1])
        // Room again once the first is delivered: the same connection's next upload is taken.
        let first = try #require(await ingress.pipeline.next())
        await ingress.pipeline.complete(first, .delivered)
        #expect(try ingress.send(Self.upload("third"), on: channel).map(\.status) == [200])
    }

    @Test func healthzIsAnsweredLocallyAndExpectContinueGetsAnInterimAnswer() throws {
        let ingress = EmbeddedIngress()
        let channel = try ingress.connect()
        defer { _ = try? channel.finish() }
        let health = try ingress.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", on: channel)
        #expect(health.map(\.status) == [200])
        let continued = try ingress.send("POST /ingest HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", on: channel)
        #expect(continued.map(\.status) == [100])
        #expect(try ingress.send("ok", on: channel).map(\.status) == [200])
        #expect(ingress.pipeline.snapshot.queuedItems == 1, "only the upload is queued")
    }

    @Test func atTheConnectionCapABusyRelayAnswersANewcomer503AndAnIdleOneMakesRoom() throws {
        let ingress = EmbeddedIngress(connectionCap: 1)
        let busy = try ingress.connect()
        try busy.writeInbound(ByteBuffer(string: "POST /ingest HTTP/1.1\r\nHost: x\r\n"))  // a head arriving
        let refused = try ingress.connect()
        let answer = try #require(EmbeddedIngress.answers(in: try EmbeddedIngress.written(by: refused)).first)
        #expect(answer.status == 503 && answer.value("retry-after") == "1" && answer.closes)
        #expect(!refused.isActive)
        // The head ends and is answered: the connection is idle, and a newcomer replaces it.
        #expect(try ingress.send("Content-Length: 1\r\n\r\nx", on: busy).map(\.status) == [200])
        let newcomer = try ingress.connect()
        #expect(!busy.isActive && newcomer.isActive, "the idle connection made room")
        #expect(try ingress.send(Self.upload(), on: newcomer).map(\.status) == [200])
        _ = try? newcomer.finish()
    }
}
