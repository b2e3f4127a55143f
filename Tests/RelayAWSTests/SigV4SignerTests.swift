import Foundation
import RelayTestSupport
import Testing

@testable import RelayAWS

/// The SigV4 signer against the values AWS publishes and against botocore (the AWS SDK for
/// Python) on the shapes of the AWS SigV4 test suite.
@Suite struct SigV4SignerTests {
    static let example = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    /// 2015-08-30T12:36:00Z, the time of AWS's examples.
    static let exampleTime: Int64 = 1_440_938_160

    static func signature(_ headers: [(name: String, value: String)]) -> String? {
        guard let authorization = headers.first(where: { $0.name == "Authorization" })?.value,
            let range = authorization.range(of: "Signature=")
        else { return nil }
        return String(authorization[range.upperBound...])
    }

    @Test func signingKeysMatchTheAWSDocumentationExamples() {
        let iam2012 = SigV4Signer(credentials: Self.example, region: "us-east-1", service: "iam")
        #expect(
            SigV4Signer.hex(iam2012.signingKey(date: "20120215"))
                == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d")
        #expect(
            SigV4Signer.hex(iam2012.signingKey(date: "20150830"))
                == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9")
    }

    /// The IAM `ListUsers` request of AWS's "create a signed request" walkthrough.
    @Test func listUsersExampleFromTheAWSDocumentation() {
        let signer = SigV4Signer(credentials: Self.example, region: "us-east-1", service: "iam")
        let request = SigV4Request(
            method: "GET", path: "/", query: "Action=ListUsers&Version=2010-05-08",
            headers: [("Host", "iam.amazonaws.com"), ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")])
        let headers = signer.signingHeaders(for: request, unixSeconds: Self.exampleTime)
        #expect(headers.first { $0.name == "X-Amz-Date" }?.value == "20150830T123600Z")
        #expect(
            headers.first { $0.name == "Authorization" }?.value
                == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        )
    }

    @Test func timestampsAreUTCCalendarDates() {
        #expect(AWSTimestamp(unixSeconds: 0).dateTime == "19700101T000000Z")
        #expect(AWSTimestamp(unixSeconds: Self.exampleTime).dateTime == "20150830T123600Z")
        #expect(AWSTimestamp(unixSeconds: 951_782_400).date == "20000229")  // a leap day
        #expect(AWSTimestamp(unixSeconds: 4_102_444_799).dateTime == "20991231T235959Z")
    }

    struct Case {
        var method = "GET"
        var path = "/"
        var query = ""
        var headers: [(name: String, value: String)] = []
        var body = ""
        var sessionToken: String?
        var service = "service"
        var region = "us-east-1"
        var time = SigV4SignerTests.exampleTime
    }

    /// The suite's shapes (aws-c-auth `tests/aws-signing-test-suite/v4`), as requests a real
    /// client could send, plus the relay's own two AWS calls.
    static let cases: [Case] = [
        Case(),  // get-vanilla
        Case(sessionToken: "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"),  // get-vanilla-with-session-token
        Case(query: "Param1=value1"),  // get-vanilla-empty-query-key
        Case(query: "Param2=value2&Param1=value1"),  // get-vanilla-query-order-key-case
        Case(query: "Param-3=Value3&Param=Value2&%E1%88%B4=Value1"),  // get-vanilla-query-order-encoded
        Case(query: "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
        Case(query: "%E1%88%B4=bar"),  // get-vanilla-utf8-query
        Case(query: "a=%20space%2Fslash&b=x%3Dy"),  // encoded separators and spaces in values
        Case(headers: [("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")]),  // get-header-key-duplicate
        Case(headers: [("My-Header1", "value4"), ("My-Header1", "value1"), ("My-Header1", "value3"), ("My-Header1", "value2")]),  // get-header-value-order
        Case(headers: [("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")]),  // get-header-value-trim
        Case(headers: [("My-Header1", "value1\n  value2\n     value3")]),  // get-header-value-multiline
        Case(path: "/example/.."),  // get-relative-normalized
        Case(path: "/example1/example2/../.."),  // get-relative-relative-normalized
        Case(path: "/./example"),  // get-slash-pointless-dot-normalized
        Case(path: "//example//"),  // get-slashes-normalized
        Case(path: "/example space/"),  // get-space-normalized
        Case(path: "/example%20space/a%2Fb"),  // the same, percent-encoded on the wire
        Case(path: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),  // get-unreserved
        Case(path: "/\u{1234}"),  // get-utf8
        Case(method: "POST", headers: [("My-Header1", "VALUE1")]),  // post-header-value-case
        Case(method: "POST", headers: [("My-Header1", "value1"), ("MY-HEADER2", "value2")]),  // post-header-key-case / sort
        Case(method: "POST", query: "Param1=value1"),  // post-vanilla-query
        Case(method: "POST", headers: [("Content-Type", "application/x-www-form-urlencoded")], body: "Param1=value1"),  // post-x-www-form-urlencoded
        Case(
            method: "POST",
            sessionToken:
                "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
        ),  // post-sts-header-before
        // The relay's calls: AWS JSON 1.1 to Secrets Manager and SSM, with a session token.
        Case(
            method: "POST",
            headers: [("Content-Type", "application/x-amz-json-1.1"), ("X-Amz-Target", "secretsmanager.GetSecretValue")],
            body: #"{"SecretId":"arn:aws:secretsmanager:eu-west-1:123456789012:secret:pyroscope-AbCdEf"}"#, sessionToken: "FwoGZXIvYXdzEJr//token",
            service: "secretsmanager", region: "eu-west-1", time: 1_764_300_000),
        Case(
            method: "POST", headers: [("Content-Type", "application/x-amz-json-1.1"), ("X-Amz-Target", "AmazonSSM.GetParameter")],
            body: #"{"Name":"arn:aws-cn:ssm:cn-north-1:123456789012:parameter/pyroscope/token","WithDecryption":true}"#, service: "ssm",
            region: "cn-north-1", time: 1_764_300_000),
    ]

    @Test func signaturesMatchBotocore() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: testPython), "needs the test venv with botocore: run `make venv`")
        var oracleCases: [[String: Any]] = []
        var ours: [String] = []
        for (index, testCase) in Self.cases.enumerated() {
            let keys = AWSCredentials(
                accessKeyID: Self.example.accessKeyID, secretAccessKey: Self.example.secretAccessKey, sessionToken: testCase.sessionToken)
            let signer = SigV4Signer(credentials: keys, region: testCase.region, service: testCase.service)
            let headers = [("Host", "example.amazonaws.com")] + testCase.headers
            let request = SigV4Request(method: testCase.method, path: testCase.path, query: testCase.query, headers: headers, body: Array(testCase.body.utf8))
            let added = signer.signingHeaders(for: request, unixSeconds: testCase.time)
            ours.append(try #require(Self.signature(added), "case \(index)"))
            var signedHeaders = headers + added.filter { $0.name != "Authorization" }
            signedHeaders = signedHeaders.map { ($0.name, $0.value) }
            var oracle: [String: Any] = [
                "method": testCase.method,
                "url": "https://example.amazonaws.com\(testCase.path)\(testCase.query.isEmpty ? "" : "?" + testCase.query)",
                "headers": signedHeaders.map { [$0.name, $0.value] }, "body": testCase.body,
                "access_key": keys.accessKeyID, "secret_key": keys.secretAccessKey, "region": testCase.region,
                "service": testCase.service, "timestamp": AWSTimestamp(unixSeconds: testCase.time).dateTime,
            ]
            if let token = keys.sessionToken { oracle["token"] = token }
            oracleCases.append(oracle)
        }
        let input = try JSONSerialization.data(withJSONObject: oracleCases)
        let run = try await runProgram(testPython, [ClientFixture.repositoryRoot + "/Tests/Peers/sigv4_botocore.py"], input: Array(input))
        #expect(run.status == 0, "\(run.output)")
        let answers = try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [[String: String]])
        #expect(answers.count == Self.cases.count)
        for (index, answer) in answers.enumerated() {
            let testCase = Self.cases[index]
            let signer = SigV4Signer(credentials: Self.example, region: testCase.region, service: testCase.service)
            #expect(
                answer["signature"] == ours[index],
                "case \(index) (\(testCase.method) \(testCase.path)?\(testCase.query)): botocore's canonical request:\n\(answer["canonical_request"] ?? "")\nours:\n\(signer.canonicalRequest(SigV4Request(method: testCase.method, path: testCase.path, query: testCase.query, headers: [("Host", "example.amazonaws.com")] + testCase.headers, body: Array(testCase.body.utf8))).request)"
            )
        }
    }
}
