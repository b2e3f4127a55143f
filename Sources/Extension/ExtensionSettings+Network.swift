import RelayAWS
import RelayCore

/// The settings of issue 15: upstream credentials from AWS secrets, proxies, trust roots.
/// Read only from `ExtensionSettings.init(environment:)`.
extension ExtensionSettings {
    /// Upstream credentials as configured: plain values, or a secret to fetch (which wins
    /// over the plain value of the same credential); a token wins over basic auth.
    struct UpstreamAuthentication {
        var credentials: UpstreamCredentials = .none
        var secrets = SecretSettings()
        /// The settings in use, named in 401/403 explanations.
        var settingsInUse: [String] = []
    }

    static func upstreamAuthentication(_ reader: inout EnvironmentReader) -> UpstreamAuthentication {
        var result = UpstreamAuthentication()
        // Sent as a header value as it is: a value that cannot be one would fail every upload,
        // so it is not used, and said once (without the value).
        let token = reader.headerValue("PYROSCOPE_AUTH_TOKEN", what: "a bearer token")
        let tokenARN = reader.string("PYROSCOPE_AUTH_TOKEN_SECRET_ARN")
        let user = reader.string("PYROSCOPE_BASIC_AUTH_USER")
        let password = reader.string("PYROSCOPE_BASIC_AUTH_PASSWORD")
        let passwordARN = reader.string("PYROSCOPE_BASIC_AUTH_PASSWORD_SECRET_ARN")

        func plan(_ variable: String, _ text: String, _ kind: SecretCredentialPlan.Kind) -> SecretCredentialPlan? {
            do {
                return SecretCredentialPlan(reference: try SecretReference(parsing: text, variable: variable), kind: kind, variable: variable)
            } catch {
                reader.errors.append(
                    RelayError(error.code, error.message + "; uploads are dropped as misconfigured until it is fixed", underlying: nil))
                result.secrets.unusable = true
                return nil
            }
        }
        func ignored(_ variable: String, for winner: String) {
            reader.warnings.append(SettingsWarning(variable: variable, value: "***", fallback: "unused", reason: "\(winner) takes precedence"))
        }

        if let tokenARN {
            if token != nil { ignored("PYROSCOPE_AUTH_TOKEN", for: "PYROSCOPE_AUTH_TOKEN_SECRET_ARN") }
            result.secrets.plan = plan("PYROSCOPE_AUTH_TOKEN_SECRET_ARN", tokenARN, .bearerToken)
            result.settingsInUse = ["PYROSCOPE_AUTH_TOKEN_SECRET_ARN"]
        } else if let token {
            result.credentials = .bearer(token: token)
            result.settingsInUse = ["PYROSCOPE_AUTH_TOKEN"]
        } else if let user, passwordARN != nil || password != nil {
            if let passwordARN {
                if password != nil { ignored("PYROSCOPE_BASIC_AUTH_PASSWORD", for: "PYROSCOPE_BASIC_AUTH_PASSWORD_SECRET_ARN") }
                result.secrets.plan = plan("PYROSCOPE_BASIC_AUTH_PASSWORD_SECRET_ARN", passwordARN, .basicPassword(user: user))
                result.settingsInUse = ["PYROSCOPE_BASIC_AUTH_USER", "PYROSCOPE_BASIC_AUTH_PASSWORD_SECRET_ARN"]
            } else if let password {
                result.credentials = .basic(user: user, password: password)
                result.settingsInUse = ["PYROSCOPE_BASIC_AUTH_USER", "PYROSCOPE_BASIC_AUTH_PASSWORD"]
            }
        } else if user != nil || password != nil || passwordARN != nil {
            let missing = user == nil ? "PYROSCOPE_BASIC_AUTH_USER" : "PYROSCOPE_BASIC_AUTH_PASSWORD (or PYROSCOPE_BASIC_AUTH_PASSWORD_SECRET_ARN)"
            let present =
                user != nil ? "PYROSCOPE_BASIC_AUTH_USER" : passwordARN != nil ? "PYROSCOPE_BASIC_AUTH_PASSWORD_SECRET_ARN" : "PYROSCOPE_BASIC_AUTH_PASSWORD"
            reader.warnings.append(
                SettingsWarning(
                    variable: present, value: present == "PYROSCOPE_BASIC_AUTH_USER" ? user ?? "" : present.hasSuffix("ARN") ? passwordARN ?? "" : "***",
                    fallback: "no basic auth", reason: "basic auth needs \(missing) too"))
        }
        guard result.secrets.plan != nil || result.secrets.unusable else { return result }

        if let keyID = reader.string("AWS_ACCESS_KEY_ID"), let secret = reader.string("AWS_SECRET_ACCESS_KEY") {
            result.secrets.awsCredentials = .environment(
                AWSCredentials(accessKeyID: keyID, secretAccessKey: secret, sessionToken: reader.string("AWS_SESSION_TOKEN")))
        } else if let uri = reader.string("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            result.secrets.awsCredentials = .container(uri: uri, authorizationToken: reader.string("AWS_CONTAINER_AUTHORIZATION_TOKEN"))
        } else {
            reader.warnings.append(
                SettingsWarning(
                    variable: result.secrets.plan?.variable ?? "PYROSCOPE_AUTH_TOKEN_SECRET_ARN", value: "\(result.secrets.plan?.reference.description ?? "")",
                    fallback: "kept",
                    reason:
                        "no AWS credentials to fetch it with: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_CONTAINER_CREDENTIALS_FULL_URI (Lambda sets them)")
            )
        }
        result.secrets.endpoints = AWSEndpointOverrides(
            all: reader.string("AWS_ENDPOINT_URL"), secretsManager: reader.string("AWS_ENDPOINT_URL_SECRETS_MANAGER"),
            ssm: reader.string("AWS_ENDPOINT_URL_SSM"))
        return result
    }

