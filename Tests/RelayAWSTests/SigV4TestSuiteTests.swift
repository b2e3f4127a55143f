import Foundation
import Testing

@testable import RelayAWS

/// The whole AWS SigV4 test suite (header signing), run when `SIGV4_TEST_SUITE` names a local
/// copy of aws-c-auth's `tests/aws-signing-test-suite/v4` folder. The suite's files are not
/// in this repository; botocore stands in for them in `SigV4SignerTests`.
@Suite struct SigV4TestSuiteTests {
    static let folder = ProcessInfo.processInfo.environment["SIGV4_TEST_SUITE"]

    struct SuiteContext: Decodable {
        struct Credentials: Decodable {
            var access_key_id: String
            var secret_access_key: String
            var token: String?
        }
        var credentials: Credentials
        var normalize: Bool
        var region: String
        var service: String
        var sign_body: Bool
        var timestamp: String
        var omit_session_token: Bool?
    }

    /// `METHOD target HTTP/1.1`, `Name:value` lines (indented lines continue a value), a blank line, the body.
    static func parseRequest(_ text: String) -> SigV4Request {
        let lines = text.components(separatedBy: "\n")
        let requestLine = lines[0]
        let firstSpace = requestLine.firstIndex(of: " ")!
        let versionStart = requestLine.range(of: " HTTP/", options: .backwards)!.lowerBound
        let method = String(requestLine[..<firstSpace])
        let target = String(requestLine[requestLine.index(after: firstSpace)..<versionStart])
        var headers: [(name: String, value: String)] = []
        var index = 1
        while index < lines.count, !lines[index].isEmpty {
            let line = lines[index]
            if line.first == " " || line.first == "\t", !headers.isEmpty {
                headers[headers.count - 1].value += "\n" + line
            } else if let colon = line.firstIndex(of: ":") {
                headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
            }
            index += 1
        }
        let body = index + 1 < lines.count ? lines[(index + 1)...].joined(separator: "\n") : ""
        let query = target.firstIndex(of: "?").map { String(target[target.index(after: $0)...]) } ?? ""
        let path = target.firstIndex(of: "?").map { String(target[..<$0]) } ?? target
        return SigV4Request(method: method, path: path, query: query, headers: headers, body: Array(body.utf8))
    }

    @Test(.enabled(if: folder != nil, "set SIGV4_TEST_SUITE to a local copy of aws-c-auth's tests/aws-signing-test-suite/v4"))
    func everyHeaderSignatureOfTheSuiteMatches() throws {
        let root = try #require(Self.folder)
        let cases = try FileManager.default.contentsOfDirectory(atPath: root).sorted()
        #expect(cases.count > 30)
        var checked = 0
        for name in cases {
            let directory = root + "/" + name
            guard let expected = try? String(contentsOfFile: directory + "/header-signature.txt", encoding: .utf8) else { continue }
            let context = try JSONDecoder().decode(SuiteContext.self, from: Data(contentsOf: URL(fileURLWithPath: directory + "/context.json")))
            let request = Self.parseRequest(try String(contentsOfFile: directory + "/request.txt", encoding: .utf8))
            let keys = AWSCredentials(
                accessKeyID: context.credentials.access_key_id, secretAccessKey: context.credentials.secret_access_key,
                sessionToken: context.credentials.token)
            var signer = SigV4Signer(credentials: keys, region: context.region, service: context.service)
            signer.normalizePath = context.normalize
            signer.addContentSHA256Header = context.sign_body
            signer.signSessionToken = !(context.omit_session_token ?? false)
            let time = try #require(ISO8601DateFormatter().date(from: context.timestamp))
            let headers = signer.signingHeaders(for: request, unixSeconds: Int64(time.timeIntervalSince1970))
            let signature = headers.first { $0.name == "Authorization" }?.value.components(separatedBy: "Signature=").last
            let canonical = (try? String(contentsOfFile: directory + "/header-canonical-request.txt", encoding: .utf8)) ?? ""
            var signed = request
            signed.headers += headers.filter { $0.name != "Authorization" && ($0.name != "X-Amz-Security-Token" || signer.signSessionToken) }
            #expect(
                signature == expected.trimmingCharacters(in: .whitespacesAndNewlines),
                "\(name): expected canonical request\n\(canonical)\nours\n\(signer.canonicalRequest(signed).request)")
            checked += 1
        }
        #expect(checked == cases.count, "every case has a header signature")
    }
}
