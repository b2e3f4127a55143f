import NIOCore
import NIOHTTP1
import Testing

@testable import RelayCore

@Suite struct UpstreamRequestBuilderTests {
    static let session = SessionID(0x0123_4567_89ab_cdef)

    func builder(
        _ address: String = "https://pyro.example.com", credentials: UpstreamCredentials = .none, tenant: String = "",
        extra: [(name: String, value: String)] = []
    ) throws -> UpstreamRequestBuilder {
        UpstreamRequestBuilder(
            remote: try RemoteEndpoint(parsing: address), credentials: credentials, tenantID: tenant,
            extraHeaders: extra, session: SessionIdentity(Self.session))
    }

    func headers(_ pairs: [(String, String)]) -> HTTPHeaders { HTTPHeaders(pairs) }

    // MARK: URL

    @Test(arguments: [
        ("https://pyro.example.com", "/ingest", "https://pyro.example.com/ingest"),
        ("https://pyro.example.com/", "/ingest", "https://pyro.example.com/ingest"),
        ("https://pyro.example.com/prefix", "/push.v1.PusherService/Push", "https://pyro.example.com/prefix/push.v1.PusherService/Push"),
        ("https://pyro.example.com/a/b/", "/ingest", "https://pyro.example.com/a/b/ingest"),
        ("https://pyro.example.com/prefix", "/", "https://pyro.example.com/prefix"),
        ("https://pyro.example.com", "/", "https://pyro.example.com/"),
        ("http://10.1.2.3:4100/base", "/ingest", "http://10.1.2.3:4100/base/ingest"),
        ("https://pyro.example.com/p/../q", "/x", "https://pyro.example.com/q/x"),
    ])
    func basePathIsJoinedWithRequestPath(address: String, target: String, expected: String) throws {
        #expect(try builder(address).url(for: target) == expected)
    }

    @Test(arguments: [
        ("/../../etc/passwd", "https://pyro.example.com/prefix/etc/passwd"),
        ("/a/../../../b", "https://pyro.example.com/prefix/b"),
        ("/%2e%2e/%2E%2e/secret", "https://pyro.example.com/prefix/secret"),
        ("/./ingest/./", "https://pyro.example.com/prefix/ingest"),
        ("//double//slash", "https://pyro.example.com/prefix/double/slash"),
        ("/..", "https://pyro.example.com/prefix"),
    ])
    func pathCannotClimbOutOfBasePath(target: String, expected: String) throws {
        #expect(try builder("https://pyro.example.com/prefix").url(for: target) == expected)
    }

    @Test func queryIsKeptByteForByte() throws {
        let target = "/push?b=2&a=1&x=%2F%7e&empty=&flag&a=3"
        #expect(try builder().url(for: target) == "https://pyro.example.com/push?b=2&a=1&x=%2F%7e&empty=&flag&a=3")
    }

    @Test func bytesThatCannotAppearInAURLAreEscapedOnly() throws {
        // A raw space or brace cannot be sent in a request line; valid escapes stay as they were.
        #expect(try builder().url(for: "/push?q=a b&t={x}&ok=%41") == "https://pyro.example.com/push?q=a%20b&t=%7Bx%7D&ok=%41")
    }

    // MARK: Session id

    @Test func sessionIDFormatsLittleEndianHex() {
        #expect(SessionID(0x0123_4567_89ab_cdef).description == "efcdab8967452301")
        #expect(SessionID(1).description == "0100000000000000")
        #expect(SessionID.random().description.count == 16)
    }

    @Test(arguments: [
        // name without tags gains {session}
        ("/ingest?name=app&from=1", "/ingest?name=app%7B__session_id__%3Defcdab8967452301%7D&from=1"),
        // labels are normalized (sorted), spaces trimmed, order of other params kept
        (
            "/ingest?from=1&name=my.app%7Bz%3D1%2C+a+%3D+2%7D&until=2",
            "/ingest?from=1&name=my.app%7B__session_id__%3Defcdab8967452301%2Ca%3D2%2Cz%3D1%7D&until=2"
        ),
        // raw braces from a lenient client are understood too
        ("/ingest?name=app{env=prod}", "/ingest?name=app%7B__session_id__%3Defcdab8967452301%2Cenv%3Dprod%7D"),
        // later `name` pairs go, as with Go's Values.Set
        ("/ingest?name=a&name=b", "/ingest?name=a%7B__session_id__%3Defcdab8967452301%7D"),
    ])
    func sessionIDIsAddedToLegacyIngestName(target: String, expectedTarget: String) throws {
        #expect(try builder().url(for: target) == "https://pyro.example.com" + expectedTarget)
    }

