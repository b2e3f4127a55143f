import Logging
import NIOCore
import RelayMetrics

/// Answers an HTTP/2 connection with prior knowledge (gRPC, which OpenTelemetry's OTLP
/// exporters use unless told `http/protobuf`) in its own protocol: the server preface (an
/// empty SETTINGS frame), then GOAWAY with `HTTP_1_1_REQUIRED`, so the client reports why
/// instead of a parse failure; the relay logs it (rate-limited) and counts it in
/// `client_connections_closed{reason="http2_refused"}`. Every other connection passes
/// through untouched; the check ends at the connection's first bytes.
final class HTTP2Refusal: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// RFC 9113 §3.4: what an HTTP/2 client sends first.
    static let clientPreface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// An empty SETTINGS frame, then GOAWAY (last stream 0, error HTTP_1_1_REQUIRED = 0xd)
    /// with debug data saying what to do.
    static let answer: [UInt8] = {
        let settings: [UInt8] = [0, 0, 0, 0x04, 0, 0, 0, 0, 0]
        let debug = Array("pyroscope-lambda-extension speaks HTTP/1.1: set OTEL_EXPORTER_OTLP_PROFILES_PROTOCOL=http/protobuf".utf8)
        let length = 8 + debug.count
        var goAway: [UInt8] = [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), 0x07, 0, 0, 0, 0, 0]
        goAway += [0, 0, 0, 0, 0, 0, 0, 0x0D] + debug
        return settings + goAway
    }()

    private enum State {
        case deciding(ByteBuffer?)
        case http1
        case refused
    }

    private var state = State.deciding(nil)
    private let shared: IngressServer.Context

    init(shared: IngressServer.Context) {
        self.shared = shared
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .http1:
            context.fireChannelRead(data)
        case .refused:
            return
        case .deciding(let held):
            var bytes = unwrapInboundIn(data)
            if var held {
                held.writeBuffer(&bytes)
                bytes = held
            }
            let count = min(bytes.readableBytes, Self.clientPreface.count)
            guard bytes.readableBytesView.prefix(count).elementsEqual(Self.clientPreface.prefix(count)) else {
                state = .http1
                context.fireChannelRead(wrapInboundOut(bytes))
                return
            }
            guard count == Self.clientPreface.count else {
                state = .deciding(bytes)  // a prefix of the preface so far: wait for the rest
                return
            }
            refuse(context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .http1 = state { context.fireChannelReadComplete() }
    }

    private func refuse(context: ChannelHandlerContext) {
        state = .refused
        shared.counters.metrics.clientConnectionsClosed(reason: .http2Refused).increment()
        if let held = shared.refusalLogLimiter.admit("http2") {
            var metadata: Logger.Metadata = [LogKey.reason: "\(ClientConnectionCloseReason.http2Refused.rawValue)"]
            if held > 0 { metadata[LogKey.suppressed] = .stringConvertible(held) }
            shared.logger.warning(
                "Refused an HTTP/2 connection (gRPC?): the relay takes HTTP/1.1 only; an OpenTelemetry profiler needs OTEL_EXPORTER_OTLP_PROFILES_PROTOCOL=http/protobuf",
                metadata: metadata)
        }
        let channel = context.channel
        context.writeAndFlush(wrapInboundOut(ByteBuffer(bytes: Self.answer))).whenComplete { _ in channel.close(promise: nil) }
    }
}
