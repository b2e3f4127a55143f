import NIOCore
import NIOHTTP1
import RelayMetrics
import RelayTestSupport
import Testing

@testable import RelayCore

/// The pure pieces of PYROSCOPE_LAMBDA_LABELS: sanitizing, the `/ingest` name, the push
/// body at the wire level, and the request builder's choice between them.
@Suite struct LambdaLabelsTests {
    static let labels = LambdaLabels(sanitizing: [
        LambdaLabel(name: "faas_name", value: "my-fn"), LambdaLabel(name: "faas_version", value: "$LATEST"),
        LambdaLabel(name: "cloud_region", value: "eu-west-1"),
    ])

    // MARK: Sanitizing

    @Test(arguments: [
        ("faas_name", "faas_name"), ("faas.name", "faas_name"), ("9lives", "_9lives"), ("a-b c", "a_b_c"), ("ü", "_"),
    ])
    func namesBecomePyroscopeLabelNames(raw: String, expected: String) {
        #expect(LabelSanitizer.name(raw) == expected)
    }

    @Test(arguments: [
        ("us-east-1", "us-east-1"), ("$LATEST", "$LATEST"), ("2025/01/31/[$LATEST]8f1c", "2025/01/31/[$LATEST]8f1c"),
        ("a,b=c{d}e", "a_b_c_d_e"), ("say \"hi\" 'x'", "say__hi___x_"), ("tab\there\nnew", "tab_here_new"), ("back\\slash", "back_slash"),
        ("grüße", "grüße"),
    ])
    func valuesLoseWhatBreaksTheKeySyntax(raw: String, expected: String) {
        #expect(LabelSanitizer.value(raw) == expected)
    }

    @Test func longValuesAreCutAtAScalarBoundaryWithin2048Bytes() {
        let value = LabelSanitizer.value(String(repeating: "é", count: 1500))  // 2 bytes each
        #expect(value.utf8.count == 2048)
        #expect(value.unicodeScalars.allSatisfy { $0 == "é" })
    }

    @Test func emptyValuesAndRepeatedNamesAreLeftOut() {
        let labels = LambdaLabels(sanitizing: [
            LambdaLabel(name: "a", value: "1"), LambdaLabel(name: "b", value: ""), LambdaLabel(name: "a", value: "2"),
        ])
        #expect(labels.labels == [LambdaLabel(name: "a", value: "1")])
    }

    // MARK: /ingest name

    @Test(arguments: [
        // No braces: created. Sorted as Go normalizes, escaped as url.QueryEscape.
        ("name=app.cpu&from=1", "name=app.cpu%7Bcloud_region%3Deu-west-1%2Cfaas_name%3Dmy-fn%2Cfaas_version%3D%24LATEST%7D&from=1"),
        // The client's labels stay; its faas_name keeps the client's value.
        (
            "from=1&name=app.cpu%7Bfaas_name%3Dclient%2Cenv%3Dprod%7D&until=2",
            "from=1&name=app.cpu%7Bcloud_region%3Deu-west-1%2Cenv%3Dprod%2Cfaas_name%3Dclient%2Cfaas_version%3D%24LATEST%7D&until=2"
        ),
        // Raw braces as Go clients sometimes send them.
        ("name=app{env=prod}", "name=app%7Bcloud_region%3Deu-west-1%2Cenv%3Dprod%2Cfaas_name%3Dmy-fn%2Cfaas_version%3D%24LATEST%7D"),
    ])
    func ingestNameGainsTheMissingLabels(query: String, expected: String) {
        #expect(IngestNameLabels.add(Self.labels.labels, toQuery: Substring(query)) == .rewritten(expected))
    }

    @Test func ingestNameWithEveryLabelIsUnchangedAndAnUnparsableOneSaysSo() {
        let full = "name=app%7Bcloud_region%3Dx%2Cfaas_name%3Dy%2Cfaas_version%3Dz%7D"
        #expect(IngestNameLabels.add(Self.labels.labels, toQuery: Substring(full)) == .unchanged)
        for query in ["from=1", "name=", "name=bad%20name%21", "name=app%7Bbad-key%3D1%7D"] {
            #expect(IngestNameLabels.add(Self.labels.labels, toQuery: Substring(query)) == .unparsableName, "\(query)")
        }
    }

    // MARK: Push body, wire level

