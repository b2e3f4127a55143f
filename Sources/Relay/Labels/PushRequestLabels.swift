import GoCompatibility
import NIOCore
import NIOHTTP1
import RelayMetrics

/// Decides, from a push request's headers, whether and how its body can take the labels:
/// Connect unary protobuf (`application/proto`), plain or gzip (`Content-Encoding`), as
/// pyroscope-io 1.x and Go's connect clients send it. Anything else is relayed as sent.
enum PushRequestLabels {
    static let path = "/push.v1.PusherService/Push"
    /// A gzip body is inflated in memory to add the labels; past this it is relayed as sent
    /// (pushes are tens to hundreds of KB inflated; 8 MiB is the default body limit).
    static let maxInflatedBytes = 32 << 20

    static let protobufTypes: Set<String> = ["application/proto", "application/protobuf", "application/x-protobuf"]

    enum Outcome: Equatable {
        case rewritten(ByteBuffer)
        /// Nothing to add: every series has the labels, or there is none.
        case unchanged
        case notApplied(LabelsNotAppliedReason)
    }

    static func add(_ labels: [LambdaLabel], headers: HTTPHeaders, body: ByteBuffer) -> Outcome {
        let contentTypes = headers[canonicalForm: "content-type"]
        guard contentTypes.count == 1,
            let mediaType = contentTypes[0].split(separator: ";", maxSplits: 1).first.map({ String($0).trimmingGoSpace().lowercased() }),
            protobufTypes.contains(mediaType)
        else { return .notApplied(.unsupportedContentType) }

        let encodings = headers[canonicalForm: "content-encoding"].map { String($0).trimmingGoSpace().lowercased() }
        let gzipped: Bool
        switch encodings {
        case [], ["identity"]: gzipped = false
        case ["gzip"], ["x-gzip"]: gzipped = true
        default: return .notApplied(.unsupportedEncoding)
        }

        var message = Array(body.readableBytesView)
        if gzipped {
            do { message = try GzipCodec.gunzip(message, limit: maxInflatedBytes) } catch {
                return .notApplied(error == .tooLarge ? .tooLarge : .malformedPushBody)
            }
        }
        let rewritten: [UInt8]
        do {
            guard let added = try PushBodyLabels.add(labels, to: message) else { return .unchanged }
            rewritten = added
        } catch {
            return .notApplied(.malformedPushBody)
        }
        return .rewritten(ByteBuffer(bytes: gzipped ? GzipCodec.gzip(rewritten) : rewritten))
    }
}
