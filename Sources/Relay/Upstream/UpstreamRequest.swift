import GoCompatibility
import NIOCore
import NIOHTTP1
import RelayMetrics

/// A request ready to go to the remote.
public struct UpstreamRequest: Sendable {
    public var method: HTTPMethod
    public var url: String
    public var headers: HTTPHeaders
    public var body: ByteBuffer
}

/// Turns a client's upload into the request the remote receives: the rules of the Go
/// extension (URL joined onto the remote's base path, configured auth and tenant over the
/// client's, `Host` of the remote) without its defects (extra headers applied, a real
/// `X-Forwarded-Host`, paths that cannot climb out of the base path), and with
/// PYROSCOPE_LAMBDA_LABELS the Lambda labels added to each profile.
///
/// Requests are built from the upload as the client sent it each time it is delivered
/// (the spool and the journal keep the client's bytes), so the labels are applied once
/// per delivery whether the upload comes from memory or from a replayed spool.
public struct UpstreamRequestBuilder: Sendable {
    /// `remote` and the session id decide the URL, which is remembered per request target
    /// and session id.
    public let remote: RemoteEndpoint
    public var credentials: UpstreamCredentials
    public var tenantID: String
    public var extraHeaders: [(name: String, value: String)]
    public let session: SessionIdentity
    /// Added to every profile; empty: requests are built exactly as without the feature.
    public let labels: LambdaLabels
    private let urls = BoundedMemo<URLKey, BuiltURL>()
    private struct URLKey: Hashable, Sendable {
        var target: String
        var session: UInt64
    }

    struct BuiltURL: Sendable {
        var url: String
        /// Set when the labels could not go into an `/ingest` name.
        var labelsNotApplied: LabelsNotAppliedReason?
    }

    /// A request, and why it lacks the labels when it does.
    public struct Prepared: Sendable {
        public var request: UpstreamRequest
        public var labelsNotApplied: LabelsNotAppliedReason?
    }

    public init(
        remote: RemoteEndpoint, credentials: UpstreamCredentials, tenantID: String, extraHeaders: [(name: String, value: String)],
        session: SessionIdentity, labels: LambdaLabels = .none
    ) {
        self.remote = remote
        self.credentials = credentials
        self.tenantID = tenantID
        self.extraHeaders = extraHeaders
        self.session = session
        self.labels = labels
    }

    public init(configuration: RelayConfiguration, remote: RemoteEndpoint, session: SessionIdentity) {
        self.init(
            remote: remote, credentials: configuration.credentials, tenantID: configuration.tenantID,
            extraHeaders: configuration.extraHeaders, session: session, labels: configuration.labels)
    }

    /// Hop-by-hop headers (RFC 9110 §7.6.1, as Go's reverse proxy lists them) belong to
    /// the client's connection, not to the request; `host`, `content-length` and `expect`
    /// are re-derived for the upstream connection.
    static let connectionHeaders: Set<String> = [
        "connection", "proxy-connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
        "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length", "expect",
    ]

    public func build(_ upload: Upload) -> UpstreamRequest { prepare(upload).request }

    public func prepare(_ upload: Upload) -> Prepared {
        let sessionID = session.current
        let built = urls.value(for: URLKey(target: upload.target, session: sessionID.value)) { builtURL(for: $0.target, sessionID: sessionID) }
        var request = UpstreamRequest(method: upload.method, url: built.url, headers: headers(for: upload.headers), body: upload.body)
        var notApplied = built.labelsNotApplied
        if !labels.isEmpty, let shape = RequestBodyLabels.Shape(path: cleanRootedPath(requestPath(upload.target))[...]) {
            switch RequestBodyLabels.add(labels.labels, shape: shape, headers: upload.headers, body: upload.body) {
            case .rewritten(let body): request.body = body
            case .unchanged: break
            case .notApplied(let reason): notApplied = reason
            }
        }
        return Prepared(request: request, labelsNotApplied: notApplied)
    }

    /// Remote origin + base path + cleaned request path, then the query as sent
    /// (only `name` of a legacy `/ingest` gains the session id, and the labels).
    func url(for target: String) -> String { builtURL(for: target, sessionID: session.current).url }

    func url(for target: String, sessionID: SessionID) -> String { builtURL(for: target, sessionID: sessionID).url }

    func builtURL(for target: String, sessionID: SessionID) -> BuiltURL {
        let queryStart = target.utf8.firstIndex(of: UInt8(ascii: "?"))
        let rawPath = target[..<(queryStart ?? target.endIndex)]
        let query = queryStart.map { target[target.index(after: $0)...] }

        let cleanPath = cleanRootedPath(rawPath)
        var url = remote.origin
        if remote.basePath.isEmpty || cleanPath != "/" {
            url += remote.basePath + sanitizeURLComponent(cleanPath, allowed: .path)
        } else {
            url += remote.basePath
        }
        var notApplied: LabelsNotAppliedReason?
        if let query {
            var finalQuery = String(query)
            if cleanPath == "/ingest" {
                let added = [LambdaLabel(name: SessionID.labelName, value: sessionID.description)] + labels.labels
                switch IngestNameLabels.add(added, toQuery: query) {
                case .rewritten(let rewritten): finalQuery = rewritten
                case .unchanged: break
                case .unparsableName: if !labels.isEmpty { notApplied = .unparsableIngestName }
                }
            }
            url += "?" + sanitizeURLComponent(finalQuery, allowed: .query)
        } else if cleanPath == "/ingest", !labels.isEmpty {
            notApplied = .unparsableIngestName
        }
        return BuiltURL(url: url, labelsNotApplied: notApplied)
    }

    func headers(for clientHeaders: HTTPHeaders) -> HTTPHeaders {
        // Headers named in `Connection` are hop-by-hop too.
        var dropped = Self.connectionHeaders
        for value in clientHeaders[canonicalForm: "connection"] {
            dropped.insert(value.lowercased().trimmingGoSpace())
        }
        var headers = HTTPHeaders()
        headers.reserveCapacity(clientHeaders.count + 4)
        headers.add(name: "Host", value: remote.authority)
        for (name, value) in clientHeaders where !dropped.contains(name.lowercased()) {
            headers.add(name: name, value: value)
        }
        if let clientHost = clientHeaders.first(name: "host") {
            headers.replaceOrAdd(name: "X-Forwarded-Host", value: clientHost)
        }
        switch credentials {
        case .bearer(let token):
            headers.replaceOrAdd(name: "Authorization", value: "Bearer \(token)")
        case .basic(let user, let password):
            headers.replaceOrAdd(name: "Authorization", value: basicAuthorizationValue(user: user, password: password))
        case .none:
            if let userInfo = remote.userInfo, !headers.contains(name: "authorization") {
                headers.add(name: "Authorization", value: basicAuthorizationValue(user: userInfo.user, password: userInfo.password))
            }
        }
        if !tenantID.isEmpty {
            headers.replaceOrAdd(name: "X-Scope-OrgID", value: tenantID)
        }
        for (name, value) in extraHeaders {
            if name.lowercased() == "host" { continue }  // the connection decides Host
            headers.replaceOrAdd(name: name, value: value)
        }
        return headers
    }
}
