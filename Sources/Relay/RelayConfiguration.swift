import NIOHTTP1

/// Everything the relay core needs, with defaults for every field.
public struct RelayConfiguration: Sendable {
    /// nil when PYROSCOPE_REMOTE_ADDRESS is unusable: the relay still answers its clients
    /// (it must never break the function) but refuses uploads as `misconfigured`.
    public var remote: RemoteEndpoint?
    public var credentials: UpstreamCredentials
    /// Sent as `X-Scope-OrgID` when not empty.
    public var tenantID: String
    /// PYROSCOPE_HTTP_HEADERS, applied last so they override everything else.
    public var extraHeaders: [(name: String, value: String)]
    /// Bound on one upstream request, from connect to the last response byte.
    public var upstreamTimeout: Duration
    /// Concurrent upstream senders.
    public var workers: Int
    /// Concurrent upstream senders while an invocation flush waits or the relay drains at
    /// shutdown (at least `workers`): a drain ends when the remote has answered, not after
    /// queued / workers round trips.
    public var drainConcurrency: Int
    public static let defaultDrainConcurrency = 32
    /// Largest upload body accepted; larger gets `413`.
    public var maxBodyBytes: Int
    /// Queue bounds: whichever is reached first makes the relay answer `503`.
    public var queueMaxItems: Int
    public var queueMaxBytes: Int
    public var listenAddresses: [ListenAddress]
    /// nil: random, made at first use (and anew after a SnapStart restore).
    public var sessionID: SessionID?
    /// How long a graceful shutdown may spend sending what is queued.
    public var drainTimeout: Duration
    public var retryPolicy: RetryPolicy
    /// Whether an upload of unknown fate (timeout, answer lost after it was sent) is sent
    /// again. The extension turns it off where Lambda freezes the environment while uploads
    /// may be on the wire (`background`): resent, they were stored twice.
    public var resendsUnknownFate = true
    /// Where uploads go when the memory queue is full; nil: no spool (full means 503).
    public var spoolDirectory: String?
    public var spoolMaxBytes: Int
    /// Proxy and trust roots for reaching the remote.
    public var network: NetworkConfiguration = .direct
    /// Names of the settings the credentials come from, for explaining 401/403 (never values).
    public var credentialSettings: [String] = []
    /// Request head size, client timeouts and the connection cap.
    public var ingress: IngressLimits
    /// PYROSCOPE_LAMBDA_LABELS: added to every profile relayed; empty (the default): none.
    public var labels: LambdaLabels = .none

    /// Memory is the function's own: keep the relay's share small and spill to disk.
    public static let defaultQueueMaxBytes = 8 << 20
    /// Lambda's /tmp (512 MB by default) is the only writable place.
    public static let defaultSpoolDirectory = "/tmp/pyroscope-lambda-extension-spool"
    public static let defaultSpoolMaxBytes = 64 << 20

    public static let defaultRemote = try! RemoteEndpoint(parsing: "https://profiles-prod-001.grafana.net")

    public init(
        remote: RemoteEndpoint? = RelayConfiguration.defaultRemote,
        credentials: UpstreamCredentials = .none,
        tenantID: String = "",
        extraHeaders: [(name: String, value: String)] = [],
        upstreamTimeout: Duration = .seconds(10),
        workers: Int = 5,
        drainConcurrency: Int = RelayConfiguration.defaultDrainConcurrency,
        maxBodyBytes: Int = 8 << 20,
        queueMaxItems: Int = 1024,
        queueMaxBytes: Int = RelayConfiguration.defaultQueueMaxBytes,
        listenAddresses: [ListenAddress] = ListenAddress.loopback(port: 4040),
        sessionID: SessionID? = nil,
        drainTimeout: Duration? = nil,
        retryPolicy: RetryPolicy = RetryPolicy(),
        spoolDirectory: String? = nil,
        spoolMaxBytes: Int = RelayConfiguration.defaultSpoolMaxBytes,
        ingress: IngressLimits = IngressLimits()
    ) {
        self.remote = remote
        self.credentials = credentials
        self.tenantID = tenantID
        self.extraHeaders = extraHeaders
        self.upstreamTimeout = upstreamTimeout
        self.workers = workers
        self.drainConcurrency = max(workers, drainConcurrency)
        self.maxBodyBytes = maxBodyBytes
        self.queueMaxItems = queueMaxItems
        self.queueMaxBytes = queueMaxBytes
        self.listenAddresses = listenAddresses
        self.sessionID = sessionID
        self.drainTimeout = drainTimeout ?? upstreamTimeout
        self.retryPolicy = retryPolicy
        self.spoolDirectory = spoolDirectory
        self.spoolMaxBytes = spoolMaxBytes
        self.ingress = ingress
    }
}
