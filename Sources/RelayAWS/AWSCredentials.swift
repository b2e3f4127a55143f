/// An access key pair, with the session token of temporary credentials.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// The key id only: values like this end up in debug logs.
    public var description: String { "AWSCredentials(\(accessKeyID), secret: ***)" }

    /// What must never be logged.
    public var secrets: [String] { [secretAccessKey] + (sessionToken.map { [$0] } ?? []) }
}

/// Where the AWS credentials for the secret fetch come from, as the AWS SDKs look for them.
public enum AWSCredentialSource: Sendable, Equatable, CustomStringConvertible {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`: what Lambda gives
    /// every function and extension.
    case environment(AWSCredentials)
    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI` with `AWS_CONTAINER_AUTHORIZATION_TOKEN`: SnapStart,
    /// where the key variables are absent and credentials are fetched from Lambda.
    case container(uri: String, authorizationToken: String?)
    /// Neither: a secret cannot be fetched.
    case none

    public var description: String {
        switch self {
        case .environment: "environment (AWS_ACCESS_KEY_ID)"
        case .container: "container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI)"
        case .none: "none"
        }
    }
}
