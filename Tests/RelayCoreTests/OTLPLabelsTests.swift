import NIOCore
import NIOHTTP1
import RelayMetrics
import RelayTestSupport
import Testing

@testable import RelayCore

/// PYROSCOPE_LAMBDA_LABELS on OTLP profiles exports: resource attributes with OpenTelemetry's
/// names, protobuf and JSON, plain and gzip, and what the relay leaves alone and why.
@Suite struct OTLPLabelsTests {
    static let labels = LambdaLabels(sanitizing: [
        LambdaLabel(name: "faas_name", value: "my-fn", attribute: .init(key: "faas.name")),
        LambdaLabel(name: "faas_max_memory", value: "134217728", attribute: .init(key: "faas.max_memory", isInteger: true)),
    ])
    static let client = [OTLPBodies.ResourceProfiles(resources: [[.init("service.name", .string("checkout"))]], scopeNames: ["profiler"])]

    static func decodedResources(_ body: [UInt8]) async throws -> [[[String]]] {
        let decoded = try await OTLPBodies.decode([body])
        return try #require(decoded[0].resources, "\(decoded[0].error ?? "")")
    }

    static let expected = [
        [
            ["service.name", "string_value", "checkout"], ["faas.name", "string_value", "my-fn"], ["faas.max_memory", "int_value", "134217728"],
        ]
    ]

    @Test(arguments: [
        ("application/x-protobuf", false), ("application/protobuf", false), ("application/json", true), ("application/json; charset=utf-8", true),
    ])
    func eachEncodingPlainOrGzipGetsTheAttributes(contentType: String, json: Bool) async throws {
        let body = json ? OTLPBodies.json(Self.client) : OTLPBodies.protobuf(Self.client)
        for gzipped in [false, true] {
            var headers: HTTPHeaders = ["Content-Type": contentType]
            if gzipped { headers.add(name: "Content-Encoding", value: "gzip") }
            let sent = gzipped ? GzipCodec.gzip(body) : body
            guard case .rewritten(let rewritten) = RequestBodyLabels.add(Self.labels.labels, shape: .otlp, headers: headers, body: ByteBuffer(bytes: sent))
            else {
                Issue.record("\(contentType) gzip \(gzipped): not rewritten")
                continue
            }
            let bytes = Array(rewritten.readableBytesView)
            if gzipped { #expect(bytes.starts(with: [0x1F, 0x8B]), "gzip in, gzip out") }
            #expect(try await Self.decodedResources(bytes) == Self.expected, "\(contentType) gzip \(gzipped)")
        }
    }

    @Test func theClientsOwnAttributeWinsByKeyOrByPyroscopeName() async throws {
        for key in ["faas.name", "faas_name"] {
            let body = OTLPBodies.protobuf([.init(resources: [[.init(key, .string("client-set"))]])])
            let rewritten = try #require(try OTLPProfilesLabels.add(Self.labels.labels, to: body))
            #expect(try await Self.decodedResources(rewritten) == [[[key, "string_value", "client-set"], ["faas.max_memory", "int_value", "134217728"]]])
        }
    }

    @Test func aResourceProfilesWithoutAResourceGetsOne() async throws {
        for body in [OTLPBodies.protobuf([.init(resources: [], scopeNames: ["s"])]), OTLPBodies.json([.init(resources: [], scopeNames: ["s"])])] {
            let rewritten = try #require(
                try body.first == UInt8(ascii: "{") ? OTLPJSONLabels.add(Self.labels.labels, to: body) : OTLPProfilesLabels.add(Self.labels.labels, to: body))
            #expect(try await Self.decodedResources(rewritten) == [[["faas.name", "string_value", "my-fn"], ["faas.max_memory", "int_value", "134217728"]]])
        }
    }

    @Test func everyAttributeSetOrNoResourceProfilesIsNothingToAdd() throws {
        let full = OTLPBodies.protobuf([.init(resources: [[.init("faas.name", .string("x")), .init("faas_max_memory", .int(1))]])])
        #expect(try OTLPProfilesLabels.add(Self.labels.labels, to: full) == nil)
        #expect(try OTLPProfilesLabels.add(Self.labels.labels, to: []) == nil)
        #expect(try OTLPJSONLabels.add(Self.labels.labels, to: Array("{}".utf8)) == nil)
        #expect(try OTLPJSONLabels.add(Self.labels.labels, to: Array(#"{"resourceProfiles":null}"#.utf8)) == nil)
    }

    @Test(arguments: [
        ("application/x-protobuf", [0x0A, 0x05, 0x0A]), ("application/x-protobuf", [0x0B]), ("application/json", Array("{\"resourceProfiles\":{}}".utf8)),
        ("application/json", Array("{\"resourceProfiles\":[".utf8)), ("application/json", Array("[1]".utf8)),
    ])
    func malformedBodiesArriveUnchangedAndSayWhy(contentType: String, body: [UInt8]) {
        let outcome = RequestBodyLabels.add(Self.labels.labels, shape: .otlp, headers: ["Content-Type": contentType], body: ByteBuffer(bytes: body))
        #expect(outcome == .notApplied(.malformedOTLPBody))
    }

    @Test(arguments: [
        (["Content-Type": "text/plain"], LabelsNotAppliedReason.unsupportedContentType),
        (["Content-Type": "application/x-protobuf", "Content-Encoding": "br"], .unsupportedEncoding),
        (["Content-Type": "application/json", "Content-Encoding": "gzip"], .malformedOTLPBody),
    ])
    func requestsTheRelayDoesNotRewriteSayWhy(headers: [String: String], reason: LabelsNotAppliedReason) {
        let outcome = RequestBodyLabels.add(
            Self.labels.labels, shape: .otlp, headers: HTTPHeaders(headers.map { ($0.key, $0.value) }), body: ByteBuffer(bytes: OTLPBodies.json(Self.client)))
        #expect(outcome == .notApplied(reason))
    }

    @Test func theBuilderLabelsOTLPExportsAndWithoutLabelsSendsTheClientsBytes() async throws {
        let body = ByteBuffer(bytes: OTLPBodies.protobuf(Self.client))
        let upload = Upload(method: .POST, target: "/v1development/profiles", headers: ["Content-Type": "application/x-protobuf"], body: body)
        let labelled = try LambdaLabelsTests.builder(labels: Self.labels).prepare(upload)
        #expect(labelled.request.url == "https://pyro.example.com/v1development/profiles")
        #expect(labelled.labelsNotApplied == nil)
        #expect(try await Self.decodedResources(Array(labelled.request.body.readableBytesView)) == Self.expected)
        let plain = try LambdaLabelsTests.builder(labels: .none).prepare(upload)
        #expect(plain.request.body == body)
        #expect(plain.labelsNotApplied == nil)
    }
}
