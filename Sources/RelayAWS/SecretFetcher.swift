import GoCompatibility
import NIOHTTP1
import RelayJSON

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
        let body: JSONValue
        switch reference.service {
        case .secretsManager:
            target = "secretsmanager.GetSecretValue"
            body = ["SecretId": .string(reference.arn)]
        case .ssm:
            target = "AmazonSSM.GetParameter"
            body = ["Name": .string(reference.arn), "WithDecryption": true]
        }
        let payload = body.serialized()
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
            guard let answer = try? GetSecretValueAnswer(json: JSONValue.parse(response.body)) else {
                throw SecretFetchError(.invalidResponse, "\(reference.arn): the GetSecretValue answer is not the documented JSON")
            }
            if let string = answer.SecretString {
                text = string
            } else if let binary = answer.SecretBinary, let bytes = Base64.decode(binary) {
                text = String(decoding: bytes, as: UTF8.self)
            } else {
                throw SecretFetchError(.invalidResponse, "\(reference.arn): the secret has neither SecretString nor SecretBinary")
            }
        case .ssm:
            guard let answer = try? GetParameterAnswer(json: JSONValue.parse(response.body)) else {
                throw SecretFetchError(.invalidResponse, "\(reference.arn): the GetParameter answer is not the documented JSON")
            }
            text = answer.Value
        }
        return try SecretValueRule.credential(from: text, key: reference.jsonKey, arn: reference.arn)
    }

    /// AWS's JSON error (`__type`, `message`) in a message that says what to check.
    static func serviceError(_ response: AWSHTTPResponse, reference: SecretReference) -> SecretFetchError {
        let answer = try? AWSErrorAnswer(json: JSONValue.parse(response.body))
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
    guard let start = text.firstOccurrence(of: "<\(name)>"), let end = text[start.upperBound...].firstOccurrence(of: "</\(name)>") else { return nil }
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
        guard let object = JSONScalar.object(text) else {
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
        value.hasPrefix("{") && JSONScalar.object(value) != nil
    }
}

/// A JSON member's value as far as the `#key` rule cares.
enum JSONScalar {
    case text(String)
    case other

    /// A string as it is, a number as written when an integer (`1e3` is `1000`) or as Swift
    /// prints the `Double` otherwise: what the `JSONDecoder` rule before gave.
    init(_ json: JSONValue) {
        if let string = json.string {
            self = .text(string)
        } else if let number = json.int64 {
            self = .text(String(number))
        } else if let number = json.double {
            self = .text(String(number))
        } else {
            self = .other
        }
    }

    /// The members of a JSON object; nil when `text` is not one.
    static func object(_ text: String) -> [String: JSONScalar]? {
        guard let members = (try? JSONValue.parse(text))?.dictionary else { return nil }
        return members.mapValues(JSONScalar.init)
    }
}

struct GetSecretValueAnswer {
    var SecretString: String?
    var SecretBinary: String?

    init(json: JSONValue) throws(JSONError) {
        SecretString = try json.optional("SecretString", \.string)
        SecretBinary = try json.optional("SecretBinary", \.string)
    }
}

struct GetParameterAnswer {
    var Value: String

    init(json: JSONValue) throws(JSONError) {
        let parameter = try json.required("Parameter", \.object)
        Value = try JSONValue.object(parameter).required("Value", \.string)
    }
}

struct AWSErrorAnswer {
    var __type: String?
    var message: String?
    var Message: String?

    init(json: JSONValue) throws(JSONError) {
        __type = try json.optional("__type", \.string)
        message = try json.optional("message", \.string)
        Message = try json.optional("Message", \.string)
    }
}

/// An endpoint URL split for signing: origin, `Host` value and path (`/` when none).
struct URLParts {
    var origin: String
    var authority: String
    var path: String

    init?(_ url: String) {
        guard let schemeEnd = url.firstOccurrence(of: "://") else { return nil }
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
