import Logging
import NIOCore

/// The first handler of every client connection, below the HTTP parser: it sees the raw
/// bytes, so it can tell a request that started arriving from an idle connection, and
/// it enforces what no request handler can: the connection cap and the time each part of
/// a request may take (`IngressLimits`). Its own answers (`408`, `503`) are written as
/// raw bytes: no request head may exist for them to answer.
final class ConnectionGuard: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Phase: Equatable {
        /// No byte of a request yet.
        case idle
        /// A request head is arriving.
        case head
        /// The head is read; the body is arriving.
        case body
        /// The request is read and being answered: no deadline (the relay's own work).
        case answering
        /// Answered, and the connection closes once the answer is written: a client that
        /// does not read it holds the connection no longer than a stalled body would.
        case draining
        /// Answered by this guard or refused: the rest is ignored until the close.
        case closing
    }

    private let shared: IngressServer.Context
    private var phase = Phase.idle
    /// When the phase began; in `.body`, when bytes last arrived.
    private var since = NIODeadline.now()
    /// Bytes of the next request arrived while this one was answered (pipelining).
    private var nextRequestStarted = false
    private var pathClass = "other"
    private var timer: Scheduled<Void>?
    private var timerFiresAt = NIODeadline.distantFuture
    private var context: ChannelHandlerContext?
    private var registered = false

    init(shared: IngressServer.Context) {
        self.shared = shared
    }

    var isClosing: Bool { phase == .closing }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        let metrics = shared.counters.metrics
        switch shared.limiter.open(context.channel) {
        case .refused:
            phase = .closing
            metrics.clientConnectionsClosed(reason: .overLimit).increment()
            logLimit(
                "Refused a connection with 503: every client connection is busy with a request",
                key: "connection_limit_refused")
            writeRawAnswerAndClose(
                context: context, status: .serviceUnavailable, body: "relay busy: too many connections, retry later\n",
                extraHeaders: "Retry-After: 1\r\n")
            return
        case .admittedReplacing(let replaced):
            metrics.clientConnectionsClosed(reason: .replaced).increment()
            logLimit("Client connection limit reached: closed the longest-idle connection to make room", key: "connection_limit_replaced")
            replaced.close(promise: nil)
        case .admitted:
            break
        }
        registered = true
        metrics.clientConnections.increment()
        since = .now()
        armTimer()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        if registered {
            registered = false
            shared.limiter.close(context.channel)
            shared.counters.metrics.clientConnections.decrement()
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch phase {
        case .closing:
            return  // refused or timed out: nothing more is parsed
        case .idle:
            phase = .head
            since = .now()
            shared.limiter.update(context.channel, to: .head, now: since)
            armTimer()
        case .body:
            since = .now()
        case .head:
            break
        case .answering:
            nextRequestStarted = true
        case .draining:
            break
        }
        context.fireChannelRead(data)
    }

    // MARK: Told by the request handler

    /// A request head was parsed: the body deadline starts.
    func headReceived(pathClass: String) {
        guard phase != .closing, let context else { return }
        self.pathClass = pathClass
        phase = .body
        since = .now()
        shared.limiter.update(context.channel, to: .busy, now: since)
        armTimer()
    }

    /// The whole request is read; the relay answers it (at once, or after a spool write).
    func requestReceived() {
        guard phase != .closing else { return }
        phase = .answering
    }

    /// The answer is written and the connection stays open for the next request.
    func answered() {
        guard phase != .closing, let context else { return }
        // Bytes that came meanwhile are the next request's head: its deadline runs now.
        phase = nextRequestStarted ? .head : .idle
        nextRequestStarted = false
        since = .now()
        shared.limiter.update(context.channel, to: phase == .head ? .head : .idle, now: since)
        armTimer()
    }

    /// The answer is being written and the connection then closes.
    func answeredClosing() {
        guard phase != .closing else { return }
        phase = .draining
        since = .now()
        armTimer()
    }

    // MARK: Deadlines

    private var deadline: NIODeadline? {
        let limits = shared.limits
        switch phase {
        case .idle: return since + TimeAmount(limits.idleTimeout)
        case .head: return since + TimeAmount(limits.headerTimeout)
        case .body, .draining: return since + TimeAmount(limits.bodyStallTimeout)
        case .answering, .closing: return nil
        }
    }

    /// One timer per connection, moved only when a deadline comes earlier than it fires;
    /// when it fires early it re-arms for the current deadline. Most requests on a
    /// keep-alive connection schedule nothing.
    private func armTimer() {
        guard let deadline, let context else { return }
        if timer != nil, timerFiresAt <= deadline { return }
        timer?.cancel()
        timerFiresAt = deadline
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            timer = nil
            timerFiresAt = .distantFuture
            guard let current = self.deadline else { return }
            if current <= .now() { expire() } else { armTimer() }
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
        timerFiresAt = .distantFuture
    }

    private func expire() {
        guard let context else { return }
        let metrics = shared.counters.metrics
        let limits = shared.limits
        let expired = phase
        phase = .closing
        switch expired {
        case .idle:
            metrics.clientConnectionsClosed(reason: .idleTimeout).increment()
            context.close(promise: nil)
        case .head:
            metrics.clientConnectionsClosed(reason: .headerTimeout).increment()
            metrics.requests(pathClass: "other", status: 408).increment()
            shared.logger.debug("Closed a connection whose request head did not arrive in time", metadata: [LogKey.status: "408"])
            writeRawAnswerAndClose(
                context: context, status: .requestTimeout,
                body: "request head not received within \(Self.seconds(limits.headerTimeout))\n")
        case .body:
            metrics.clientConnectionsClosed(reason: .bodyTimeout).increment()
            metrics.requests(pathClass: pathClass, status: 408).increment()
            shared.logger.debug("Closed a connection whose request body stalled", metadata: [LogKey.status: "408"])
            writeRawAnswerAndClose(
                context: context, status: .requestTimeout,
                body: "no request body bytes for \(Self.seconds(limits.bodyStallTimeout))\n")
        case .draining:
            context.close(promise: nil)
        case .answering, .closing:
            break
        }
    }

    private static func seconds(_ duration: Duration) -> String {
        let milliseconds = duration.wholeMilliseconds
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
    }

    private func writeRawAnswerAndClose(
        context: ChannelHandlerContext, status: HTTPResponseStatusLine, body: String, extraHeaders: String = ""
    ) {
        let bytes =
            "HTTP/1.1 \(status.text)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\n"
            + extraHeaders + "Connection: close\r\n\r\n" + body
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: bytes))).whenComplete { _ in channel.close(promise: nil) }
    }

    private func logLimit(_ message: Logger.Message, key: String) {
        guard let suppressed = shared.refusalLogLimiter.admit(key) else { return }
        var metadata: Logger.Metadata = [LogKey.limit: .stringConvertible(shared.limiter.limit)]
        if suppressed > 0 { metadata[LogKey.suppressed] = .stringConvertible(suppressed) }
        shared.logger.warning(message, metadata: metadata)
    }
}

/// The status lines the guard writes itself.
enum HTTPResponseStatusLine {
    case requestTimeout
    case serviceUnavailable

    var text: String {
        switch self {
        case .requestTimeout: "408 Request Timeout"
        case .serviceUnavailable: "503 Service Unavailable"
        }
    }
}
