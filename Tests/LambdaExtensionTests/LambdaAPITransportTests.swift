import Foundation
import RelayTestSupport
import Synchronization
import Testing

@testable import LambdaExtension

#if canImport(Glibc)
    import Glibc
#endif

/// The Extensions API's own HTTP/1.1 over plain sockets, against a scripted server on
/// 127.0.0.1 port 0: framing, keep-alive, a connection gone while frozen, cancellation.
/// Answers each request it reads with the next scripted reply.
final class ScriptedServer: Sendable {
    enum Reply: Sendable {
        case bytes(String, thenClose: Bool = false)
        /// Reads the request and never answers.
        case hang
    }
    let port: Int32
    private let listener: Int32
    private let state: Mutex<(replies: [Reply], requests: [String], connections: Int)>

    init(_ replies: [Reply]) throws {
        state = Mutex((replies, [], 0))
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var size = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, size) } }
        listen(listener, 8)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &size) }
        }
        self.listener = listener
        port = Int32(UInt16(bigEndian: address.sin_port))
        let server = self
        Thread { server.serve() }.start()
    }

    var requests: [String] { state.withLock { $0.requests } }
    var connections: Int { state.withLock { $0.connections } }

    func stop() { shutdown(listener, Int32(SHUT_RDWR)) }

    private func serve() {
        while true {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            state.withLock { $0.connections += 1 }
            let server = self
            Thread { server.answer(on: connection) }.start()
        }
    }

    private func answer(on connection: Int32) {
        defer { close(connection) }
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            guard let end = pending.firstRange(of: Array("\r\n\r\n".utf8))?.upperBound else {
                let count = recv(connection, &chunk, chunk.count, 0)
                if count <= 0 { return }
                pending += chunk[..<count]
                continue
            }
            let head = String(decoding: pending[..<end], as: UTF8.self)
            let length =
                head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
            while pending.count < end + length {
                let count = recv(connection, &chunk, chunk.count, 0)
                if count <= 0 { return }
                pending += chunk[..<count]
            }
            let request = String(decoding: pending[..<(end + length)], as: UTF8.self)
            pending.removeFirst(end + length)
            let reply = state.withLock { state -> Reply? in
                state.requests.append(request)
                return state.replies.isEmpty ? nil : state.replies.removeFirst()
            }
            switch reply {
            case .bytes(let text, let thenClose):
                _ = Array(text.utf8).withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if thenClose { return }
            case .hang, nil:
                while recv(connection, &chunk, chunk.count, 0) > 0 {}
                return
            }
        }
    }
}

@Suite struct LambdaAPITransportTests {
    static func transport(_ server: ScriptedServer, maxBodyBytes: Int = 1 << 20) -> LambdaAPITransport {
        LambdaAPITransport(address: "127.0.0.1:\(server.port)", maxBodyBytes: maxBodyBytes)
    }

    @Test func answersFramedByLengthByChunksOrByTheCloseAreRead() async throws {
        let server = try ScriptedServer([
            .bytes("HTTP/1.1 200 OK\r\nLambda-Extension-Identifier: id-1\r\nContent-Length: 5\r\n\r\nhello"),
            .bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\n\r\n"),
            .bytes("HTTP/1.1 202 Accepted\r\nConnection: close\r\n\r\nuntil the end", thenClose: true),
        ])
        defer { server.stop() }
        let transport = Self.transport(server)
        defer { transport.shutdown() }
        let first = try await transport.request("POST", "/2020-01-01/extension/register", headers: [("Lambda-Extension-Name", "x")], body: Array("{}".utf8))
        #expect(first.status == 200 && first.header("lambda-extension-identifier") == "id-1" && first.body == Array("hello".utf8))
        let second = try await transport.request("GET", "/2020-01-01/extension/event/next", headers: [], body: nil)
        #expect(second.body == Array("abcdefg".utf8))
        let third = try await transport.request("POST", "/2020-01-01/extension/exit/error", headers: [], body: Array("{}".utf8))
        #expect(third.status == 202 && third.body == Array("until the end".utf8))
        #expect(server.connections == 1, "kept alive until the answer said close")
        #expect(server.requests.first?.hasPrefix("POST /2020-01-01/extension/register HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\n") == true)
        #expect(server.requests.first?.contains("\r\nLambda-Extension-Name: x\r\nContent-Length: 2\r\n\r\n{}") == true)
    }

    @Test func aKeptConnectionThatClosedWhileFrozenIsReplacedOnce() async throws {
        // The first answer keeps the connection alive in words, but the server closes it, as
        // the API's end does after a freeze: the next call goes out again on a new connection.
        let server = try ScriptedServer([
            .bytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", thenClose: true), .bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nagain"),
        ])
        defer { server.stop() }
        let transport = Self.transport(server)
        defer { transport.shutdown() }
        _ = try await transport.request("GET", "/next", headers: [], body: nil)
        let answer = try await transport.request("GET", "/next", headers: [], body: nil)
        #expect(answer.body == Array("again".utf8) && server.connections == 2 && server.requests.count == 2)
    }

    @Test func cancellingAWaitingCallEndsItWithCancellation() async throws {
        let server = try ScriptedServer([.hang])
        defer { server.stop() }
        let transport = Self.transport(server)
        defer { transport.shutdown() }
        let call = Task { try await transport.request("GET", "/2020-01-01/extension/event/next", headers: [], body: nil) }
        try await eventually("the request reached the server") { server.requests.count == 1 }
        call.cancel()
        await #expect(throws: CancellationError.self) { try await call.value }
    }

    @Test func anAnswerOverTheBoundOrNoAnswerAtAllIsAFailure() async throws {
        let server = try ScriptedServer([.bytes("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + String(repeating: "x", count: 100))])
        defer { server.stop() }
        let transport = Self.transport(server, maxBodyBytes: 10)
        await #expect(throws: LambdaAPITransport.Failure.self) { try await transport.request("GET", "/next", headers: [], body: nil) }
        let nobody = LambdaAPITransport(address: "127.0.0.1:1", maxBodyBytes: 10)
        await #expect(throws: LambdaAPITransport.Failure.self) { try await nobody.request("GET", "/next", headers: [], body: nil) }
    }
}
