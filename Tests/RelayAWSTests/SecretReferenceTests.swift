import RelayCore
import Testing

@testable import RelayAWS

@Suite struct SecretReferenceTests {
    static let variable = "PYROSCOPE_AUTH_TOKEN_SECRET_ARN"

    @Test func secretsManagerARNsGiveServiceRegionAndPublicEndpoint() throws {
        let reference = try SecretReference(parsing: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pyroscope-AbCdEf", variable: Self.variable)
        #expect(reference.service == .secretsManager && reference.region == "eu-west-1" && reference.jsonKey == nil)
        #expect(reference.endpoint(overrides: .init()) == "https://secretsmanager.eu-west-1.amazonaws.com")
    }

    @Test func ssmARNsAndTheChinaPartition() throws {
        let reference = try SecretReference(parsing: "arn:aws-cn:ssm:cn-north-1:123456789012:parameter/pyroscope/token", variable: Self.variable)
        #expect(reference.service == .ssm && reference.region == "cn-north-1")
        #expect(reference.endpoint(overrides: .init()) == "https://ssm.cn-north-1.amazonaws.com.cn")
        let govCloud = try SecretReference(parsing: "arn:aws-us-gov:ssm:us-gov-west-1:1:parameter/t", variable: Self.variable)
        #expect(govCloud.endpoint(overrides: .init()) == "https://ssm.us-gov-west-1.amazonaws.com")
    }

    @Test func aHashSuffixSelectsAJSONKeyAndIsNotSent() throws {
        let reference = try SecretReference(parsing: "arn:aws:secretsmanager:us-east-1:1:secret:grafana-Ab12Cd#password", variable: Self.variable)
        #expect(reference.arn == "arn:aws:secretsmanager:us-east-1:1:secret:grafana-Ab12Cd" && reference.jsonKey == "password")
        #expect(reference.description.hasSuffix("#password"))
    }

    @Test func endpointVariablesFollowTheSDKConvention() throws {
        let sm = try SecretReference(parsing: "arn:aws:secretsmanager:us-east-1:1:secret:s", variable: Self.variable)
        let ssm = try SecretReference(parsing: "arn:aws:ssm:us-east-1:1:parameter/p", variable: Self.variable)
        let general = AWSEndpointOverrides(all: "http://127.0.0.1:5000")
        #expect(sm.endpoint(overrides: general) == "http://127.0.0.1:5000" && ssm.endpoint(overrides: general) == "http://127.0.0.1:5000")
        let specific = AWSEndpointOverrides(all: "http://general", secretsManager: "http://sm", ssm: "http://ssm")
        #expect(sm.endpoint(overrides: specific) == "http://sm" && ssm.endpoint(overrides: specific) == "http://ssm")
        let unknownPartition = try SecretReference(parsing: "arn:aws-iso:ssm:us-iso-east-1:1:parameter/p", variable: Self.variable)
        #expect(unknownPartition.endpoint(overrides: .init()) == nil)
        #expect(unknownPartition.endpoint(overrides: AWSEndpointOverrides(ssm: "https://ssm.example")) == "https://ssm.example")
    }

    @Test(arguments: [
        ("secret-name", "it is not an ARN"),
        ("arn:aws:s3:::bucket/key", "not secretsmanager or ssm"),
        ("arn:aws:secretsmanager::1:secret:s", "no region"),
        ("arn:aws:secretsmanager:us-east-1:1:rule:s", "secret:NAME"),
        ("arn:aws:ssm:us-east-1:1:parameter/", "parameter/NAME"),
        ("arn:aws:secretsmanager:us-east-1:1:secret:s#", "JSON key"),
    ])
    func unusableARNsSayWhy(text: String, reason: String) {
        #expect {
            _ = try SecretReference(parsing: text, variable: Self.variable)
        } throws: { error in
            let error = error as! RelayError
            return error.message.contains(reason) && error.message.contains(Self.variable)
        }
    }

    @Test func valueRule() throws {
        let arn = "arn:aws:secretsmanager:us-east-1:1:secret:s"
        #expect(try SecretValueRule.credential(from: "  token-1\n", key: nil, arn: arn) == "token-1")
        #expect(try SecretValueRule.credential(from: #"{"user":"u","password":"p@ss"}"#, key: "password", arn: arn) == "p@ss")
        #expect(try SecretValueRule.credential(from: #"{"pin":12345}"#, key: "pin", arn: arn) == "12345")
        #expect(SecretValueRule.looksLikeJSONObject(#"{"token":"t"}"#) && !SecretValueRule.looksLikeJSONObject("t"))
        for (text, key) in [(#"{"user":"u"}"#, "password"), ("plain", "password"), (#"{"password":{"nested":1}}"#, "password"), ("  ", nil)] {
            #expect(throws: SecretFetchError.self) { try SecretValueRule.credential(from: text, key: key, arn: arn) }
        }
        // The missing-key message lists the keys, never the values.
        do {
            _ = try SecretValueRule.credential(from: #"{"user":"u","token":"s3cr3t"}"#, key: "password", arn: arn)
        } catch {
            #expect(error.message.contains("token") && !error.message.contains("s3cr3t"))
        }
    }
}
