import Foundation
import RelayTestSupport
import Testing

/// Upstream credentials kept in AWS Secrets Manager and SSM, read by the shipped binary from
/// moto in server mode, which checks every request's SigV4 signature and IAM permissions.
@Suite(.serialized) struct SecretsBinaryTests {
    static func environment(remote: RecordingRemote, _ extra: [String: String]) -> [String: String] {
        RelayBinaryTests.devEnvironment(remote: remote, ["PYROSCOPE_LOG_LEVEL": "trace", "PYROSCOPE_TIMEOUT": "2s"].merging(extra) { $1 })
    }

    static func sessionKeys(_ moto: MotoPeer) -> [String: String] {
        ["AWS_ACCESS_KEY_ID": moto.session.accessKeyID, "AWS_SECRET_ACCESS_KEY": moto.session.secretAccessKey, "AWS_SESSION_TOKEN": moto.session.sessionToken!]
    }

    /// No line, at any level, carries any of `secrets`.
    static func expectNoSecrets(_ output: [String], _ secrets: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        for secret in secrets where !secret.isEmpty {
            let leaks = output.filter { $0.contains(secret) }
            #expect(leaks.isEmpty, "a secret appears in the log: \(leaks)", sourceLocation: sourceLocation)
        }
    }

    @Test func tokenFromSecretsManagerWithTheFunctionsSessionCredentials() async throws {
        try await MotoPeer.with { moto in
            let arn = try await moto.createSecret(name: "pyroscope-token", value: "tok-sm-8d2c")
            try await RecordingRemote.with { remote in
                let relay = try RelayProcess(
                    environment: Self.environment(
                        remote: remote, Self.sessionKeys(moto).merging(["PYROSCOPE_AUTH_TOKEN_SECRET_ARN": arn, "AWS_ENDPOINT_URL": moto.endpoint]) { $1 }))
                let port = try #require(await relay.listeningPort())
                let fetched = await relay.waitForLine { $0.contains("Fetched the upstream credential") }
                #expect(fetched?.contains("setting=PYROSCOPE_AUTH_TOKEN_SECRET_ARN") == true)
                #expect(await rawPost(port: port, body: "profile") == 200)
                #expect(await remote.waitForRequests(1).first?.values("authorization") == ["Bearer tok-sm-8d2c"])
                relay.signal(SIGTERM)
                #expect(await relay.waitForExit() == 0)
                Self.expectNoSecrets(relay.output, ["tok-sm-8d2c", moto.session.secretAccessKey, moto.session.sessionToken!])
            }
        }
    }

