/// Credentials the relay puts on every upstream request, replacing the client's own.
public enum UpstreamCredentials: Sendable, Equatable, CustomStringConvertible {
    /// Nothing configured: the client's own Authorization header passes through.
    case none
    case bearer(token: String)
    case basic(user: String, password: String)

    /// Never the secret itself: values like this end up in debug logs.
    public var description: String {
        switch self {
        case .none: "none"
        case .bearer: "bearer(***)"
        case .basic(let user, _): "basic(\(user):***)"
        }
    }

    /// The secret parts, for log redaction.
    public var secrets: [String] {
        switch self {
        case .none: []
        case .bearer(let token): [token]
        case .basic(let user, let password): [password, basicAuthorizationValue(user: user, password: password)]
        }
    }
}
