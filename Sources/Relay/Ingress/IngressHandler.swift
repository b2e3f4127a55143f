import Logging
import NIOCore
import NIOHTTP1

/// Reads each request whole, then queues it and answers at once: the profiler never
/// waits on the network. One instance per connection, used only on its event loop.
final class IngressHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case receiving(HTTPRequestHead, ByteBuffer)
        case local(HTTPRequestHead, LocalRoute)
        /// Answered early (413); the rest of the request is ignored until the close.
        case rejected
    }

    private let context: IngressServer.Context
    private var state = State.idle
    /// When the current request's head arrived, for the answer-time histogram.
    private var requestStart = ContinuousClock.now
    private var logger: Logger

    init(context: IngressServer.Context) {
        self.context = context
        self.logger = context.logger
    }

    func channelRead(context channelContext: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            requestStart = .now
            receiveHead(head, channelContext: channelContext)
        case .body(var part):
            guard case .receiving(let head, var body) = state else { return }
            state = .idle  // drop the reference so appending does not copy the buffer
            if body.readableBytes + part.readableBytes > context.maxBodyBytes {
                rejectTooLarge(head, channelContext: channelContext)
                return
            }
            body.writeBuffer(&part)
            state = .receiving(head, body)
        case .end:
            switch state {
            case .receiving(let head, let body):
                state = .idle
                finishUpload(head, body: body, channelContext: channelContext)
            case .local(let head, let route):
                state = .idle
                let response = route.respond()
                respond(head, status: response.status, body: response.body, contentType: response.contentType, channelContext: channelContext)
            case .idle, .rejected:
                break
            }
        }
    }

    private func receiveHead(_ head: HTTPRequestHead, channelContext: ChannelHandlerContext) {
        let path = requestPath(head.uri)
        if let route = context.routes.first(where: { $0.method == head.method && $0.path == path }) {
            state = .local(head, route)
            return
        }
        var expected = 0
        if let lengthText = head.headers.first(name: "content-length") {
            guard let length = Int(lengthText), length >= 0 else {
                // NIO's parser rejects this before us; kept as a guard, not a path.
                rejectTooLarge(head, channelContext: channelContext)
                return
            }
            if length > context.maxBodyBytes {
                rejectTooLarge(head, channelContext: channelContext)
                return
            }
            expected = length
        }
        if head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
            channelContext.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
        }
        state = .receiving(head, channelContext.channel.allocator.buffer(capacity: expected))
    }

    private func finishUpload(_ head: HTTPRequestHead, body: ByteBuffer, channelContext: ChannelHandlerContext) {
        let upload = Upload(method: head.method, target: head.uri, headers: head.headers, body: body, receivedAt: context.pipeline.clock.now)
        switch context.pipeline.admit(upload, on: channelContext.eventLoop) {
        case .decided(let admission):
            answer(admission, head: head, path: upload.path, channelContext: channelContext)
        case .writing(let written):
            // The spool write runs on the thread pool; its future completes on this loop.
            let bound = NIOLoopBound((self, channelContext), eventLoop: channelContext.eventLoop)
            written.whenComplete { result in
                let (handler, channelContext) = bound.value
                let admission = (try? result.get()) ?? .refused(.queueFull)
                handler.answer(admission, head: head, path: upload.path, channelContext: channelContext)
            }
        }
    }

    private func answer(_ admission: DeliveryPipeline.Admission, head: HTTPRequestHead, path: Substring, channelContext: ChannelHandlerContext) {
        switch admission {
        case .queued, .spooled:
            respond(head, status: .ok, body: nil, prebuilt: Prebuilt.ok, channelContext: channelContext)
        case .refused(.misconfigured):
            logRefusal(.misconfigured, "Refused upload: the remote address is unusable, see the error logged at start", path: path)
            respond(
                head, status: .serviceUnavailable, body: ByteBuffer(string: "relay misconfigured: remote address unusable\n"),
                channelContext: channelContext)
        case .refused(let reason):
            // Honest backpressure: the client keeps its data rather than being told 200 for
            // an upload that would be dropped.
            logRefusal(reason, "Refused upload: queue full", path: path)
            respond(
                head, status: .serviceUnavailable, body: Prebuilt.queueFullBody, extraHeaders: Prebuilt.queueFullExtraHeaders,
                prebuilt: Prebuilt.queueFull, channelContext: channelContext)
        }
    }

    /// At most a few lines per reason and window, with the number held back.
    private func logRefusal(_ reason: DropReason, _ message: Logger.Message, path: Substring) {
        guard let suppressed = context.refusalLogLimiter.admit(reason.rawValue) else { return }
        var metadata: Logger.Metadata = ["path": "\(path)", "reason": "\(reason.rawValue)", "status": .stringConvertible(503)]
        if suppressed > 0 { metadata["suppressed"] = .stringConvertible(suppressed) }
        if reason == .misconfigured {
            logger.error(message, metadata: metadata)
        } else {
            logger.warning(message, metadata: metadata)
        }
    }

    private func rejectTooLarge(_ head: HTTPRequestHead, channelContext: ChannelHandlerContext) {
        state = .rejected
        context.counters.recordTooLarge()
        logger.warning(
            "Refused upload: body larger than PYROSCOPE_MAX_BODY_BYTES",
            metadata: [
                "path": "\(requestPath(head.uri))",
                "limit_bytes": .stringConvertible(context.maxBodyBytes), "status": .stringConvertible(413),
            ])
        // The unread rest of the body makes the connection unusable: answer and close.
        respond(
            head, status: .payloadTooLarge, body: ByteBuffer(string: "upload larger than \(context.maxBodyBytes) bytes\n"),
            forceClose: true, channelContext: channelContext)
    }

    /// Answers that repeat on every request, built once. Each equals what `respond` builds
    /// for a keep-alive HTTP/1.1 request with the same arguments.
    private enum Prebuilt {
        static let ok = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Length": "0"])
        static let queueFullBody = ByteBuffer(string: "relay queue full, retry later\n")
        static let queueFullExtraHeaders = [("Retry-After", "1")]
        static let queueFull = HTTPResponseHead(
            version: .http1_1, status: .serviceUnavailable,
            headers: HTTPHeaders(
                [("Content-Length", String(queueFullBody.readableBytes)), ("Content-Type", "text/plain; charset=utf-8")] + queueFullExtraHeaders))
    }

    /// - Parameter prebuilt: the head `respond` would build for a keep-alive HTTP/1.1
    ///   request, used as is for one.
    private func respond(
        _ request: HTTPRequestHead, status: HTTPResponseStatus, body: ByteBuffer?, contentType: String = "text/plain; charset=utf-8",
        extraHeaders: [(String, String)] = [], forceClose: Bool = false, prebuilt: HTTPResponseHead? = nil,
        channelContext: ChannelHandlerContext
    ) {
        let metrics = context.counters.metrics
        metrics.requests(pathClass: Self.pathClass(request.uri, routes: context.routes), status: status.code).increment()
        context.counters.recordAnswer(.now - requestStart)
        let keepAlive = request.isKeepAlive && !forceClose
        let responseHead: HTTPResponseHead
        if let prebuilt, keepAlive, request.version == .http1_1 {
            responseHead = prebuilt
        } else {
            var headers = HTTPHeaders()
            headers.reserveCapacity(4)
            headers.add(name: "Content-Length", value: String(body?.readableBytes ?? 0))
            if let body, body.readableBytes > 0 { headers.add(name: "Content-Type", value: contentType) }
            for (name, value) in extraHeaders { headers.add(name: name, value: value) }
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            responseHead = HTTPResponseHead(version: request.version, status: status, headers: headers)
        }
        channelContext.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        if let body, body.readableBytes > 0 {
            channelContext.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        if keepAlive {
            channelContext.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let channel = channelContext.channel
            channelContext.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// `ingest`, `push`, `local` (the relay's own routes) or `other`: a bounded label set
    /// whatever paths clients send.
    static func pathClass(_ uri: String, routes: [LocalRoute]) -> String {
        let path = requestPath(uri)
        if routes.contains(where: { $0.path == path }) { return "local" }
        // Byte-wise: String.hasSuffix compares Characters.
        if path.utf8.reversed().starts(with: "/ingest".utf8.reversed()) { return "ingest" }
        if path.utf8.reversed().starts(with: "/push.v1.PusherService/Push".utf8.reversed()) { return "push" }
        return "other"
    }

    func errorCaught(context channelContext: ChannelHandlerContext, error: Error) {
        // NIO's HTTPServerProtocolErrorHandler has already answered 400 for parse errors;
        // count it and make sure the connection goes.
        if case .rejected = state {
            // The body we refused to read ends the parse early: expected, not malformed.
        } else if error is HTTPParserError {
            context.counters.recordMalformed()
            logger.debug("Closed connection after a malformed request", metadata: ["error": "\(error)"])
        } else {
            logger.debug("Connection error", metadata: ["error": "\(error)"])
        }
        channelContext.close(promise: nil)
    }
}
