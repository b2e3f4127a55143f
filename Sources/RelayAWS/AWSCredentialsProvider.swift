import NIOHTTP1
import RelayJSON

/// Where the fetch gets its AWS credentials.
public protocol AWSCredentialsProvider: Sendable {
    func credentials() async throws(SecretFetchError) -> AWSCredentials
}

/// The keys Lambda puts in the environment.
public struct StaticCredentialsProvider: AWSCredentialsProvider {
    let value: AWSCredentials
    public init(_ value: AWSCredentials) { self.value = value }
    public func credentials() async throws(SecretFetchError) -> AWSCredentials { value }
}

/// Lambda's container credentials endpoint (SnapStart): `GET` the full URI with the
/// authorization token, answered with `AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`.
/// Asked on each fetch: fetches are rare (start, retries, rotation) and restored snapshots
/// get new credentials, so nothing is cached across them.
public struct ContainerCredentialsProvider: AWSCredentialsProvider {
    let uri: String
    let authorizationToken: String?
    let transport: any AWSTransport
    let timeout: Duration
    /// Told every credential learned, before it is used, so logs mask it.
    let learned: @Sendable ([String]) -> Void

    public init(
        uri: String, authorizationToken: String?, transport: any AWSTransport, timeout: Duration = .seconds(2),
        learned: @escaping @Sendable ([String]) -> Void
    ) {
        self.uri = uri
        self.authorizationToken = authorizationToken
        self.transport = transport
        self.timeout = timeout
        self.learned = learned
    }

    struct Answer {
        var AccessKeyId: String
        var SecretAccessKey: String
        var Token: String?

        init(json: JSONValue) throws(JSONError) {
            AccessKeyId = try json.required("AccessKeyId", \.string)
            SecretAccessKey = try json.required("SecretAccessKey", \.string)
            Token = try json.optional("Token", \.string)
        }
    }

    public func credentials() async throws(SecretFetchError) -> AWSCredentials {
        let response: AWSHTTPResponse
        do {
            response = try await transport.send(
                AWSHTTPRequest(method: .GET, url: uri, headers: authorizationToken.map { [("Authorization", $0)] } ?? []), timeout: timeout)
        } catch {
            throw SecretFetchError(.credentials, "no answer from the container credentials endpoint AWS_CONTAINER_CREDENTIALS_FULL_URI", underlying: error)
        }
        guard response.status == 200 else {
            throw SecretFetchError(
                .credentials,
                "the container credentials endpoint AWS_CONTAINER_CREDENTIALS_FULL_URI answered \(response.status): check AWS_CONTAINER_AUTHORIZATION_TOKEN")
        }
        guard let answer = try? Answer(json: JSONValue.parse(response.body)) else {
            throw SecretFetchError(.credentials, "the container credentials endpoint's answer has no AccessKeyId and SecretAccessKey")
        }
        let credentials = AWSCredentials(accessKeyID: answer.AccessKeyId, secretAccessKey: answer.SecretAccessKey, sessionToken: answer.Token)
        learned(credentials.secrets)
        return credentials
    }
}

/// No credentials anywhere: every fetch fails with one clear reason.
public struct MissingCredentialsProvider: AWSCredentialsProvider {
    public init() {}
    public func credentials() async throws(SecretFetchError) -> AWSCredentials {
        throw SecretFetchError(
            .credentials,
            "no AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (set by Lambda) or AWS_CONTAINER_CREDENTIALS_FULL_URI are needed to read the secret"
        )
    }
}
