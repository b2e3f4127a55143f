import GoCompatibility
import NIOCore
import NIOHTTP1
import RelayMetrics

/// Decides, from a request's path and headers, whether and how its body can take the labels,
/// and adds them: a push request (`push.v1.PushRequest`, Connect unary protobuf, as
/// pyroscope-io 1.x and Go's connect clients send it) or an OTLP profiles export (protobuf
/// or JSON, as Pyroscope takes them), each plain or gzip (`Content-Encoding`). Anything else
/// is relayed as sent.
enum RequestBodyLabels {
    /// The two body shapes that carry labels in the body (`/ingest` carries them in its query).
    enum Shape: Sendable {
        case push
        case otlp

        static let pushPath = "/push.v1.PusherService/Push"

        /// The shape of a request by its path (as the client sent it, cleaned).
        init?(path: Substring) {
            switch path {
            case Self.pushPath: self = .push
            case OTLPProfilesLabels.path: self = .otlp
            default: return nil
            }
        }
    }

    /// A gzip body is inflated in memory to add the labels; past this it is relayed as sent
    /// (pushes are tens to hundreds of KB inflated; 8 MiB is the default body limit).
    static let maxInflatedBytes = 32 << 20

    static let protobufTypes: Set<String> = ["application/proto", "application/protobuf", "application/x-protobuf"]

    enum Outcome: Equatable {
        case rewritten(ByteBuffer)
        /// Nothing to add: every series or resource has the labels, or there is none.
        case unchanged
        case notApplied(LabelsNotAppliedReason)
    }

    static func add(_ labels: [LambdaLabel], shape: Shape, headers: HTTPHeaders, body: ByteBuffer) -> Outcome {
        let contentTypes = headers[canonicalForm: "content-type"]
        guard contentTypes.count == 1,
            let mediaType = contentTypes[0].split(separator: ";", maxSplits: 1).first.map({ String($0).trimmingGoSpace().lowercased() })
        else { return .notApplied(.unsupportedContentType) }
        let json: Bool
        switch (shape, mediaType) {
        case (_, _) where protobufTypes.contains(mediaType): json = false
        // Connect's JSON push is not rewritten (no client sends it); OTLP/JSON is.
        case (.otlp, "application/json"): json = true
        default: return .notApplied(.unsupportedContentType)
        }

        let encodings = headers[canonicalForm: "content-encoding"].map { String($0).trimmingGoSpace().lowercased() }
        let gzipped: Bool
        switch encodings {
        case [], ["identity"]: gzipped = false
        case ["gzip"], ["x-gzip"]: gzipped = true
        default: return .notApplied(.unsupportedEncoding)
        }
        let malformed: LabelsNotAppliedReason = shape == .push ? .malformedPushBody : .malformedOTLPBody

        var message = Array(body.readableBytesView)
        if gzipped {
            do { message = try GzipCodec.gunzip(message, limit: maxInflatedBytes) } catch {
                return .notApplied(error == .tooLarge ? .tooLarge : malformed)
            }
        }
        let added: [UInt8]?
        do {
            switch (shape, json) {
            case (.push, _): added = try PushBodyLabels.add(labels, to: message)
            case (.otlp, false): added = try OTLPProfilesLabels.add(labels, to: message)
            case (.otlp, true): added = try OTLPJSONLabels.add(labels, to: message)
            }
        } catch {
            return .notApplied(malformed)
        }
        guard let rewritten = added else { return .unchanged }
        return .rewritten(ByteBuffer(bytes: gzipped ? GzipCodec.gzip(rewritten) : rewritten))
    }
}
