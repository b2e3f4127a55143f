/// Credentials the relay learns after start (fetched from AWS Secrets Manager or SSM), so
/// uploads may have to wait for them. Implemented in `RelayAWS`; nil when the credentials
/// are plain settings.
public protocol UpstreamCredentialSource: Sendable {
    /// The credentials to send now, without waiting; nil while none have been fetched.
    var current: UpstreamCredentials? { get }

    /// Waits until credentials are there, at most `limit`.
    /// Throws `CancellationError` when the waiting task is cancelled (shutdown).
    func waitForCredentials(atMost limit: Duration) async throws -> CredentialWait

    /// The remote refused `rejected` with 401 or 403: fetch again (the secret may have been
    /// rotated). Returns newer credentials, or nil when there are none (then the refusal stands).
    func replacement(for rejected: UpstreamCredentials) async -> UpstreamCredentials?
}

public enum CredentialWait: Sendable, Equatable {
    case available(UpstreamCredentials)
    /// Still being fetched when the limit passed.
    case timedOut
    /// Can never be fetched (the setting is unusable); already reported at start.
    case unusable
}
