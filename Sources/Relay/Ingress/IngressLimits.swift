#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// What one client may hold of the relay: the size of a request head, how long each part
/// of a request may take, and how many connections may be open. Every bound answers with
/// a status (414, 431, 408, 503) or a quiet close, never with the process ending.
public struct IngressLimits: Sendable, Equatable {
    /// Longest request target (path and query). nginx's default request line buffer is
    /// 8 KiB, so a longer target could not be relayed to most servers anyway: `414`.
    public var maxTargetBytes: Int
    /// Longest request head: request line and header lines as sent. Larger: `431`.
    /// Together with the target bound this keeps the head the relay sends upstream well
    /// under 64 KiB, which async-http-client cannot send safely (see `UpstreamHeadGuard`).
    public var maxHeadBytes: Int
    /// Most header lines in one request: `431`.
    public var maxHeaderCount: Int
    /// From a request's first byte until its head is complete: `408`, then closed.
    public var headerTimeout: Duration
    /// Longest wait for the next bytes of a body: `408`, then closed.
    public var bodyStallTimeout: Duration
    /// A keep-alive connection with no request for this long is closed quietly.
    public var idleTimeout: Duration
    /// Open client connections; nil: derived from the process's file-descriptor limit
    /// (`connectionCap(fileDescriptorLimit:upstreamConnections:)`). Beyond it the longest-idle
    /// connection is closed to make room, and with none idle the newcomer gets `503`.
    public var maxConnections: Int?
    /// A connection still sending its request head after this long counts as idle when
    /// room must be made (a slow-header attack holds connections exactly so).
    public var slowHeadGrace: Duration

    public init(
        maxTargetBytes: Int = 8 << 10,
        maxHeadBytes: Int = 32 << 10,
        maxHeaderCount: Int = 256,
        headerTimeout: Duration = .seconds(10),
        bodyStallTimeout: Duration = .seconds(30),
        idleTimeout: Duration = .seconds(60),
        maxConnections: Int? = nil,
        slowHeadGrace: Duration = .seconds(1)
    ) {
        self.maxTargetBytes = maxTargetBytes
        self.maxHeadBytes = maxHeadBytes
        self.maxHeaderCount = maxHeaderCount
        self.headerTimeout = headerTimeout
        self.bodyStallTimeout = bodyStallTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
        self.slowHeadGrace = slowHeadGrace
    }

    /// Client connections at most: 512, and always 64 + `upstreamConnections` (the drain
    /// concurrency: the most the senders open at once) descriptors below the
    /// limit, left for upstream connections, spool files, the Extensions and Telemetry
    /// APIs, the event loops' own descriptors and stdio. Lambda's limit is 1,024: 512.
    public static func connectionCap(fileDescriptorLimit: Int, upstreamConnections: Int) -> Int {
        max(8, min(512, fileDescriptorLimit - 64 - upstreamConnections))
    }

    /// The soft `RLIMIT_NOFILE` of this process (what `accept` fails beyond).
    public static var fileDescriptorLimit: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return limit.rlim_cur == rlim_t.max ? Int.max / 2 : Int(clamping: limit.rlim_cur)
    }

    func connectionCap(upstreamConnections: Int) -> Int {
        maxConnections ?? Self.connectionCap(fileDescriptorLimit: Self.fileDescriptorLimit, upstreamConnections: upstreamConnections)
    }
}
