import NIOCore
import NIOHTTP1
import Synchronization

/// One HTTP/1.1 connection of the pool: one request at a time, its state on its channel's
/// event loop.
final class HTTP1Connection: Sendable {
    let channel: any Channel
    let key: PoolKey
    /// The pool's generation when it was made: connections of an older one are not pooled
    /// again (`discardConnections`).
    let generation: Int
    private let handler: NIOLoopBound<HTTP1ResponseHandler>

    init(channel: any Channel, key: PoolKey, generation: Int, handler: HTTP1ResponseHandler) {
        self.channel = channel
        self.key = key
        self.generation = generation
        let bound = NIOLoopBound(handler, eventLoop: channel.eventLoop)
        self.handler = bound
        // The close ends a request in flight. Not (only) from `channelInactive`: a close from
        // inside a failed write reached the handlers without it (seen with NIO's header
        // validator failing a head).
        channel.closeFuture.whenComplete { _ in bound.value.connectionClosed() }
    }

    /// Read by the pool from any thread (NIO keeps `isActive` thread-safe).
    var isClosed: Bool { !channel.isActive }

    /// When it was last put back in the pool (`NIODeadline` uptime nanoseconds).
    private let released = Atomic<UInt64>(0)
    /// Whether its idle timer is pending: one at a time.
    private let idleTimerArmed = Atomic<Bool>(false)

    var releasedAt: NIODeadline { .uptimeNanoseconds(released.load(ordering: .relaxed)) }

    /// Notes the release; true when the caller must start the idle timer.
    func markReleased(now: NIODeadline) -> Bool {
        released.store(now.uptimeNanoseconds, ordering: .relaxed)
        return !idleTimerArmed.exchange(true, ordering: .relaxed)
    }

    func disarmIdleTimer() { idleTimerArmed.store(false, ordering: .relaxed) }

    /// Writes the request and completes with the answer and whether the connection may
    /// serve another request. Call on the channel's loop.
    func send(_ head: HTTPRequestHead, body: ByteBuffer?, bodyLimit: Int) -> EventLoopFuture<HTTP1Exchange> {
        channel.eventLoop.assertInEventLoop()
        let promise = channel.eventLoop.makePromise(of: HTTP1Exchange.self)
        let handler = self.handler
        handler.value.start(promise: promise, bodyLimit: bodyLimit)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body, body.readableBytes > 0 { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
        let written = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: written)
        let channel = self.channel
        written.futureResult.whenComplete { result in
            guard case .failure(let error) = result else { return handler.value.requestWritten() }
            // The answer may already be read (an early 413), or still on its way: the
            // read side decides. Closing reads what the socket holds first.
            handler.value.requestFailedToWrite(error)
            channel.close(promise: nil)
        }
        return promise.futureResult
    }

    func close() { channel.close(promise: nil) }
}

/// An answer and whether its connection can be reused.
struct HTTP1Exchange: Sendable {
    var response: HTTP1Response
    var reusable: Bool
}

/// Reads one answer at a time into an `HTTP1Response`. Runs on the connection's loop.
final class HTTP1ResponseHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    private struct InFlight {
        var promise: EventLoopPromise<HTTP1Exchange>
        var bodyLimit: Int
        var head: HTTPResponseHead?
        var body = ByteBuffer()
        var truncated = false
        var written = false
        var writeError: (any Error)?
    }

    private var inFlight: InFlight?
    private var firstError: (any Error)?
    private let host: String

    init(host: String) { self.host = host }

    func start(promise: EventLoopPromise<HTTP1Exchange>, bodyLimit: Int) {
        precondition(inFlight == nil, "one request at a time on a connection")
        inFlight = InFlight(promise: promise, bodyLimit: bodyLimit)
    }

    func requestWritten() { inFlight?.written = true }

    func requestFailedToWrite(_ error: any Error) { inFlight?.writeError = error }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard var current = inFlight else {
            // An answer nobody asked for: the connection's framing cannot be trusted.
            context.close(promise: nil)
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let head):
            // Interim answers (100 Continue, 103 Early Hints) precede the real one.
            if head.status.code >= 100 && head.status.code < 200 && head.status != .switchingProtocols { return }
            current.head = head
            inFlight = current
        case .body(var part):
            guard current.head != nil else { return }
            let room = current.bodyLimit - current.body.readableBytes
            if part.readableBytes > room { current.truncated = true }
            if room > 0, let slice = part.readSlice(length: min(room, part.readableBytes)) {
                var slice = slice
                current.body.writeBuffer(&slice)
            }
            inFlight = current
        case .end:
            guard let head = current.head else { return }
            inFlight = nil
            let reusable = current.written && head.isKeepAlive && current.writeError == nil
            current.promise.succeed(
                HTTP1Exchange(
                    response: HTTP1Response(
                        status: head.status, headers: head.headers, body: current.body, bodyTruncated: current.truncated,
                        early: !current.written),
                    reusable: reusable))
            if !reusable { context.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if firstError == nil { firstError = error }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connectionClosed()
        context.fireChannelInactive()
    }

    /// Ends the request in flight, if any: its answer if a refusal had come, else the error.
    func connectionClosed() {
        if let current = inFlight {
            inFlight = nil
            if let head = current.head, head.status.code >= 300 {
                // A refusal whose connection then broke (the server closed after answering
                // at the head of a large body): the refusal is the outcome, not a failure.
                current.promise.succeed(
                    HTTP1Exchange(
                        response: HTTP1Response(
                            status: head.status, headers: head.headers, body: current.body, bodyTruncated: current.truncated, early: true),
                        reusable: false))
            } else if current.written, current.writeError == nil {
                // The server had the whole request: it may have stored it.
                let why = firstError.map { ": \($0)" } ?? ""
                current.promise.fail(HTTP1ClientError(.answerLost, "the connection to \(host) broke after the request was sent, before an answer\(why)"))
            } else {
                let error =
                    firstError ?? current.writeError
                    ?? HTTP1ClientError(.connectionClosed, "\(host) closed the connection before answering")
                current.promise.fail(error)
            }
        }
    }
}