    static let added = [LambdaLabel(name: "faas_name", value: "my-fn"), LambdaLabel(name: "faas_version", value: "7")]

    static func pair(_ name: String, _ value: String) -> [UInt8] {
        PushBodies.lengthDelimited(1, PushBodies.lengthDelimited(1, Array(name.utf8)) + PushBodies.lengthDelimited(2, Array(value.utf8)))
    }

    @Test func eachSeriesGetsTheLabelsItLacksAfterItsOwnFields() throws {
        let sample = PushBodies.Sample(rawProfile: [1, 2, 3], id: "s")
        let body = PushBodies.encode(series: [
            [.label(name: "service_name", value: "app"), .sample(sample)],
            [.label(name: "faas_name", value: "client"), .sample(sample)],
        ])
        let expected = PushBodies.encode(series: [
            [.label(name: "service_name", value: "app"), .sample(sample), .label(name: "faas_name", value: "my-fn"), .label(name: "faas_version", value: "7")],
            [.label(name: "faas_name", value: "client"), .sample(sample), .label(name: "faas_version", value: "7")],
        ])
        #expect(try PushBodyLabels.add(Self.added, to: body) == expected)
    }

    @Test func unknownFieldsAndOtherTopLevelFieldsAreCopiedAsSent() throws {
        let body = PushBodies.encode(
            series: [
                [
                    .unknown(field: 9, wireType: 0, payload: [0x96, 0x01]), .label(name: "a", value: "b"),
                    .unknown(field: 10, wireType: 5, payload: [1, 2, 3, 4]),
                ]
            ],
            topLevelUnknown: [(field: 3, wireType: 1, payload: [1, 2, 3, 4, 5, 6, 7, 8])])
        let rewritten = try #require(try PushBodyLabels.add(Self.added, to: body))
        let expected = PushBodies.encode(
            series: [
                [
                    .unknown(field: 9, wireType: 0, payload: [0x96, 0x01]), .label(name: "a", value: "b"),
                    .unknown(field: 10, wireType: 5, payload: [1, 2, 3, 4]),
                    .label(name: "faas_name", value: "my-fn"), .label(name: "faas_version", value: "7"),
                ]
            ],
            topLevelUnknown: [(field: 3, wireType: 1, payload: [1, 2, 3, 4, 5, 6, 7, 8])])
        #expect(rewritten == expected)
    }

    @Test func nothingToAddIsNil() throws {
        #expect(try PushBodyLabels.add(Self.added, to: []) == nil, "no series")
        let full = PushBodies.encode(series: [[.label(name: "faas_name", value: "x"), .label(name: "faas_version", value: "y")]])
        #expect(try PushBodyLabels.add(Self.added, to: full) == nil)
    }

    @Test func aSeriesNeverGoesPastThirtyLabelNames() throws {
        let own = (0..<29).map { PushBodies.SeriesField.label(name: "l\($0)", value: "v") }
        let body = PushBodies.encode(series: [own])
        #expect(try PushBodyLabels.add(Self.added, to: body) == PushBodies.encode(series: [own + [.label(name: "faas_name", value: "my-fn")]]))
        let thirty = PushBodies.encode(series: [own + [.label(name: "l29", value: "v")]])
        #expect(try PushBodyLabels.add(Self.added, to: thirty) == nil)
    }

    @Test(
        arguments: [
            ("truncated varint", [0x0A, 0x80]),
            ("length past the end", [0x0A, 0x05, 0x01]),
            ("series as varint", [0x08, 0x01]),
            ("group wire type", [0x0B, 0x0C]),
            ("field number 0", [0x02, 0x00]),
            ("label as varint", [0x0A, 0x02, 0x08, 0x01]),
            ("label pair truncated", [0x0A, 0x04, 0x0A, 0x02, 0x0A, 0x05]),
            ("text", Array("hello, this is not protobuf".utf8)),
        ] as [(String, [UInt8])])
    func malformedBodiesAreRefused(what: String, body: [UInt8]) {
        #expect(throws: PushBodyLabels.Malformed.self, "\(what)") { try PushBodyLabels.add(Self.added, to: body) }
    }

    // MARK: Push request: type and encoding

    static let protoBody = PushBodies.encode(series: [[.label(name: "service_name", value: "app"), .sample(.init(rawProfile: [9]))]])

