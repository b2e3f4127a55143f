/// Adds the labels as resource attributes of every `ResourceProfiles` of an OTLP profiles
/// export (`ExportProfilesServiceRequest`, v1development) at the protobuf wire level, as
/// `PushBodyLabels` does for push series:
///
///     ExportProfilesServiceRequest { repeated ResourceProfiles resource_profiles = 1; ProfilesDictionary dictionary = 2; }
///     ResourceProfiles { Resource resource = 1; repeated ScopeProfiles scope_profiles = 2; string schema_url = 3; }
///     Resource         { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; repeated EntityRef entity_refs = 3; }
///     KeyValue         { string key = 1; AnyValue value = 2; }
///     AnyValue         { oneof value { string string_value = 1; ... int64 int_value = 3; ... } }
///
/// The `KeyValue`s a resource lacks are appended inside its last `resource` field (a message
/// field seen twice is merged by decoders, so the last one is where the attributes end), or
/// in a new `resource` when there is none; lengths are encoded again. Samples, the
/// dictionary, scopes and unknown fields are copied byte for byte.
enum OTLPProfilesLabels {
    /// The path of OTLP profiles over HTTP (Pyroscope's `pkg/api`, OpenTelemetry's exporters).
    static let path = "/v1development/profiles"

    /// Pyroscope's default `max_label_names_per_series`: attributes are not added to a
    /// resource that would pass it (the profile's own attributes count too, which the relay
    /// cannot see; this keeps it from being the one that breaks the limit).
    static let maxAttributesPerResource = 30

    /// The body with the attributes added; nil when every resource has them (or there is none).
    static func add(_ labels: [LambdaLabel], to body: [UInt8]) throws(ProtobufMalformed) -> [UInt8]? {
        var reader = WireReader(body, range: body.indices)
        var output: [UInt8] = []
        var copiedUpTo = 0
        var changed = false
        while !reader.isAtEnd {
            let (field, wireType) = try reader.key()
            guard field == 1 else {
                try reader.skip(wireType)
                continue
            }
            guard wireType == WireReader.lengthDelimited else { throw .init(detail: "resource_profiles with wire type \(wireType)") }
            let keyEnd = reader.position
            let resourceProfiles = try reader.lengthDelimited()
            guard let content = try withAttributes(labels, resourceProfiles: resourceProfiles, in: body) else { continue }
            if !changed {
                output.reserveCapacity(body.count + 64 * labels.count)
                changed = true
            }
            output.append(contentsOf: body[copiedUpTo..<keyEnd])
            ProtobufWire.writeVarint(UInt64(content.count), to: &output)
            output.append(contentsOf: content)
            copiedUpTo = resourceProfiles.upperBound
        }
        guard changed else { return nil }
        output.append(contentsOf: body[copiedUpTo...])
        return output
    }

    /// A `ResourceProfiles`' new content, or nil when its resource lacks nothing.
    private static func withAttributes(_ labels: [LambdaLabel], resourceProfiles: Range<Int>, in body: [UInt8]) throws(ProtobufMalformed) -> [UInt8]? {
        var reader = WireReader(body, range: resourceProfiles)
        var keys = Set<[UInt8]>()
        var attributeCount = 0
        var lastResource: (keyStart: Int, content: Range<Int>)?
        while !reader.isAtEnd {
            let keyStart = reader.position
            let (field, wireType) = try reader.key()
            guard field == 1 else {
                try reader.skip(wireType)
                continue
            }
            guard wireType == WireReader.lengthDelimited else { throw .init(detail: "resource with wire type \(wireType)") }
            let content = try reader.lengthDelimited()
            attributeCount += try collectKeys(resource: content, in: body, into: &keys)
            lastResource = (keyStart, content)
        }
        let additions = encodedAttributes(labels, missingFrom: keys, room: maxAttributesPerResource - attributeCount)
        guard !additions.isEmpty else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(resourceProfiles.count + additions.count + 8)
        if let lastResource {
            output.append(contentsOf: body[resourceProfiles.lowerBound..<lastResource.keyStart])
            ProtobufWire.appendLengthDelimited(field: 1, body[lastResource.content] + additions, to: &output)
            output.append(contentsOf: body[lastResource.content.upperBound..<resourceProfiles.upperBound])
        } else {
            output.append(contentsOf: body[resourceProfiles])
            ProtobufWire.appendLengthDelimited(field: 1, additions, to: &output)
        }
        return output
    }

    /// Adds the key of every attribute of one `Resource` to `keys`; returns how many it holds.
    private static func collectKeys(resource: Range<Int>, in body: [UInt8], into keys: inout Set<[UInt8]>) throws(ProtobufMalformed) -> Int {
        var reader = WireReader(body, range: resource)
        var count = 0
        while !reader.isAtEnd {
            let (field, wireType) = try reader.key()
            guard field == 1 else {
                try reader.skip(wireType)
                continue
            }
            guard wireType == WireReader.lengthDelimited else { throw .init(detail: "attribute with wire type \(wireType)") }
            var pair = WireReader(body, range: try reader.lengthDelimited())
            var key = pair.position..<pair.position
            while !pair.isAtEnd {
                let (pairField, pairWireType) = try pair.key()
                if pairField == 1 {
                    guard pairWireType == WireReader.lengthDelimited else { throw .init(detail: "attribute key with wire type \(pairWireType)") }
                    key = try pair.lengthDelimited()
                } else {
                    try pair.skip(pairWireType)
                }
            }
            keys.insert(Array(body[key]))
            count += 1
        }
        return count
    }

    /// The `KeyValue` fields for the labels a resource lacks. A label counts as set when the
    /// client set its attribute key or its Pyroscope name (both become the same label).
    private static func encodedAttributes(_ labels: [LambdaLabel], missingFrom keys: Set<[UInt8]>, room: Int) -> [UInt8] {
        var room = room
        var encoded: [UInt8] = []
        for label in labels where room > 0 {
            guard !keys.contains(Array(label.attribute.key.utf8)), !keys.contains(Array(label.name.utf8)) else { continue }
            room -= 1
            var value: [UInt8] = []
            if label.attribute.isInteger, let number = Int64(label.value) {
                ProtobufWire.writeVarint(3 << 3 | UInt64(WireReader.varint), to: &value)
                ProtobufWire.writeVarint(UInt64(bitPattern: number), to: &value)
            } else {
                ProtobufWire.appendString(field: 1, label.value, to: &value)
            }
            var keyValue: [UInt8] = []
            ProtobufWire.appendString(field: 1, label.attribute.key, to: &keyValue)
            ProtobufWire.appendLengthDelimited(field: 2, value, to: &keyValue)
            ProtobufWire.appendLengthDelimited(field: 1, keyValue, to: &encoded)
        }
        return encoded
    }
}