    @Test func jsonPasswordFromSSMWithContainerCredentialsAndTheServiceEndpointWinning() async throws {
        try await MotoPeer.with { moto in
            let arn = try await moto.putParameter(name: "/pyroscope/grafana", value: #"{"user":"123456","password":"pw-ssm-41f7"}"#)
            let dead = try freeLoopbackPort()
            try await RecordingRemote.with { remote in
                let relay = try RelayProcess(
                    environment: Self.environment(
                        remote: remote,
                        [
                            "PYROSCOPE_BASIC_AUTH_USER": "123456", "PYROSCOPE_BASIC_AUTH_PASSWORD_SECRET_ARN": arn + "#password",
                            "AWS_CONTAINER_CREDENTIALS_FULL_URI": moto.containerCredentialsURI,
                            "AWS_CONTAINER_AUTHORIZATION_TOKEN": MotoPeer.containerToken,
                            "AWS_ENDPOINT_URL": "http://127.0.0.1:\(dead)", "AWS_ENDPOINT_URL_SSM": moto.endpoint,
                        ]))
                let port = try #require(await relay.listeningPort())
                #expect(await rawPost(port: port, body: "profile") == 200)
                let expected = "Basic " + Data("123456:pw-ssm-41f7".utf8).base64EncodedString()
                #expect(await remote.waitForRequests(1).first?.values("authorization") == [expected])
                #expect(try await moto.credentialRequests() == [MotoPeer.containerToken])
                relay.signal(SIGTERM)
                #expect(await relay.waitForExit() == 0)
                Self.expectNoSecrets(
                    relay.output, ["pw-ssm-41f7", String(expected.dropFirst(6)), moto.user.secretAccessKey, MotoPeer.containerToken])
            }
        }
    }

    @Test func aFailedFetchHoldsUploadsUntilTheSecretCanBeRead() async throws {
        try await MotoPeer.with { moto in
            let arn = "arn:aws:ssm:us-east-1:123456789012:parameter/pyroscope/late"
            try await RecordingRemote.with { remote in
                let relay = try RelayProcess(
                    environment: Self.environment(
                        remote: remote, Self.sessionKeys(moto).merging(["PYROSCOPE_AUTH_TOKEN_SECRET_ARN": arn, "AWS_ENDPOINT_URL": moto.endpoint]) { $1 }))
                let port = try #require(await relay.listeningPort())
                let warning = try #require(await relay.waitForLine { $0.contains("Cannot fetch the upstream credential") })
                #expect(warning.contains("level=warning") && warning.contains("ParameterNotFound") && warning.contains("uploads wait for it"))
                #expect(await rawPost(port: port, body: "held") == 200, "accepted while the credential is missing")
                // Awaits the upload at the remote (bounded): it must not come without credentials.
                #expect(await remote.waitForRequests(1, timeout: .milliseconds(500)).isEmpty, "held, not sent without credentials")
                _ = try await moto.putParameter(name: "/pyroscope/late", value: "tok-late-2a6b")
                let received = await remote.waitForRequests(1, timeout: .seconds(20))
                #expect(received.first?.values("authorization") == ["Bearer tok-late-2a6b"])
                // Read from its pipe: the line may come after the request arrived.
                #expect(await relay.waitForLine { $0.contains("held uploads are sent now") } != nil)
                relay.signal(SIGTERM)
                #expect(await relay.waitForExit() == 0)
                #expect(relay.output.contains { $0.contains("relay stats") && $0.contains("phase=shutdown") && $0.contains(" delivered=1 ") })
                Self.expectNoSecrets(relay.output, ["tok-late-2a6b", moto.session.secretAccessKey, moto.session.sessionToken!])
            }
        }
    }

    @Test func aRotatedSecretIsFetchedAgainAfterA401AndTheUploadResent() async throws {
        try await MotoPeer.with { moto in
            let arn = try await moto.createSecret(name: "rotating", value: "tok-old-3e1a")
            try await RecordingRemote.with(respond: {
                $0.value("authorization") == "Bearer tok-new-7b9d" ? .status(.ok) : .status(.unauthorized, body: "invalid token")
            }) { remote in
                let relay = try RelayProcess(
                    environment: Self.environment(
                        remote: remote, Self.sessionKeys(moto).merging(["PYROSCOPE_AUTH_TOKEN_SECRET_ARN": arn, "AWS_ENDPOINT_URL": moto.endpoint]) { $1 }))
                let port = try #require(await relay.listeningPort())
                _ = try #require(await relay.waitForLine { $0.contains("Fetched the upstream credential") })
                try await moto.putSecretValue(arn: arn, value: "tok-new-7b9d")  // rotated after the relay read it
                #expect(await rawPost(port: port, body: "profile") == 200)
                let received = await remote.waitForRequests(2)
                #expect(received.map { $0.value("authorization") } == ["Bearer tok-old-3e1a", "Bearer tok-new-7b9d"])
                let explained = try #require(await relay.waitForLine { $0.contains("cause=unauthorized") })
                #expect(explained.contains("level=warning") && explained.contains("check PYROSCOPE_AUTH_TOKEN_SECRET_ARN"))
                relay.signal(SIGTERM)
                #expect(await relay.waitForExit() == 0)
                #expect(relay.output.contains { $0.contains("relay stats") && $0.contains("phase=shutdown") && $0.contains(" delivered=1 ") })
                Self.expectNoSecrets(relay.output, ["tok-old-3e1a", "tok-new-7b9d", moto.session.secretAccessKey, moto.session.sessionToken!])
            }
        }
    }

    @Test func awsCredentialsMotoRefusesAreExplainedAndUploadsWait() async throws {
        try await MotoPeer.with { moto in
            let arn = try await moto.createSecret(name: "never-read", value: "tok-unread-0c4d")
            try await RecordingRemote.with { remote in
                var keys = Self.sessionKeys(moto)
                keys["AWS_SECRET_ACCESS_KEY"] = "wrong-secret-key-6f1e"  // moto recomputes the signature and refuses
                let relay = try RelayProcess(
                    environment: Self.environment(
                        remote: remote,
                        keys.merging(["PYROSCOPE_AUTH_TOKEN_SECRET_ARN": arn, "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto.endpoint, "PYROSCOPE_TIMEOUT": "1s"]) {
                            $1
                        }))
                let port = try #require(await relay.listeningPort())
                let warning = try #require(await relay.waitForLine { $0.contains("Cannot fetch the upstream credential") })
                #expect(warning.contains("the AWS credentials were refused"), "\(warning)")
                #expect(await rawPost(port: port, body: "profile") == 200)
                relay.signal(SIGTERM)
                #expect(await relay.waitForExit() == 0)
                #expect(remote.received.isEmpty)
                #expect(relay.output.contains { $0.contains("Dropped upload waiting for credentials: drain deadline passed") })
                Self.expectNoSecrets(relay.output, ["wrong-secret-key-6f1e", moto.session.sessionToken!])
            }
        }
    }
}
