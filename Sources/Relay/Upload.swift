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

/// Why an accepted or offered upload did not reach the remote.
public enum DropReason: String, Sendable, CaseIterable {
    /// Queue full when it arrived (the client was told 503).
    case queueFull = "queue_full"
    /// The remote answered 4xx other than 408/429: retrying cannot help.
    case rejected4xx = "rejected_4xx"
    /// Still failing (5xx, 408, 429, timeout, connection error) after the last try.
    case maxRetries = "max_retries"
    /// Older than Pyroscope accepts (1 h) before it could be delivered.
    case tooOld = "too_old"
    /// Shutdown came and the drain deadline passed first.
    case shutdownDeadline = "shutdown_deadline"
    /// The remote address is unusable (the client was told 503).
    case misconfigured
    /// A spooled record that could not be read back (damaged, truncated, deleted).
    case corrupt
}

/// The path part of a request target: everything before the query.
func requestPath(_ target: String) -> Substring {
    // The UTF-8 view: searching Characters would run grapheme breaking over the target.
    target[..<(target.utf8.firstIndex(of: UInt8(ascii: "?")) ?? target.endIndex)]
}