    @Test func gzipBodiesAreInflatedRewrittenAndGzippedAgain() throws {
        let gzipped = GzipCodec.gzip(Self.protoBody)
        let headers = HTTPHeaders([("Content-Type", "application/proto"), ("Content-Encoding", "gzip")])
        guard case .rewritten(let body) = RequestBodyLabels.add(Self.added, shape: .push, headers: headers, body: ByteBuffer(bytes: gzipped)) else {
            Issue.record("not rewritten")
            return
        }
        let inflated = try GzipCodec.gunzip(Array(body.readableBytesView), limit: 1 << 20)
        #expect(inflated == (try PushBodyLabels.add(Self.added, to: Self.protoBody)))
    }

    @Test(arguments: [
        ([("Content-Type", "application/json")], LabelsNotAppliedReason.unsupportedContentType),
        ([("Content-Type", "application/connect+proto")], .unsupportedContentType),
        ([], .unsupportedContentType),
        ([("Content-Type", "application/proto"), ("Content-Encoding", "br")], .unsupportedEncoding),
        ([("Content-Type", "application/proto"), ("Content-Encoding", "gzip, br")], .unsupportedEncoding),
        ([("Content-Type", "application/proto"), ("Content-Encoding", "gzip")], .malformedPushBody),  // not gzip
    ])
    func requestsTheRelayDoesNotRewriteSayWhy(headers: [(String, String)], reason: LabelsNotAppliedReason) {
        #expect(RequestBodyLabels.add(Self.added, shape: .push, headers: HTTPHeaders(headers), body: ByteBuffer(bytes: Self.protoBody)) == .notApplied(reason))
    }

    @Test func gzipBeyondTheInflateLimitIsTooLarge() {
        #expect(throws: GzipCodec.Failure.tooLarge) { try GzipCodec.gunzip(GzipCodec.gzip([UInt8](repeating: 0, count: 1 << 20)), limit: 1000) }
        #expect(throws: GzipCodec.Failure.invalid) { try GzipCodec.gunzip(Array(GzipCodec.gzip([1, 2, 3]).dropLast(4)), limit: 1000) }
    }

    // MARK: Builder

    static func builder(labels: LambdaLabels) throws -> UpstreamRequestBuilder {
        UpstreamRequestBuilder(
            remote: try RemoteEndpoint(parsing: "https://pyro.example.com"), credentials: .none, tenantID: "", extraHeaders: [],
            session: SessionIdentity(SessionID(0x0123_4567_89ab_cdef)), labels: labels)
    }

    @Test func builderAddsLabelsBesideTheSessionIDAndReportsWhatItCannotLabel() throws {
        let builder = try Self.builder(labels: Self.labels)
        let ingest = builder.prepare(Upload(method: .POST, target: "/ingest?name=app&from=1", headers: [:], body: ByteBuffer()))
        #expect(
            ingest.request.url
                == "https://pyro.example.com/ingest?name=app%7B__session_id__%3Defcdab8967452301%2Ccloud_region%3Deu-west-1%2Cfaas_name%3Dmy-fn%2Cfaas_version%3D%24LATEST%7D&from=1"
        )
        #expect(ingest.labelsNotApplied == nil)
        let noName = builder.prepare(Upload(method: .POST, target: "/ingest?from=1", headers: [:], body: ByteBuffer()))
        #expect(noName.labelsNotApplied == .unparsableIngestName)
        let json = builder.prepare(
            Upload(method: .POST, target: "/push.v1.PusherService/Push", headers: ["Content-Type": "application/json"], body: ByteBuffer(string: "{}")))
        #expect(json.labelsNotApplied == .unsupportedContentType)
        #expect(json.request.body == ByteBuffer(string: "{}"))
    }

    @Test func withoutLabelsTheBuilderBuildsWhatItBuiltBefore() throws {
        let builder = try Self.builder(labels: .none)
        let push = Upload(
            method: .POST, target: "/push.v1.PusherService/Push", headers: ["Content-Type": "application/json"], body: ByteBuffer(string: "{}"))
        #expect(builder.prepare(push).labelsNotApplied == nil)
        let ingest = builder.prepare(Upload(method: .POST, target: "/ingest?from=1", headers: [:], body: ByteBuffer()))
        #expect(ingest.labelsNotApplied == nil)
        #expect(ingest.request.url == "https://pyro.example.com/ingest?from=1")
    }
}
