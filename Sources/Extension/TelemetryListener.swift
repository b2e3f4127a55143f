import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import RelayCore
import RelayJSON
import Synchronization

/// The HTTP listener Lambda's Telemetry API posts platform events to.
public final class TelemetryListener: Service, Sendable, CustomStringConvertible {
    private let group: any EventLoopGroup
    private let tracker: RuntimeDoneTracker
    private let milestones: PlatformMilestones
    private let logger: Logger
    private let channel = Mutex<(any Channel)?>(nil)

    public init(group: any EventLoopGroup, tracker: RuntimeDoneTracker, milestones: PlatformMilestones = PlatformMilestones(), logger: Logger) {
        self.group = group
        self.tracker = tracker
        self.milestones = milestones
        self.logger = logger
    }

    public var description: String { "TelemetryListener" }

    /// Binds `sandbox.localdomain` (what Lambda posts to) when it resolves, else loopback;
    /// returns the destination URI to subscribe with.
    public func bind() async throws -> String {
        let tracker = self.tracker
        let milestones = self.milestones
        let logger = self.logger
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(TelemetryHandler(tracker: tracker, milestones: milestones, logger: logger))
                }
            }
        let bound: any Channel
        do {
            bound = try await bootstrap.bind(host: "sandbox.localdomain", port: 0).get()
        } catch {
            bound = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
        }
        channel.withLock { $0 = bound }
        let port = bound.localAddress?.port ?? 0
        return "http://sandbox.localdomain:\(port)"
    }

    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }

    /// Stops listening: at shutdown, or at once when the subscription was refused.
    public func close() async {
        let bound = channel.withLock { channel in
            defer { channel = nil }
            return channel
        }
        try? await bound?.close()
    }

    /// The platform events of a Telemetry API batch that the extension acts on.
    struct PlatformEvents: Equatable {
        /// Request ids of `platform.runtimeDone`.
        var runtimeDone: [String] = []
        /// Unix milliseconds of `platform.restoreStart`, if the batch has one.
        var restoreStart: Int64?
        /// The batch has `platform.initRuntimeDone`.
        var functionInitDone = false
    }

    /// One Telemetry API event, as far as the extension reads it.
    struct Event {
        var type: String
        var time: String?
        var requestId: String?

        /// A batch is read whole or not at all: one event of another shape (a `type` that is
        /// not a string, a `record` that is not an object) drops the batch, as before.
        init(json: JSONValue) throws(JSONError) {
            type = try json.required("type", \.string)
            time = try json.optional("time", \.string)
            let record = try json.optional("record", \.object).map(JSONValue.object)
            requestId = try record?.optional("requestId", \.string)
        }

        static func batch(_ body: [UInt8]) throws(JSONError) -> [Event] {
            let json = try JSONValue.parse(body)
            guard let elements = json.array else { throw JSONError(.typeMismatch, "a Telemetry API batch is an array, not \(json.typeName)") }
            var events: [Event] = []
            for element in elements { events.append(try Event(json: element)) }
            return events
        }
    }

    static func platformEvents(in body: [UInt8]) -> PlatformEvents {
        var found = PlatformEvents()
        guard let events = try? Event.batch(body) else { return found }
        for event in events {
            switch event.type {
            case "platform.runtimeDone": if let id = event.requestId { found.runtimeDone.append(id) }
            case "platform.restoreStart": found.restoreStart = event.time.flatMap { PlatformMilestones.unixMilliseconds(rfc3339: $0) }
            case "platform.initRuntimeDone": found.functionInitDone = true
            default: break
            }
        }
        return found
    }

    /// Extracts the request ids of `platform.runtimeDone` events from a Telemetry API batch.
    static func runtimeDoneRequestIDs(in body: [UInt8]) -> [String] { platformEvents(in: body).runtimeDone }
}

private final class TelemetryHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let tracker: RuntimeDoneTracker
    let milestones: PlatformMilestones
    let logger: Logger
    var head: HTTPRequestHead?
    var body: [UInt8] = []

    init(tracker: RuntimeDoneTracker, milestones: PlatformMilestones, logger: Logger) {
        self.tracker = tracker
        self.milestones = milestones
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
        case .body(let buffer):
            if body.count < 4 << 20 { body.append(contentsOf: buffer.readableBytesView) }
        case .end:
            guard let head else { return }
            let events = TelemetryListener.platformEvents(in: body)
            for requestID in events.runtimeDone {
                logger.trace("Runtime done", metadata: [LogKey.requestId: "\(requestID)"])
                tracker.markDone(requestID)
            }
            if let restoreStart = events.restoreStart { milestones.markRestoreStart(unixMilliseconds: restoreStart) }
            if events.functionInitDone { milestones.markFunctionInitDone() }
            var headers = HTTPHeaders([("content-length", "0")])
            if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            if !head.isKeepAlive { context.close(promise: nil) }
            self.head = nil
        }
    }
}
