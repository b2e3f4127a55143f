import Foundation
import RelayAWS
import RelayCore
import Testing

@testable import LambdaExtension

/// The settings of secrets in AWS, proxies and trust roots.
@Suite struct NetworkSettingsTests {
    static let tokenARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pyroscope-AbCdEf"
    static let keys = ["AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "aws-secret-1f2e", "AWS_SESSION_TOKEN": "aws-session-3d4c"]

    @Test func aSecretARNWinsOverThePlainValueAndUsesTheFunctionsKeys() throws {
        let settings = ExtensionSettings(
            environment: Self.keys.merging(["PYROSCOPE_AUTH_TOKEN_SECRET_ARN": Self.tokenARN, "PYROSCOPE_AUTH_TOKEN": "plain"]) { $1 })
        let plan = try #require(settings.secrets.plan)
        #expect(plan.kind == .bearerToken && plan.reference.region == "eu-west-1" && plan.variable == "PYROSCOPE_AUTH_TOKEN_SECRET_ARN")
        #expect(settings.relay.credentials == .none, "sent once fetched")
        #expect(settings.credentialSettings == ["PYROSCOPE_AUTH_TOKEN_SECRET_ARN"])
        #expect(
            settings.secrets.awsCredentials
                == .environment(AWSCredentials(accessKeyID: "AKIAEXAMPLE", secretAccessKey: "aws-secret-1f2e", sessionToken: "aws-session-3d4c")))
        #expect(settings.warnings.map(\.variable) == ["PYROSCOPE_AUTH_TOKEN"] && !settings.warnings[0].description.contains("plain"))
        #expect(settings.log.redactions.contains("aws-secret-1f2e") && settings.log.redactions.contains("aws-session-3d4c"))
    }

    @Test func passwordSecretWithUserAndContainerCredentialsAndEndpoints() throws {
        let settings = ExtensionSettings(environment: [
            "PYROSCOPE_BASIC_AUTH_USER": "123456", "PYROSCOPE_BASIC_AUTH_PASSWORD_SECRET_ARN": "arn:aws:ssm:us-east-1:1:parameter/p#password",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9001/2021-04-23/credentials", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "ctok-5a6b",
            "AWS_ENDPOINT_URL": "http://all", "AWS_ENDPOINT_URL_SSM": "http://ssm",
        ])
        #expect(settings.secrets.plan?.kind == .basicPassword(user: "123456") && settings.secrets.plan?.reference.jsonKey == "password")
        #expect(settings.secrets.awsCredentials == .container(uri: "http://127.0.0.1:9001/2021-04-23/credentials", authorizationToken: "ctok-5a6b"))
        #expect(settings.secrets.endpoints == AWSEndpointOverrides(all: "http://all", ssm: "http://ssm"))
        // The service's own override wins over AWS_ENDPOINT_URL (the credentials URI: above).
        #expect(settings.secrets.plan?.reference.endpoint(overrides: settings.secrets.endpoints) == "http://ssm")
        #expect(settings.credentialSettings == ["PYROSCOPE_BASIC_AUTH_USER", "PYROSCOPE_BASIC_AUTH_PASSWORD_SECRET_ARN"])
        #expect(settings.log.redactions.contains("ctok-5a6b") && settings.warnings.isEmpty)
    }

    @Test func anUnusableARNIsAnErrorAndUploadsAreNotSentWithoutCredentials() {
        let settings = ExtensionSettings(environment: ["PYROSCOPE_AUTH_TOKEN_SECRET_ARN": "my-secret"])
        #expect(settings.secrets.unusable && settings.secrets.plan == nil)
        #expect(settings.errors.count == 1 && settings.errors[0].message.contains("PYROSCOPE_AUTH_TOKEN_SECRET_ARN 'my-secret' is not usable"))
        #expect(settings.errors[0].message.contains("dropped as misconfigured"))
    }

    @Test func noAWSCredentialsIsAWarning() {
        let settings = ExtensionSettings(environment: ["PYROSCOPE_AUTH_TOKEN_SECRET_ARN": Self.tokenARN])
        #expect(settings.secrets.awsCredentials == .none)
        #expect(settings.warnings.contains { $0.reason?.contains("no AWS credentials") == true })
    }

    @Test func proxiesUpperCaseFirstWithPasswordsHiddenAndMasked() throws {
        let settings = ExtensionSettings(environment: [
            "HTTPS_PROXY": "http://u:proxy-pw-9e8d@proxy:3128", "https_proxy": "http://ignored:1", "http_proxy": "proxy:8080",
            "no_proxy": ".internal", "AWS_LAMBDA_RUNTIME_API": "169.254.100.1:9001",
        ])
        #expect(settings.network.proxy.https?.host == "proxy" && settings.network.proxy.https?.port == 3128)
        #expect(settings.network.proxy.http?.port == 8080)
        #expect(settings.network.proxy.noProxy.matches(host: "a.internal", port: 443))
        #expect(settings.network.proxy.directHosts == ["169.254.100.1"])
        #expect(settings.log.redactions.contains("proxy-pw-9e8d"))
        let refused = ExtensionSettings(environment: ["HTTPS_PROXY": "https://u:pw-2b3c@proxy:443"])
        #expect(refused.network.proxy.https == nil)
        #expect(refused.warnings.count == 1 && refused.warnings[0].variable == "HTTPS_PROXY" && !refused.warnings[0].description.contains("pw-2b3c"))
    }

    @Test func caBundlesAreCheckedAtStart() throws {
        let settings = ExtensionSettings(environment: ["PYROSCOPE_CA_FILE": "/nonexistent/ca.pem", "SSL_CERT_FILE": "/etc/hostname"])
        #expect(settings.network.trust == .system)
        #expect(Set(settings.warnings.map(\.variable)) == ["PYROSCOPE_CA_FILE", "SSL_CERT_FILE"])
        #expect(settings.warnings.allSatisfy { $0.fallback == "the system roots" })
    }
}