    @Test(arguments: [
        "/ingest?name=app%7B__session_id__%3Dabc%7D&from=1",  // already has one
        "/ingest?name=bad%20name%21",  // invalid app name
        "/ingest?name=app%7Bbad-key%3D1%7D",  // invalid tag key
        "/ingest?from=1&until=2",  // no name at all
        "/ingest?name=",  // empty name
        "/push?name=app",  // not the ingest path
        "/ingest/extra?name=app",  // not the ingest path either
    ])
    func targetsLeftUntouched(target: String) throws {
        #expect(try builder().url(for: target) == "https://pyro.example.com" + target)
    }

    @Test func profileKeyParsesLikeGo() {
        #expect(ProfileKey(parsing: "app")?.normalized == "app{}")
        #expect(ProfileKey(parsing: " app ")?.normalized == "app{}")
        #expect(ProfileKey(parsing: "app{b=2,a=1}")?.normalized == "app{a=1,b=2}")
        #expect(ProfileKey(parsing: "app{a=1,b}")?.normalized == "app{a=1}")  // dangling key dropped
        #expect(ProfileKey(parsing: "app{}")?.normalized == "app{}")
        #expect(ProfileKey(parsing: "") == nil)
        #expect(ProfileKey(parsing: "ap p") == nil)
        #expect(ProfileKey(parsing: "app{k.x=1}") == nil)
    }

    // MARK: Headers

    @Test func hopByHopHeadersAreDroppedAndHostIsTheRemote() throws {
        let out = try builder("https://pyro.example.com:8443").headers(
            for: headers([
                ("Host", "localhost:4040"), ("Connection", "keep-alive, X-Private"), ("Keep-Alive", "timeout=5"),
                ("Transfer-Encoding", "chunked"), ("TE", "trailers"), ("Upgrade", "h2c"), ("Proxy-Authorization", "x"),
                ("X-Private", "hop"), ("Content-Length", "5"), ("Content-Encoding", "gzip"), ("Expect", "100-continue"),
            ]))
        #expect(out["host"] == ["pyro.example.com:8443"])
        #expect(out["x-forwarded-host"] == ["localhost:4040"])
        #expect(out["content-encoding"] == ["gzip"])
        for gone in ["connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-authorization", "x-private", "content-length", "expect"] {
            #expect(out[gone].isEmpty, "\(gone) must not be forwarded")
        }
    }

    @Test func noForwardedHostWithoutClientHost() throws {
        #expect(try builder().headers(for: headers([("A", "1")]))["x-forwarded-host"].isEmpty)
    }

    @Test func tokenBeatsBasicAuthAndClientAuthorization() throws {
        let client = headers([("Authorization", "Basic Y2xpZW50"), ("authorization", "Bearer other")])
        let bearer = try builder(credentials: .bearer(token: "t0k")).headers(for: client)
        #expect(bearer["authorization"] == ["Bearer t0k"])
        let basic = try builder(credentials: .basic(user: "user", password: "pa:ss")).headers(for: client)
        #expect(basic["authorization"] == ["Basic dXNlcjpwYTpzcw=="])
        let passthrough = try builder().headers(for: client)
        #expect(passthrough["authorization"] == ["Basic Y2xpZW50", "Bearer other"])
    }

    @Test func credentialsInTheRemoteAddressApplyOnlyWithoutAnyOtherAuthorization() throws {
        let fromURL = try builder("https://u%40x:p%3Aw@pyro.example.com").headers(for: headers([]))
        #expect(fromURL["authorization"] == ["Basic dUB4OnA6dw=="], "base64 of u@x:p:w")
        #expect(fromURL["host"] == ["pyro.example.com"])
        let clientWins = try builder("https://u:p@pyro.example.com").headers(for: headers([("Authorization", "Bearer c")]))
        #expect(clientWins["authorization"] == ["Bearer c"])
        let tokenWins = try builder("https://u:p@pyro.example.com", credentials: .bearer(token: "t")).headers(for: headers([]))
        #expect(tokenWins["authorization"] == ["Bearer t"])
    }

