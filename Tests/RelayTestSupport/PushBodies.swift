import Foundation

/// Push API bodies (`push.v1.PushRequest`) for tests: written by a tiny encoder of its own
/// (not the relay's) and read back by Google's protobuf runtime (`Tests/Peers/decode_push.py`
/// in the test venv), so a rewrite is checked against an independent decoder.
public enum PushBodies {
    public struct Sample: Sendable, Equatable {
        public var rawProfile: [UInt8]
        public var id: String
        public init(rawProfile: [UInt8], id: String = "") {
            self.rawProfile = rawProfile
            self.id = id
        }
    }

    /// One series as the test writes it: its fields in wire order, unknown ones included.
    public enum SeriesField: Sendable {
        case label(name: String, value: String)
        case sample(Sample)
        /// A field the schema does not have, as bytes after its key (a decoder skips it).
        case unknown(field: UInt64, wireType: UInt8, payload: [UInt8])
    }

    public static func varint(_ value: UInt64) -> [UInt8] {
        var value = value
        var out: [UInt8] = []
        repeat {
            let byte = UInt8(value & 0x7F)
            value >>= 7
            out.append(value == 0 ? byte : byte | 0x80)
        } while value != 0
        return out
    }

    public static func lengthDelimited(_ field: UInt64, _ payload: [UInt8]) -> [UInt8] {
        varint(field << 3 | 2) + varint(UInt64(payload.count)) + payload
    }

    public static func encode(series: [[SeriesField]], topLevelUnknown: [(field: UInt64, wireType: UInt8, payload: [UInt8])] = []) -> [UInt8] {
        var out: [UInt8] = []
        for (index, fields) in series.enumerated() {
            var encoded: [UInt8] = []
            for field in fields {
                switch field {
                case .label(let name, let value):
                    encoded += lengthDelimited(1, lengthDelimited(1, Array(name.utf8)) + lengthDelimited(2, Array(value.utf8)))
                case .sample(let sample):
                    var payload = lengthDelimited(1, sample.rawProfile)
                    if !sample.id.isEmpty { payload += lengthDelimited(2, Array(sample.id.utf8)) }
                    encoded += lengthDelimited(2, payload)
                case .unknown(let number, let wireType, let payload):
                    encoded += varint(number << 3 | UInt64(wireType)) + payload
                }
            }
            out += lengthDelimited(1, encoded)
            if index < topLevelUnknown.count {
                let unknown = topLevelUnknown[index]
                out += varint(unknown.field << 3 | UInt64(unknown.wireType)) + unknown.payload
            }
        }
        return out
    }

    /// What Google's protobuf reads from a body.
    public struct Decoded: Decodable, Sendable, Equatable {
        public struct Series: Decodable, Sendable, Equatable {
            public var labels: [[String]]
            public var samples: [DecodedSample]
        }
        public struct DecodedSample: Decodable, Sendable, Equatable {
            public var raw_profile: String
            public var id: String
        }
        public var series: [Series]?
        public var error: String?
    }

    /// Decodes every body (gzipped or plain) with the Python protobuf runtime, in one run.
    public static func decode(_ bodies: [[UInt8]]) async throws -> [Decoded] {
        try await decodeWithPeer("decode_push.py", bodies)
    }
}

/// Runs a decoder of `Tests/Peers` in the test venv over `bodies` (framed: a 4-byte
/// big-endian length, then the body) and decodes its JSON list, one answer per body.
func decodeWithPeer<Answer: Decodable>(_ script: String, _ bodies: [[UInt8]]) async throws -> [Answer] {
    var input: [UInt8] = []
    for body in bodies {
        let length = UInt32(body.count)
        input += [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + body
    }
    let (status, output) = try await runProgram(testPython, [ClientFixture.repositoryRoot + "/Tests/Peers/" + script], input: input)
    guard status == 0 else { throw FixtureError.unreadable("\(script) exited \(status): \(output)") }
    return try JSONDecoder().decode([Answer].self, from: Data(output.utf8))
}
