import Synchronization
import Testing

@testable import RelayAWS

/// Answers one canned response and keeps the requests, for the JSON of both directions.
private final class CannedTransport: AWSTransport {
    let response: AWSHTTPResponse
    let requests = Mutex<[AWSHTTPRequest]>([])

    init(status: UInt = 200, _ body: String) { response = AWSHTTPResponse(status: status, body: Array(body.utf8)) }

    func send(_ request: AWSHTTPRequest, timeout: Duration) async throws -> AWSHTTPResponse {
        requests.withLock { $0.append(request) }
        return response
    }
}

/// The AWS JSON 1.1 bodies read and written without Foundation, with the messages the
/// `JSONDecoder` version gave.
@Suite struct AWSAnswerDecodingTests {
    static let secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:pyroscope/token-AbCdEf"
    static let parameter = "arn:aws:ssm:us-east-1:123456789012:parameter/pyroscope/token"

    private func fetch(_ arn: String, _ transport: CannedTransport) async throws(SecretFetchError) -> String {
        let reference = try! SecretReference(parsing: arn, variable: "PYROSCOPE_AUTH_TOKEN_SECRET_ARN")
        let fetcher = AWSSecretFetcher(
            transport: transport, credentials: StaticCredentialsProvider(AWSCredentials(accessKeyID: "AKID", secretAccessKey: "secret")),
            endpoints: AWSEndpointOverrides(all: "http://127.0.0.1:4566"), now: { 1_700_000_000 })
        return try await fetcher.fetch(reference)
    }