    /// `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY` (upper case first, as Go), `PYROSCOPE_CA_FILE`,
    /// `SSL_CERT_FILE`. The Lambda API's host is never proxied.
    static func networkConfiguration(_ reader: inout EnvironmentReader, lambdaRuntimeAPI: String?) -> NetworkConfiguration {
        func proxy(_ variable: String, _ text: String?) -> ProxyServer? {
            guard let text else { return nil }
            do { return try ProxyServer(parsing: text) } catch {
                reader.warnings.append(SettingsWarning(variable: variable, value: ProxyServer.redacted(text), fallback: "no proxy", reason: error.reason))
                return nil
            }
        }
        var network = NetworkConfiguration()
        if let text = reader.string("HTTPS_PROXY") {
            network.proxy.https = proxy("HTTPS_PROXY", text)
        } else {
            network.proxy.https = proxy("https_proxy", reader.string("https_proxy"))
        }
        if let text = reader.string("HTTP_PROXY") {
            network.proxy.http = proxy("HTTP_PROXY", text)
        } else {
            network.proxy.http = proxy("http_proxy", reader.string("http_proxy"))
        }
        network.proxy.noProxy = NoProxyRule(reader.string("NO_PROXY") ?? reader.string("no_proxy") ?? "")
        if let api = lambdaRuntimeAPI, let target = URLTarget("http://\(api)") { network.proxy.directHosts = [target.host] }

        func bundle(_ variable: String, _ path: String?) -> String? {
            guard let path else { return nil }
            if let problem = TrustConfiguration.problem(withBundle: path) {
                reader.warnings.append(SettingsWarning(variable: variable, value: path, fallback: "the system roots", reason: "not used: \(problem)"))
                return nil
            }
            return path
        }
        network.trust.additionalCAFile = bundle("PYROSCOPE_CA_FILE", reader.string("PYROSCOPE_CA_FILE"))
        network.trust.replacementCAFile = bundle("SSL_CERT_FILE", reader.string("SSL_CERT_FILE"))
        return network
    }
}
