import NIOCore
import NIOPosix
import NIOSSL

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why an upstream attempt ended as it did: the `cause` label of the attempts metric and
/// the key of the failure log lines. A closed set, so the metric's series stay bounded.
public enum UpstreamAttemptCause: String, Sendable, CaseIterable {
    /// Delivered (2xx).
    case none
    /// The remote's host name did not resolve.
    case dns
    /// Nothing listens at the remote's address.
    case refused
    /// No connection or no answer within `PYROSCOPE_TIMEOUT`.
    case timeout
    /// TLS handshake or certificate verification failed.
    case tls
    /// The proxy refused, failed or wants other credentials.
    case proxy
    /// The connection broke (reset, closed before the answer).
    case connection
    /// 401 or 403.
    case unauthorized
    case notFound = "not_found"
    case tooLarge = "too_large"
    case rateLimited = "rate_limited"
    /// Any other 4xx.
    case clientError = "client_error"
    case serverError = "server_error"
    /// 1xx or 3xx (redirects are not followed: they would carry the credentials elsewhere).
    case unexpectedStatus = "unexpected_status"

    public init(status: UInt) {
        switch status {
        case 200..<300: self = .none
        case 401, 403: self = .unauthorized
        case 404: self = .notFound
        case 413: self = .tooLarge
        case 429: self = .rateLimited
        case 400..<500: self = .clientError
        case 500..<600: self = .serverError
        default: self = .unexpectedStatus
        }
    }

    /// Classifies what the HTTP client (NIO, NIOSSL) threw for an attempt.
    /// - Parameter proxyHost: a connection failure to this host is the proxy's.
    public init(error: any Error, proxyHost: String? = nil) {
        switch error {
        case let error as HTTP1ClientError:
            switch error.code {
            case .deadlineExceeded: self = .timeout
            case .proxyRefused, .proxyAuthenticationRequired: self = .proxy
            default: self = .connection
            }
        case let error as NIOConnectionError:
            if let proxyHost, error.host.lowercased() == proxyHost.lowercased() {
                self = .proxy
            } else if error.connectionErrors.isEmpty, error.dnsAError != nil || error.dnsAAAAError != nil {
                self = .dns
            } else if error.connectionErrors.contains(where: { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }) {
                self = .refused
            } else if error.connectionErrors.contains(where: { if case .connectTimeout = $0.error as? ChannelError { true } else { false } }) {
                self = .timeout
            } else {
                self = .connection
            }
        case is NIOSSLError, is NIOSSLExtraError, is BoringSSLError:
            self = .tls
        case is SocketAddressError:
            self = .dns
        case let error as IOError where error.errnoCode == ECONNREFUSED:
            self = .refused
        case ChannelError.connectTimeout:
            self = .timeout
        default:
            self = .connection
        }
    }

    /// Failures where no connection could be made: retrying at once cannot help, so the
    /// attempt counts and backs off (a dead pooled connection is `connection` instead).
    public var isUnreachable: Bool {
        switch self {
        case .dns, .refused, .tls, .proxy: true
        default: false
        }
    }
}

extension UploadFailure {
    /// What an uploader throws for an error of the HTTP client.
    public init(classifying error: any Error, proxyHost: String?) {
        let cause = UpstreamAttemptCause(error: error, proxyHost: proxyHost)
        let text = HTTPClientUploader.describe(error)
        switch cause {
        case .timeout: self = .timeout(text)
        case _ where cause.isUnreachable: self = .unreachable(cause, text)
        default: self = .connection(text)
        }
    }

    public var cause: UpstreamAttemptCause {
        switch self {
        case .timeout: .timeout
        case .connection: .connection
        case .unreachable(let cause, _): cause
        }
    }
}