    @Test func getSecretValueRequestAndStringAnswer() async throws {
        let transport = CannedTransport(
            #"{"ARN":"x","Name":"pyroscope/token","SecretString":"glc_\u0041\/b","#
                + #""VersionIdStages":["AWSCURRENT"],"CreatedDate":1.523477145713E9}"#)
        #expect(try await fetch(Self.secret, transport) == "glc_A/b")
        let body = transport.requests.withLock { $0.first?.body } ?? []
        // The bytes JSONEncoder sent: slashes escaped.
        #expect(String(decoding: body, as: UTF8.self) == #"{"SecretId":"arn:aws:secretsmanager:us-east-1:123456789012:secret:pyroscope\/token-AbCdEf"}"#)
    }

    @Test func secretBinaryIsBase64() async throws {
        #expect(try await fetch(Self.secret, CannedTransport(#"{"SecretBinary":"dG9rZW4tZnJvbS1iaW5hcnk="}"#)) == "token-from-binary")
        await #expect(throws: SecretFetchError(.invalidResponse, "\(Self.secret): the secret has neither SecretString nor SecretBinary")) {
            try await fetch(Self.secret, CannedTransport(#"{"SecretBinary":"not base64!"}"#))
        }
    }

    @Test func getParameterRequestAndAnswer() async throws {
        let transport = CannedTransport(#"{"Parameter":{"Name":"/pyroscope/token","Type":"SecureString","Value":"ssm-token","Version":3}}"#)
        #expect(try await fetch(Self.parameter, transport) == "ssm-token")
        let body = transport.requests.withLock { $0.first?.body } ?? []
        #expect(String(decoding: body, as: UTF8.self) == #"{"Name":"arn:aws:ssm:us-east-1:123456789012:parameter\/pyroscope\/token","WithDecryption":true}"#)
    }

    @Test(arguments: [
        (AWSAnswerDecodingTests.secret, #"{"SecretString":5}"#, "the GetSecretValue answer is not the documented JSON"),
        (AWSAnswerDecodingTests.secret, "[]", "the GetSecretValue answer is not the documented JSON"),
        (AWSAnswerDecodingTests.secret, #"{"SecretString":"a"} x"#, "the GetSecretValue answer is not the documented JSON"),
        (AWSAnswerDecodingTests.secret, #"{"SecretString":null}"#, "the secret has neither SecretString nor SecretBinary"),
        (AWSAnswerDecodingTests.parameter, #"{"Parameter":{}}"#, "the GetParameter answer is not the documented JSON"),
        (AWSAnswerDecodingTests.parameter, #"{"Parameter":"v"}"#, "the GetParameter answer is not the documented JSON"),
    ])
    func answersOfAnotherShapeAreInvalid(arn: String, body: String, message: String) async {
        await #expect(throws: SecretFetchError(.invalidResponse, "\(arn): \(message)")) {
            try await fetch(arn, CannedTransport(body))
        }
    }

    @Test func serviceErrorsNameTheCode() async {
        let refused = CannedTransport(status: 400, #"{"__type":"com.amazonaws.secretsmanager#AccessDeniedException","Message":"User is not authorized"}"#)
        await #expect(
            throws: SecretFetchError(
                .service,
                "\(Self.secret): AccessDeniedException: User is not authorized; the function's role needs secretsmanager:GetSecretValue on it",
                awsErrorCode: "AccessDeniedException")
        ) { try await fetch(Self.secret, refused) }
        // A `__type` that is not a string makes the JSON unusable, as before: the status is the code.
        let odd = CannedTransport(status: 500, #"{"__type":5,"message":"m"}"#)
        await #expect(throws: SecretFetchError(.service, "\(Self.secret): HTTP 500; AWS refused the request", awsErrorCode: "HTTP 500")) {
            try await fetch(Self.secret, odd)
        }
    }

    @Test func containerCredentialsAnswer() async throws {
        let learned = Mutex<[String]>([])
        func provider(_ body: String) -> ContainerCredentialsProvider {
            ContainerCredentialsProvider(
                uri: "http://169.254.170.2/v2/credentials", authorizationToken: "t", transport: CannedTransport(body),
                learned: { secrets in learned.withLock { $0 += secrets } })
        }
        let answer = #"{"AccessKeyId":"ASIA1","SecretAccessKey":"sk","Token":"st","Expiration":"2026-12-06T22:00:00Z"}"#
        #expect(try await provider(answer).credentials() == AWSCredentials(accessKeyID: "ASIA1", secretAccessKey: "sk", sessionToken: "st"))
        #expect(try await provider(#"{"AccessKeyId":"A","SecretAccessKey":"s"}"#).credentials().sessionToken == nil)
        await #expect(
            throws: SecretFetchError(.credentials, "the container credentials endpoint's answer has no AccessKeyId and SecretAccessKey")
        ) { try await provider(#"{"AccessKeyId":"A"}"#).credentials() }
    }

    @Test func theKeyRuleReadsStringsAndNumbersAsWritten() throws {
        let text = #"{"token":"t","port":4040,"ratio":1.5,"big":1e3,"flag":true,"token":"second"}"#
        #expect(try SecretValueRule.credential(from: text, key: "token", arn: "a") == "t")
        #expect(try SecretValueRule.credential(from: text, key: "port", arn: "a") == "4040")
        #expect(try SecretValueRule.credential(from: text, key: "ratio", arn: "a") == "1.5")
        #expect(try SecretValueRule.credential(from: text, key: "big", arn: "a") == "1000")
        #expect(throws: SecretFetchError(.invalidValue, "a#flag: the value of 'flag' is not a non-empty string")) {
            try SecretValueRule.credential(from: text, key: "flag", arn: "a")
        }
        #expect(throws: SecretFetchError(.invalidValue, "a#k: the JSON object has no key 'k' (its keys: big, flag, port, ratio, token)")) {
            try SecretValueRule.credential(from: text, key: "k", arn: "a")
        }
        #expect(throws: SecretFetchError(.invalidValue, "a#k: the secret is not a JSON object, so #k cannot be read from it")) {
            try SecretValueRule.credential(from: "[1]", key: "k", arn: "a")
        }
        #expect(!SecretValueRule.looksLikeJSONObject(#"{"a":1"#) && SecretValueRule.looksLikeJSONObject(#"{"a":[1,{"b":null}]}"#))
    }
}
