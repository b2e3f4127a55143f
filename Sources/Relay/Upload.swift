import NIOCore
import NIOHTTP1

/// One request a profiler sent to the relay, read whole, waiting to be relayed.
public struct Upload: Sendable {
    public var method: HTTPMethod
    /// The raw request target (`/ingest?name=...`), exactly as the client sent it.
    public var target: String
    public var headers: HTTPHeaders
    public var body: ByteBuffer
    public var receivedAt: ContinuousClock.Instant

    public init(method: HTTPMethod, target: String, headers: HTTPHeaders, body: ByteBuffer, receivedAt: ContinuousClock.Instant = .now) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.receivedAt = receivedAt
    }

    /// The path part of the target, for logs and metrics.
    public var path: Substring { requestPath(target) }

    /// What the upload costs the queue: body plus a rough allowance for the rest.
    var queuedBytes: Int { body.readableBytes + target.utf8.count + 64 * headers.count }
}

/// The path part of a request target: everything before the query.
func requestPath(_ target: String) -> Substring {
    // The UTF-8 view: searching Characters would run grapheme breaking over the target.
    target[..<(target.utf8.firstIndex(of: UInt8(ascii: "?")) ?? target.endIndex)]
}
