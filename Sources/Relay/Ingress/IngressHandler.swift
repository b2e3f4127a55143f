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
        /// The head passed `RequestHeadPolicy`; `target` is its origin form.
        case receiving(HTTPRequestHead, target: String, ByteBuffer)
        case local(HTTPRequestHead, LocalRoute)
        /// Read whole and admitted; the answer waits for the spool write.
        case answering
        /// Answered early (400, 405, 413, 414, 431); the rest of the request is ignored
        /// until the close.
        case rejected
    }

    private let context: IngressServer.Context
    private let connection: ConnectionGuard
    private var state = State.idle
    /// The client half-closed (`shutdown(SHUT_WR)`): close once the answer is written.
    private var inputClosed = false
    /// When the current request's head arrived, for the answer-time histogram.
    private var requestStart = ContinuousClock.now
    private var logger: Logger

    init(context: IngressServer.Context, connection: ConnectionGuard) {
        self.context = context
        self.connection = connection
        self.logger = context.logger
    }

    func channelRead(context channelContext: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            requestStart = .now
            receiveHead(head, channelContext: channelContext)
        case .body(var part):
            guard case .receiving(let head, let target, var body) = state else { return }
            state = .idle  // drop the reference so appending does not copy the buffer
            if body.readableBytes + part.readableBytes > context.maxBodyBytes {
                rejectTooLarge(head, channelContext: channelContext)
                return
            }
            body.writeBuffer(&part)
            state = .receiving(head, target: target, body)
        case .end:
            switch state {
            case .receiving(let head, let target, let body):
                state = .answering
                connection.requestReceived()
                finishUpload(head, target: target, body: body, channelContext: channelContext)
            case .local(let head, let route):
                state = .answering
                connection.requestReceived()
                let response = route.respond()
                respond(head, status: response.status, body: response.body, contentType: response.contentType, channelContext: channelContext)
            case .idle, .answering, .rejected:
                break
            }
        }
    }

    private func receiveHead(_ head: HTTPRequestHead, channelContext: ChannelHandlerContext) {
        connection.headReceived(pathClass: Self.pathClass(head.uri, routes: context.routes))
        let target: String
        switch context.headPolicy.check(head) {
        case .refuse(let status, let reason):
            reject(head, status: status, reason: reason, channelContext: channelContext)
            return
        case .accept(let originForm):
            target = originForm
        }
        let path = requestPath(target)
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
        state = .receiving(head, target: target, channelContext.channel.allocator.buffer(capacity: expected))
    }

    private func finishUpload(_ head: HTTPRequestHead, target: String, body: ByteBuffer, channelContext: ChannelHandlerContext) {
        let upload = Upload(method: head.method, target: target, headers: head.headers, body: body, receivedAt: context.pipeline.clock.now)
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
        var metadata: Logger.Metadata = [LogKey.path: "\(path)", LogKey.reason: "\(reason.rawValue)", LogKey.status: .stringConvertible(503)]
        if suppressed > 0 { metadata[LogKey.suppressed] = .stringConvertible(suppressed) }
        if reason == .misconfigured {
            logger.error(message, metadata: metadata)
        } else {
            logger.warning(message, metadata: metadata)
        }
    }

    private func rejectTooLarge(_ head: HTTPRequestHead, channelContext: ChannelHandlerContext) {
        context.counters.recordTooLarge()
        reject(
            head, status: .payloadTooLarge, reason: "upload larger than \(context.maxBodyBytes) bytes",
            logMessage: "Refused upload: body larger than PYROSCOPE_MAX_BODY_BYTES", channelContext: channelContext)
    }

    /// Answers early and closes: the unread rest of the request makes the connection
    /// unusable. One rate-limited line per status.
    private func reject(
        _ head: HTTPRequestHead, status: HTTPResponseStatus, reason: String, logMessage: Logger.Message = "Refused request",
        channelContext: ChannelHandlerContext
    ) {
        state = .rejected
        if let suppressed = context.refusalLogLimiter.admit("status_\(status.code)") {
            var metadata: Logger.Metadata = [
                LogKey.status: .stringConvertible(status.code), LogKey.reason: "\(reason)", LogKey.method: "\(head.method.rawValue.prefix(32))",
                LogKey.path: "\(requestPath(head.uri).prefix(128))",
            ]
            if status == .payloadTooLarge { metadata[LogKey.limitBytes] = .stringConvertible(context.maxBodyBytes) }
            if suppressed > 0 { metadata[LogKey.suppressed] = .stringConvertible(suppressed) }
            logger.warning(logMessage, metadata: metadata)
        }
        respond(head, status: status, body: ByteBuffer(string: reason + "\n"), forceClose: true, channelContext: channelContext)
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
        guard !connection.isClosing else { return }  // timed out meanwhile: already answered 408
        let keepAlive = request.isKeepAlive && !forceClose && !inputClosed
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
        // HEAD: the head says what a GET would get (its Content-Length included), with no body.
        if let body, body.readableBytes > 0, request.method != .HEAD {
            channelContext.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        if keepAlive {
            if case .answering = state { state = .idle }
            connection.answered()
            channelContext.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            state = .rejected
            connection.answeredClosing()
            let channel = channelContext.channel
            channelContext.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// `ingest`, `push`, `otlp`, `local` (the relay's own routes) or `other`: a bounded label set
    /// whatever paths clients send.
    static func pathClass(_ uri: String, routes: [LocalRoute]) -> String {
        let path = requestPath(uri)
        if routes.contains(where: { $0.path == path }) { return "local" }
        if hasByteSuffix(path, "/ingest") { return "ingest" }
        if hasByteSuffix(path, "/push.v1.PusherService/Push") { return "push" }
        if hasByteSuffix(path, "/v1development/profiles") { return "otlp" }
        return "other"
    }

    /// Byte-wise: `String.hasSuffix` compares Characters, and walking a reversed UTF-8 view
    /// cost 1% of the relay's instructions per upload.
    static func hasByteSuffix(_ text: Substring, _ suffix: StaticString) -> Bool {
        let bytes = text.utf8
        let count = suffix.utf8CodeUnitCount
        guard bytes.count >= count else { return false }
        return suffix.withUTF8Buffer { bytes.suffix(count).elementsEqual($0) }
    }

    func userInboundEventTriggered(context channelContext: ChannelHandlerContext, event: Any) {
        guard let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed else {
            channelContext.fireUserInboundEventTriggered(event)
            return
        }
        // The client sent all it will send. An answer still to come (a spool write) is
        // written before the close; a request cut short was already answered 400 by the
        // parser's error.
        inputClosed = true
        switch state {
        case .answering: break
        case .idle, .receiving, .local, .rejected: channelContext.close(promise: nil)
        }
    }

    func errorCaught(context channelContext: ChannelHandlerContext, error: Error) {
        guard let parseError = error as? HTTPParserError else {
            logger.debug("Connection error", metadata: [LogKey.error: "\(error)"])
            channelContext.close(promise: nil)
            return
        }
        if case .rejected = state {
            // The body we refused to read ends the parse early: expected, not malformed.
            channelContext.close(promise: nil)
            return
        }
        // NIO's pipeline handler holds a parse error back while an answer is pending, then
        // lets it through as if it were a request: answer it and close.
        context.counters.recordMalformed()
        logger.debug("Closed connection after a malformed request", metadata: [LogKey.error: "\(parseError)"])
        let overflow = parseError == .headerOverflow
        let status: HTTPResponseStatus = overflow ? .requestHeaderFieldsTooLarge : .badRequest
        let reason =
            overflow
            ? "request head larger than \(context.limits.maxHeadBytes) bytes or more than \(context.limits.maxHeaderCount) header lines"
            : "malformed request"
        requestStart = .now
        state = .rejected
        let synthetic = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["connection": "close"])
        respond(synthetic, status: status, body: ByteBuffer(string: reason + "\n"), forceClose: true, channelContext: channelContext)
    }
}
