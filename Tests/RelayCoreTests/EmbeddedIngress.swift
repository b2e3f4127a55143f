import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1

@testable import RelayCore

/// The handlers of client connections on `EmbeddedChannel`s: raw request bytes in, raw
/// answer bytes out, no socket and no event-loop thread, so the answers of the ingress
/// (413, 414, 431, 405, 503, keep-alive or close) are checked where sockets are not the
/// point. The connections share one `IngressServer.Context`, as the server's do.
final class EmbeddedIngress {
    struct Answer {
        var status: Int
        var headers: [(name: String, value: String)]
        var body: String

        func value(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
        var closes: Bool { value("connection")?.lowercased() == "close" }
    }

    static let logger = Logger(label: "embedded-ingress", factory: { _ in SwiftLogNoOpLogHandler() })

    let context: IngressServer.Context
    private let loop = EmbeddedEventLoop()

    var pipeline: DeliveryPipeline { context.pipeline }

    init(maxItems: Int = 10, maxBodyBytes: Int = 1 << 20, limits: IngressLimits = IngressLimits(), connectionCap: Int = 16) {
        let pipeline = DeliveryPipeline(configuration: .init(maxItems: maxItems), logger: Self.logger)
        context = IngressServer.Context(
            pipeline: pipeline, routes: [.healthz, .metrics(pipeline: pipeline)], maxBodyBytes: maxBodyBytes, limits: limits,
            headPolicy: RequestHeadPolicy(limits: limits), limiter: ConnectionLimiter(limit: connectionCap, slowHeadGrace: limits.slowHeadGrace),
            logger: Self.logger)
    }

    /// A connected client connection with the handlers `IngressServer` gives each one.
    func connect() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(loop: loop)
        try IngressServer.addHandlers(to: channel.pipeline.syncOperations, context: context)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40_000)).wait()
        return channel
    }

    /// Sends `request` on `channel` and returns every answer written since (an interim
    /// `100 Continue` is one).
    @discardableResult
    func send(_ request: String, on channel: EmbeddedChannel) throws -> [Answer] {
        if channel.isActive { try channel.writeInbound(ByteBuffer(string: request)) }
        loop.run()
        return try Self.answers(in: Self.written(by: channel))
    }

    /// One request on a new connection: its answer, and whether the relay closed the connection.
    func exchange(_ request: String) throws -> (answer: Answer?, closed: Bool) {
        let channel = try connect()
        let answers = try send(request, on: channel)
        defer { _ = try? channel.finish() }
        return (answers.last, !channel.isActive)
    }

    /// Runs what the handlers scheduled on the loop (answers written after a hop).
    func run() { loop.run() }

    static func written(by channel: EmbeddedChannel) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes += buffer.readableBytesView }
        return bytes
    }

    /// Splits raw bytes into answers, each framed by its Content-Length.
    static func answers(in bytes: [UInt8]) -> [Answer] {
        var answers: [Answer] = []
        var rest = bytes[...]
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        while let end = rest.firstRange(of: separator) {
            let head = String(decoding: rest[rest.startIndex..<end.lowerBound], as: UTF8.self).split(separator: "\r\n")
            guard let statusLine = head.first, let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") else { break }
            let headers = head.dropFirst().compactMap { line -> (name: String, value: String)? in
                guard let colon = line.firstIndex(of: ":") else { return nil }
                return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            }
            // Without a Content-Length (NIO's encoder drops it from an answer to CONNECT) the
            // body runs to the close (RFC 9112 §6.3).
            let length = headers.first { $0.name.lowercased() == "content-length" }.flatMap { Int($0.value) }
            let bodyEnd = length.map { min(rest.endIndex, end.upperBound + $0) } ?? rest.endIndex
            answers.append(Answer(status: status, headers: headers, body: String(decoding: rest[end.upperBound..<bodyEnd], as: UTF8.self)))
            rest = rest[bodyEnd...]
        }
        return answers
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: Set<Character>) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}

extension Set where Element == Character {
    fileprivate static var whitespaces: Set<Character> { [" ", "\t"] }
}
