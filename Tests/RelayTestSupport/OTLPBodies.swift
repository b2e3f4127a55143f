import Foundation

/// OTLP profiles exports (`ExportProfilesServiceRequest`, v1development) for tests: written
/// by an encoder of the test's own (not the relay's), as protobuf or OTLP/JSON, and read
/// back by OpenTelemetry's own classes (`Tests/Peers/decode_otlp.py` in the test venv), so a
/// rewrite is checked against an independent decoder.
public enum OTLPBodies {
    public enum Value: Sendable, Equatable {
        case string(String)
        case int(Int64)
        case bool(Bool)
    }

    public struct Attribute: Sendable, Equatable {
        public var key: String
        public var value: Value
        public init(_ key: String, _ value: Value) {
            self.key = key
            self.value = value
        }
    }

    public struct ResourceProfiles: Sendable {
        /// Each `resource` field as it comes on the wire: none, one, or more (decoders merge them).
        public var resources: [[Attribute]]
        public var droppedAttributes: UInt32
        public var scopeNames: [String]
        public var schemaURL: String
        public init(resources: [[Attribute]], droppedAttributes: UInt32 = 0, scopeNames: [String] = [], schemaURL: String = "") {
            self.resources = resources
            self.droppedAttributes = droppedAttributes
            self.scopeNames = scopeNames
            self.schemaURL = schemaURL
        }
    }

    static func field(_ number: UInt64, _ payload: [UInt8]) -> [UInt8] { PushBodies.lengthDelimited(number, payload) }
    static func string(_ number: UInt64, _ text: String) -> [UInt8] { field(number, Array(text.utf8)) }

    static func encode(_ value: Value) -> [UInt8] {
        switch value {
        case .string(let text): string(1, text)
        case .bool(let flag): [2 << 3] + PushBodies.varint(flag ? 1 : 0)
        case .int(let number): [3 << 3] + PushBodies.varint(UInt64(bitPattern: number))
        }
    }

    public static func protobuf(_ entries: [ResourceProfiles], dictionaryStrings: [String] = []) -> [UInt8] {
        var out: [UInt8] = []
        for entry in entries {
            var content: [UInt8] = []
            for (index, attributes) in entry.resources.enumerated() {
                var resource = attributes.flatMap { field(1, string(1, $0.key) + field(2, encode($0.value))) }
                if index == 0, entry.droppedAttributes > 0 { resource += [2 << 3] + PushBodies.varint(UInt64(entry.droppedAttributes)) }
                content += field(1, resource)
            }
            for name in entry.scopeNames { content += field(2, field(1, string(1, name))) }
            if !entry.schemaURL.isEmpty { content += string(3, entry.schemaURL) }
            out += field(1, content)
        }
        if !dictionaryStrings.isEmpty { out += field(2, dictionaryStrings.flatMap { string(5, $0) }) }
        return out
    }

    /// OTLP/JSON; `protoNames`: the proto field names (`resource_profiles`) that protobuf's JSON
    /// readers also take, instead of lowerCamelCase. Several `resource` fields are merged.
    public static func json(_ entries: [ResourceProfiles], dictionaryStrings: [String] = [], protoNames: Bool = false) -> [UInt8] {
        func name(_ camel: String, _ snake: String) -> String { protoNames ? snake : camel }
        func value(_ value: Value) -> Any {
            switch value {
            case .string(let text): [name("stringValue", "string_value"): text]
            case .int(let number): [name("intValue", "int_value"): String(number)]
            case .bool(let flag): [name("boolValue", "bool_value"): flag]
            }
        }
        var document: [String: Any] = [:]
        document[name("resourceProfiles", "resource_profiles")] = entries.map { entry -> [String: Any] in
            var object: [String: Any] = [:]
            if !entry.resources.isEmpty {
                var resource: [String: Any] = [
                    "attributes": entry.resources.joined().map { ["key": $0.key, "value": value($0.value)] as [String: Any] }
                ]
                if entry.droppedAttributes > 0 { resource[name("droppedAttributesCount", "dropped_attributes_count")] = entry.droppedAttributes }
                object["resource"] = resource
            }
            if !entry.scopeNames.isEmpty { object[name("scopeProfiles", "scope_profiles")] = entry.scopeNames.map { ["scope": ["name": $0]] } }
            if !entry.schemaURL.isEmpty { object[name("schemaUrl", "schema_url")] = entry.schemaURL }
            return object
        }
        if !dictionaryStrings.isEmpty { document["dictionary"] = [name("stringTable", "string_table"): dictionaryStrings] }
        return Array(try! JSONSerialization.data(withJSONObject: document, options: [.sortedKeys]))
    }

    /// What OpenTelemetry's classes read from a body.
    public struct Decoded: Decodable, Sendable, Equatable {
        /// Per ResourceProfiles, its resource's attributes as `[key, kind, text]`
        /// (`string_value`, `int_value`, `bool_value`).
        public var resources: [[[String]]]?
        /// The request without those attributes, serialized deterministically (hex).
        public var rest: String?
        public var error: String?
    }

    public static func decode(_ bodies: [[UInt8]]) async throws -> [Decoded] {
        try await decodeWithPeer("decode_otlp.py", bodies)
    }

    /// `[key, kind, text]` as decode_otlp.py writes an attribute.
    public static func decodedForm(_ attribute: Attribute) -> [String] {
        switch attribute.value {
        case .string(let text): [attribute.key, "string_value", text]
        case .int(let number): [attribute.key, "int_value", String(number)]
        case .bool(let flag): [attribute.key, "bool_value", flag ? "true" : "false"]
        }
    }
}
