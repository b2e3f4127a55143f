/// Why a secret could not be fetched. Messages name the secret's ARN and AWS's error code
/// and message, never a secret value or a credential.
public struct SecretFetchError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }

        /// No AWS credentials in the environment, or the credentials endpoint failed.
        public static let credentials = Code(name: "aws_credentials")
        /// No answer from AWS (DNS, connection, TLS, timeout).
        public static let transport = Code(name: "aws_transport")
        /// AWS answered with an error (access denied, not found, throttled, ...).
        public static let service = Code(name: "aws_service")
        /// The answer was not what the API documents.
        public static let invalidResponse = Code(name: "aws_invalid_response")
        /// The secret is there but the credential cannot be taken from it (`#key` rule).
        public static let invalidValue = Code(name: "secret_invalid_value")
        /// The setting cannot work (partition without endpoint).
        public static let misconfigured = Code(name: "misconfigured")
    }

    public var code: Code
    public var message: String
    /// AWS's error code (`AccessDeniedException`, ...) when AWS answered with one.
    public var awsErrorCode: String?
    public var underlying: String?

    public init(_ code: Code, _ message: String, awsErrorCode: String? = nil, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.awsErrorCode = awsErrorCode
        self.underlying = underlying.map { String(describing: $0) }
    }

    public var description: String {
        if let underlying { return "\(message) (\(code): \(underlying))" }
        return "\(message) (\(code))"
    }
}
