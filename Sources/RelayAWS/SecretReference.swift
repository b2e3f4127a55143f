import RelayCore

/// Which AWS API a secret is read from.
public enum SecretService: String, Sendable {
    case secretsManager = "secretsmanager"
    case ssm

    /// The SDK convention's service-specific endpoint variable.
    public var endpointVariable: String {
        switch self {
        case .secretsManager: "AWS_ENDPOINT_URL_SECRETS_MANAGER"
        case .ssm: "AWS_ENDPOINT_URL_SSM"
        }
    }
}

/// A secret named by ARN: a Secrets Manager secret or an SSM parameter, optionally with
/// `#key` to pick one string out of a JSON object.
///
/// Rule for the value: without `#key` the whole `SecretString` (or parameter value) is the
/// credential, with surrounding white space removed; with `#key` it must be a JSON object and
/// the credential is that key's value (a string, or a number written as it is).
public struct SecretReference: Sendable, Equatable, CustomStringConvertible {
    public var service: SecretService
    public var partition: String
    public var region: String
    /// The ARN without `#key`: what is sent as `SecretId` or `Name`.
    public var arn: String
    public var jsonKey: String?

    /// The ARN as written, `#key` included: safe to log (an ARN names a secret, it is not one).
    public var description: String { jsonKey.map { "\(arn)#\($0)" } ?? arn }

    /// - Parameter variable: the setting it came from, for the error message.
    public init(parsing text: String, variable: String) throws(RelayError) {
        func invalid(_ why: String) -> RelayError {
            RelayError(
                .misconfigured,
                "\(variable) '\(text)' is not usable: \(why); use a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME) or an SSM parameter ARN (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME), optionally ending in #json-key"
            )
        }
        var arn = Substring(text)
        var key: String?
        if let hash = text.lastIndex(of: "#") {
            arn = text[..<hash]
            key = String(text[text.index(after: hash)...])
            if key!.isEmpty { throw invalid("the JSON key after # is empty") }
        }
        let parts = arn.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "arn" else { throw invalid("it is not an ARN") }
        guard !parts[1].isEmpty else { throw invalid("it has no partition") }
        let resource = parts[5]
        switch parts[2] {
        case "secretsmanager":
            guard resource.hasPrefix("secret:"), resource.count > "secret:".count else { throw invalid("a Secrets Manager ARN ends in secret:NAME") }
            service = .secretsManager
        case "ssm":
            guard resource.hasPrefix("parameter/"), resource.count > "parameter/".count else { throw invalid("an SSM ARN ends in parameter/NAME") }
            service = .ssm
        default:
            throw invalid("the service is '\(parts[2])', not secretsmanager or ssm")
        }
        guard !parts[3].isEmpty else { throw invalid("it has no region") }
        partition = String(parts[1])
        region = String(parts[3])
        self.arn = String(arn)
        jsonKey = key
    }

    /// The endpoint variables, then the public endpoint of the ARN's partition and region.
    /// nil: a partition this relay does not know, and no endpoint variable set.
    public func endpoint(overrides: AWSEndpointOverrides) -> String? {
        if let url = overrides.url(for: service) { return url }
        let domain: String
        switch partition {
        case "aws", "aws-us-gov": domain = "amazonaws.com"
        case "aws-cn": domain = "amazonaws.com.cn"
        default: return nil
        }
        return "https://\(service.rawValue).\(region).\(domain)"
    }
}

/// `AWS_ENDPOINT_URL_SECRETS_MANAGER`, `AWS_ENDPOINT_URL_SSM` and `AWS_ENDPOINT_URL`, as the
/// AWS SDKs read them: the service's own wins over the general one.
public struct AWSEndpointOverrides: Sendable, Equatable {
    public var all: String?
    public var secretsManager: String?
    public var ssm: String?

    public init(all: String? = nil, secretsManager: String? = nil, ssm: String? = nil) {
        self.all = all
        self.secretsManager = secretsManager
        self.ssm = ssm
    }

    public func url(for service: SecretService) -> String? {
        switch service {
        case .secretsManager: secretsManager ?? all
        case .ssm: ssm ?? all
        }
    }
}
