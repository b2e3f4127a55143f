import FoundationEssentials
import NIOHTTP1

/// Reads one secret's credential value; the network boundary the secret source is tested
/// against with fakes.
public protocol SecretFetcher: Sendable {
    func fetch(_ reference: SecretReference) async throws(SecretFetchError) -> String
}

/// Secrets Manager `GetSecretValue` and SSM `GetParameter` (with decryption) as AWS JSON 1.1
/// requests signed with SigV4: the two calls an SDK would be linked for.
public struct AWSSecretFetcher: SecretFetcher {
    let transport: any AWSTransport
    let credentials: any AWSCredentialsProvider
    let endpoints: AWSEndpointOverrides
    let timeout: Duration
    /// Unix seconds, for the signature.
    let now: @Sendable () -> Int64

    public init(
        transport: any AWSTransport, credentials: any AWSCredentialsProvider, endpoints: AWSEndpointOverrides, timeout: Duration = .seconds(5),
        now: @escaping @Sendable () -> Int64
    ) {
        self.transport = transport
        self.credentials = credentials
        self.endpoints = endpoints
        self.timeout = timeout
        self.now = now
    }

    public func fetch(_ reference: SecretReference) async throws(SecretFetchError) -> String {
        guard let endpoint = reference.endpoint(overrides: endpoints) else {
            throw SecretFetchError(
                .misconfigured,
                "\(reference.arn): the partition '\(reference.partition)' is not known to this relay; set \(reference.service.endpointVariable) to the service's endpoint"
            )
        }
        let keys = try await credentials.credentials()
        let target: String
        let body: [String: JSONRequestValue]
        switch reference.service {
        case .secretsManager:
            target = "secretsmanager.GetSecretValue"
            body = ["SecretId": .string(reference.arn)]
        case .ssm:
            target = "AmazonSSM.GetParameter"
            body = ["Name": .string(reference.arn), "WithDecryption": .bool(true)]
        }
        let payload = try JSONEncoder().encodeOrFail(body)
        guard let url = URLParts(endpoint) else {
            throw SecretFetchError(.misconfigured, "\(reference.service.endpointVariable) '\(endpoint)' is not an http(s) URL")
        }
        var headers: [(name: String, value: String)] = [
            ("Host", url.authority), ("Content-Type", "application/x-amz-json-1.1"), ("X-Amz-Target", target),
        ]
        let signer = SigV4Signer(credentials: keys, region: reference.region, service: reference.service.rawValue)
        headers += signer.signingHeaders(for: SigV4Request(method: "POST", path: url.path, headers: headers, body: payload), unixSeconds: now())

        let response: AWSHTTPResponse
        do {
            response = try await transport.send(
                AWSHTTPRequest(method: .POST, url: url.origin + url.path, headers: headers, body: payload), timeout: timeout)
        } catch {
            throw SecretFetchError(.transport, "\(reference.arn): no answer from \(url.origin)", underlying: error)
        }
        guard response.status == 200 else { throw Self.serviceError(response, reference: reference) }
        let text: String
        switch reference.service {
        case .secretsManager:
            guard let answer = try? JSONDecoder().decode(GetSecretValueAnswer.self, from: Data(response.body)) else {
                throw SecretFetchError(.invalidResponse, "\(reference.arn): the GetSecretValue answer is not the documented JSON")
            }
            if let string = answer.SecretString {
                text = string
            } else if let binary = answer.SecretBinary, let bytes = Data(base64Encoded: binary) {
                text = String(decoding: bytes, as: UTF8.self)
            } else {
                throw SecretFetchError(.invalidResponse, "\(reference.arn): the secret has neither SecretString nor SecretBinary")
            }
        case .ssm:
            guard let answer = try? JSONDecoder().decode(GetParameterAnswer.self, from: Data(response.body)) else {
                throw SecretFetchError(.invalidResponse, "\(reference.arn): the GetParameter answer is not the documented JSON")
            }
            text = answer.Parameter.Value
        }
        return try SecretValueRule.credential(from: text, key: reference.jsonKey, arn: reference.arn)
    }