    @Test func tenantReplacesClientOrgID() throws {
        let out = try builder(tenant: "team-a").headers(for: headers([("X-Scope-OrgID", "client"), ("x-scope-orgid", "dup")]))
        #expect(out["x-scope-orgid"] == ["team-a"])
        let passthrough = try builder().headers(for: headers([("X-Scope-OrgID", "client")]))
        #expect(passthrough["x-scope-orgid"] == ["client"])
    }

    @Test func extraHeadersComeLastAndOverrideEverything() throws {
        let out = try builder(
            credentials: .bearer(token: "t"), tenant: "team",
            extra: [("X-Scope-OrgID", "from-extra"), ("Authorization", "Custom z"), ("X-Env", "prod"), ("Host", "evil")]
        )
        .headers(for: headers([("X-Env", "client"), ("Host", "localhost:4040")]))
        #expect(out["x-scope-orgid"] == ["from-extra"])
        #expect(out["authorization"] == ["Custom z"])
        #expect(out["x-env"] == ["prod"])
        #expect(out["host"] == ["pyro.example.com"], "Host always names the remote")
    }

    @Test func basicAuthorizationEncoding() {
        #expect(basicAuthorizationValue(user: "user123", password: "s3cret") == "Basic dXNlcjEyMzpzM2NyZXQ=")
        #expect(basicAuthorizationValue(user: "", password: "") == "Basic Og==")
        #expect(basicAuthorizationValue(user: "a", password: "") == "Basic YTo=")
        #expect(basicAuthorizationValue(user: "ab", password: "c") == "Basic YWI6Yw==")
    }
}

@Suite struct RemoteEndpointTests {
    @Test func parsesAddresses() throws {
        let plain = try RemoteEndpoint(parsing: "https://profiles-prod-001.grafana.net")
        #expect(plain == RemoteEndpoint(scheme: .https, host: "profiles-prod-001.grafana.net"))
        let full = try RemoteEndpoint(parsing: "HTTP://User:P%40ss@Host.Example:4100/base/path/")
        #expect(full.scheme == .http && full.host == "host.example" && full.port == 4100 && full.basePath == "/base/path")
        #expect(full.userInfo?.user == "User" && full.userInfo?.password == "P@ss")
        #expect(full.redactedDescription == "http://User:***@host.example:4100/base/path")
        #expect(!"\(full)".contains("P@ss"))
        let v6 = try RemoteEndpoint(parsing: "http://[::1]:4040")
        #expect(v6.host == "[::1]" && v6.port == 4040 && v6.authority == "[::1]:4040")
    }

    @Test(arguments: [
        "pyro.example.com", "ftp://pyro.example.com", "https://", "https://:443", "https://host:0", "https://host:99999",
        "https://host:port", "https://host/path?x=1", "https://host#frag", "https://ho st", "https://[::1", "https://h%20st",
    ])
    func rejectsUnusableAddresses(text: String) {
        #expect(throws: RelayError.self) { try RemoteEndpoint(parsing: text) }
    }

    @Test func errorMessageNamesTheVariableAndHidesThePassword() {
        do {
            _ = try RemoteEndpoint(parsing: "ftp://me:hunter2@host")
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .invalidRemoteAddress)
            #expect(error.message.contains("PYROSCOPE_REMOTE_ADDRESS"))
            #expect(!error.message.contains("hunter2"))
        }
    }

    @Test func listenAddresses() throws {
        #expect(try ListenAddress.parse("localhost:4040") == ListenAddress.loopback(port: 4040))
        #expect(try ListenAddress.parse("127.0.0.1:0") == [ListenAddress(host: "127.0.0.1", port: 0)])
        #expect(try ListenAddress.parse("[::1]:4041") == [ListenAddress(host: "::1", port: 4041)])
        #expect(try ListenAddress.parse(":4040").allSatisfy { $0.isPubliclyReachable })
        #expect(!ListenAddress.loopback(port: 1).contains { $0.isPubliclyReachable })
        for bad in ["4040", "host:", "host:x", "::1:4040", "[::1]4040", "h:70000"] {
            #expect(throws: RelayError.self) { try ListenAddress.parse(bad) }
        }
    }
}
