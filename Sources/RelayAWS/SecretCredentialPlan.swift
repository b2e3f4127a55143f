import RelayCore

/// Which upstream credential a secret provides, read from which setting.
public struct SecretCredentialPlan: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// `Authorization: Bearer <secret>` (PYROSCOPE_AUTH_TOKEN_SECRET_ARN).
        case bearerToken
        /// Basic auth with this user and the secret as password (PYROSCOPE_BASIC_AUTH_PASSWORD_SECRET_ARN).
        case basicPassword(user: String)
    }

    public var reference: SecretReference
    public var kind: Kind
    /// The setting the ARN came from, for messages.
    public var variable: String

    public init(reference: SecretReference, kind: Kind, variable: String) {
        self.reference = reference
        self.kind = kind
        self.variable = variable
    }

    func credentials(_ value: String) -> UpstreamCredentials {
        switch kind {
        case .bearerToken: .bearer(token: value)
        case .basicPassword(let user): .basic(user: user, password: value)
        }
    }
}

/// Everything the secret fetch needs, read from the environment by the settings.
public struct SecretSettings: Sendable, Equatable {
    /// nil: the credentials are plain settings (or none).
    public var plan: SecretCredentialPlan?
    /// A secret ARN is set but cannot be used (already reported): uploads are dropped as
    /// `misconfigured` rather than sent without credentials.
    public var unusable: Bool
    public var awsCredentials: AWSCredentialSource
    public var endpoints: AWSEndpointOverrides
    /// How long start-up waits for the first fetch: Lambda's init phase is limited to 10 s
    /// and must never fail for this, so after this the relay runs and keeps trying.
    public var startBudget: Duration

    public init(
        plan: SecretCredentialPlan? = nil, unusable: Bool = false, awsCredentials: AWSCredentialSource = .none,
        endpoints: AWSEndpointOverrides = AWSEndpointOverrides(), startBudget: Duration = .seconds(3)
    ) {
        self.plan = plan
        self.unusable = unusable
        self.awsCredentials = awsCredentials
        self.endpoints = endpoints
        self.startBudget = startBudget
    }

}

/// The source for a secret setting that cannot be used: every upload is dropped as
/// `misconfigured` (the error was logged at start).
public struct UnusableCredentialSource: UpstreamCredentialSource {
    public init() {}
    public var current: UpstreamCredentials? { nil }
    public func waitForCredentials(atMost limit: Duration) async throws -> CredentialWait { .unusable }
    public func replacement(for rejected: UpstreamCredentials) async -> UpstreamCredentials? { nil }
}