    /// AWS's JSON error (`__type`, `message`) in a message that says what to check.
    static func serviceError(_ response: AWSHTTPResponse, reference: SecretReference) -> SecretFetchError {
        let answer = try? JSONDecoder().decode(AWSErrorAnswer.self, from: Data(response.body))
        let body = String(decoding: response.body.prefix(2048), as: UTF8.self)
        // JSON services answer `__type`; a signature refused before the service may come as
        // the query protocol's XML (`<Code>`), as moto sends it.
        let code =
            answer?.__type.map { String($0.split(separator: "#").last ?? Substring($0)) } ?? xmlElement("Code", in: body) ?? "HTTP \(response.status)"
        let text = answer?.message ?? answer?.Message ?? xmlElement("Message", in: body) ?? ""
        let hint: String
        switch code {
        case "AccessDeniedException", "AccessDenied":
            hint =
                "the function's role needs \(reference.service == .ssm ? "ssm:GetParameter (and kms:Decrypt for a customer key)" : "secretsmanager:GetSecretValue") on it"
        case "ResourceNotFoundException", "ParameterNotFound":
            hint = "check the ARN and its region"
        case "UnrecognizedClientException", "InvalidSignatureException", "SignatureDoesNotMatch", "ExpiredTokenException":
            hint = "the AWS credentials were refused"
        default:
            hint = "AWS refused the request"
        }
        return SecretFetchError(
            .service, "\(reference.arn): \(code)\(text.isEmpty ? "" : ": \(text)"); \(hint)", awsErrorCode: code)
    }
}

/// The text of the first `<name>` element, for AWS's XML error bodies.
func xmlElement(_ name: String, in text: String) -> String? {
    guard let start = text.firstRange(of: "<\(name)>"), let end = text[start.upperBound...].firstRange(of: "</\(name)>") else { return nil }
    return String(text[start.upperBound..<end.lowerBound])
}

/// The documented rule for turning a secret's text into the credential.
public enum SecretValueRule {
    /// Without `key`: the text, trimmed of surrounding white space. With `key`: the text is a
    /// JSON object and the credential is that member, a string (or a number as written).
    public static func credential(from text: String, key: String?, arn: String) throws(SecretFetchError) -> String {
        guard let key else {
            let value = String(text.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
            guard !value.isEmpty else { throw SecretFetchError(.invalidValue, "\(arn): the secret is empty") }
            return value
        }
        guard let object = try? JSONDecoder().decode([String: JSONScalar].self, from: Data(text.utf8)) else {
            throw SecretFetchError(.invalidValue, "\(arn)#\(key): the secret is not a JSON object, so #\(key) cannot be read from it")
        }
        guard let member = object[key] else {
            throw SecretFetchError(
                .invalidValue, "\(arn)#\(key): the JSON object has no key '\(key)' (its keys: \(object.keys.sorted().joined(separator: ", ")))")
        }
        guard case .text(let value) = member, !value.isEmpty else {
            throw SecretFetchError(.invalidValue, "\(arn)#\(key): the value of '\(key)' is not a non-empty string")
        }
        return value
    }

    /// True when a whole secret looks like a JSON object: then `#key` was probably forgotten.
    public static func looksLikeJSONObject(_ value: String) -> Bool {
        value.hasPrefix("{") && (try? JSONDecoder().decode([String: JSONScalar].self, from: Data(value.utf8))) != nil
    }
}

/// A JSON member's value as far as the `#key` rule cares.
enum JSONScalar: Decodable {
    case text(String)
    case other

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let string = try? container.decode(String.self) {
            self = .text(string)
        } else if let number = try? container.decode(Int64.self) {
            self = .text(String(number))
        } else if let number = try? container.decode(Double.self) {
            self = .text(String(number))
        } else {
            self = .other
        }
    }
}

enum JSONRequestValue: Encodable {
    case string(String)
    case bool(Bool)

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        }
    }
}

struct GetSecretValueAnswer: Decodable {
    var SecretString: String?
    var SecretBinary: String?
}

struct GetParameterAnswer: Decodable {
    struct Parameter: Decodable { var Value: String }
    var Parameter: Parameter
}

struct AWSErrorAnswer: Decodable {
    var __type: String?
    var message: String?
    var Message: String?
}

extension JSONEncoder {
    func encodeOrFail(_ value: some Encodable) throws(SecretFetchError) -> [UInt8] {
        do { return Array(try encode(value)) } catch { throw SecretFetchError(.invalidResponse, "cannot encode the request", underlying: error) }
    }
}

/// An endpoint URL split for signing: origin, `Host` value and path (`/` when none).
struct URLParts {
    var origin: String
    var authority: String
    var path: String

    init?(_ url: String) {
        guard let schemeEnd = url.firstRange(of: "://") else { return nil }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        let rest = url[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        var authority = String(rest[..<authorityEnd])
        guard !authority.isEmpty else { return nil }
        // The default port is left out of Host, as the SDKs (and the signature) expect.
        if scheme == "https", authority.hasSuffix(":443") { authority.removeLast(4) }
        if scheme == "http", authority.hasSuffix(":80") { authority.removeLast(3) }
        self.authority = authority
        origin = "\(scheme)://\(authority)"
        let path = String(rest[authorityEnd...])
        self.path = path.isEmpty ? "/" : path
    }
}
