import Logging
import Synchronization

/// Says why uploads fail, in words an operator can act on: the first failure of each cause
/// is logged at `warn` at once, later ones at most once per `interval` with the count of
/// failures since the previous line. The line names the host, the setting to check and
/// the credential settings in use, never a credential.
public final class UpstreamFailureReporter: Sendable {
    /// What the explanations refer to.
    public struct Context: Sendable {
        public var remote: RemoteEndpoint?
        /// Names of the settings the upstream credentials come from, e.g.
        /// `["PYROSCOPE_AUTH_TOKEN_SECRET_ARN"]`; empty when none are configured.
        public var credentialSettings: [String]
        public var timeout: Duration
        /// The proxy upstream requests go through, if any.
        public var proxy: ProxyServer?
        public var trust: TrustConfiguration

        public init(
            remote: RemoteEndpoint?, credentialSettings: [String] = [], timeout: Duration = .seconds(10), proxy: ProxyServer? = nil,
            trust: TrustConfiguration = .system
        ) {
            self.remote = remote
            self.credentialSettings = credentialSettings
            self.timeout = timeout
            self.proxy = proxy
            self.trust = trust
        }
    }

    private struct Window {
        var lastLine: ContinuousClock.Instant
        var unreported = 0
    }

    public let context: Context
    let interval: Duration
    private let windows = Mutex<[UpstreamAttemptCause: Window]>([:])

    public init(context: Context, interval: Duration = .seconds(60)) {
        self.context = context
        self.interval = interval
    }

    /// Records one failed attempt and logs when it is due.
    /// - Parameters:
    ///   - status: the HTTP status, for answers.
    ///   - detail: the error or the start of the answer's body.
    public func record(
        _ cause: UpstreamAttemptCause, status: UInt? = nil, detail: String, logger: Logger, now: ContinuousClock.Instant = .now
    ) {
        guard cause != .none else { return }
        let count: Int? = windows.withLock { windows in
            guard var window = windows[cause] else {
                windows[cause] = Window(lastLine: now)
                return 1
            }
            window.unreported += 1
            defer { windows[cause] = window }
            guard now - window.lastLine >= interval else { return nil }
            let count = window.unreported
            window = Window(lastLine: now)
            return count
        }
        guard let count else { return }
        var metadata: Logger.Metadata = [LogKey.cause: "\(cause.rawValue)", LogKey.count: .stringConvertible(count)]
        if let host = context.remote?.host { metadata[LogKey.host] = "\(host)" }
        if let status { metadata[LogKey.status] = .stringConvertible(status) }
        if !detail.isEmpty { metadata[LogKey.error] = "\(detail)" }
        logger.warning("Upload attempt failed: \(explanation(cause, status: status))", metadata: metadata)
    }

    /// What went wrong and what to check, for each cause.
    public func explanation(_ cause: UpstreamAttemptCause, status: UInt? = nil) -> String {
        let host = context.remote?.host ?? "the remote"
        let address = context.remote.map { "PYROSCOPE_REMOTE_ADDRESS (\($0.redactedDescription))" } ?? "PYROSCOPE_REMOTE_ADDRESS"
        let via = context.proxy.map { " through the proxy \($0)" } ?? ""
        switch cause {
        case .none:
            return "delivered"
        case .dns:
            return "cannot resolve the host name \(host): check \(address) and the function's DNS and VPC settings"
        case .refused:
            let port = context.remote.map { $0.port ?? ($0.scheme == .https ? 443 : 80) } ?? 0
            return "\(host):\(port) refused the connection: check that the server runs and that the port in \(address) is right"
        case .timeout:
            return
                "no answer from \(host)\(via) within PYROSCOPE_TIMEOUT (\(context.timeout)): check that the function can reach it (VPC, NAT, security groups, HTTPS_PROXY) or raise PYROSCOPE_TIMEOUT"
        case .tls:
            var text =
                "TLS verification of \(host) failed: its certificate is not trusted or does not name \(host); check the CA that signed it"
            if let file = context.trust.additionalCAFile {
                text += " (PYROSCOPE_CA_FILE=\(file) is in use: it must hold that CA)"
            } else if let file = context.trust.replacementCAFile {
                text += " (SSL_CERT_FILE=\(file) replaces the system roots: it must hold that CA)"
            } else {
                text += "; for a private CA set PYROSCOPE_CA_FILE to its PEM bundle"
            }
            return text
        case .proxy:
            return
                "the proxy \(context.proxy?.description ?? "") failed to connect to \(host): check HTTPS_PROXY/HTTP_PROXY and the proxy's credentials, or exclude the host with NO_PROXY"
        case .connection:
            return "the connection to \(host)\(via) broke before an answer"
        case .unauthorized:
            let code = status.map { "\($0)" } ?? "401/403"
            if context.credentialSettings.isEmpty {
                return
                    "\(host) refused the upload (\(code)) and no credentials are configured: set PYROSCOPE_AUTH_TOKEN, or PYROSCOPE_BASIC_AUTH_USER with PYROSCOPE_BASIC_AUTH_PASSWORD (or their _SECRET_ARN forms)"
            }
            return "\(host) refused the credentials (\(code)): check \(context.credentialSettings.joined(separator: ", "))"
        case .notFound:
            return "\(host) answered 404 Not Found: check the base path of \(address)"
        case .tooLarge:
            return "\(host) answered 413: the upload is larger than the server (or a proxy in front of it) accepts; raise its request body limit"
        case .rateLimited:
            return "\(host) is rate limiting (429): uploads are retried after its Retry-After"
        case .clientError:
            return "\(host) rejected the upload (\(status.map { "\($0)" } ?? "4xx")): see the error field for its reason"
        case .serverError:
            return "\(host) is failing (\(status.map { "\($0)" } ?? "5xx")): uploads are retried with backoff"
        case .unexpectedStatus:
            return "\(host) answered \(status.map { "\($0)" } ?? "") (redirects are not followed: point \(address) at the final address)"
        }
    }
}
