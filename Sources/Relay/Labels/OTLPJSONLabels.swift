import RelayJSON

/// Adds the labels as resource attributes of every `resourceProfiles` entry of an OTLP
/// profiles export in JSON (OTLP/JSON: lowerCamelCase names; the proto names, which
/// protobuf's JSON readers also take, are read too). The document is parsed and written
/// again: members keep their order and numbers their text; only white space and string
/// escapes may change. A resource gets the attributes it lacks after its own.
enum OTLPJSONLabels {
    struct Malformed: Error, Equatable {
        var detail: String
    }

    /// The document with the attributes added; nil when every resource has them (or there is none).
    static func add(_ labels: [LambdaLabel], to body: [UInt8]) throws(Malformed) -> [UInt8]? {
        let document: JSONValue
        do { document = try JSONValue.parse(body) } catch { throw Malformed(detail: error.description) }
        guard case .object(var members) = document else { throw Malformed(detail: "not a JSON object") }
        guard let index = members.firstIndex(where: { $0.key == "resourceProfiles" || $0.key == "resource_profiles" }) else { return nil }
        if members[index].value.isNull { return nil }
        guard case .array(var entries) = members[index].value else { throw Malformed(detail: "\(members[index].key) is not an array") }
        var changed = false
        for position in entries.indices {
            guard case .object(var entry) = entries[position] else { throw Malformed(detail: "a resourceProfiles entry is not an object") }
            if try addAttributes(labels, to: &entry) {
                entries[position] = .object(entry)
                changed = true
            }
        }
        guard changed else { return nil }
        members[index].value = .array(entries)
        return JSONValue.object(members).serialized()
    }

    /// Adds what the entry's `resource` lacks; false when it lacks nothing.
    private static func addAttributes(_ labels: [LambdaLabel], to entry: inout [(key: String, value: JSONValue)]) throws(Malformed) -> Bool {
        var resource: [(key: String, value: JSONValue)] = []
        let resourceIndex = entry.firstIndex { $0.key == "resource" }
        if let resourceIndex, !entry[resourceIndex].value.isNull {
            guard case .object(let members) = entry[resourceIndex].value else { throw Malformed(detail: "resource is not an object") }
            resource = members
        }
        var attributes: [JSONValue] = []
        let attributesIndex = resource.firstIndex { $0.key == "attributes" }
        if let attributesIndex, !resource[attributesIndex].value.isNull {
            guard case .array(let elements) = resource[attributesIndex].value else { throw Malformed(detail: "attributes is not an array") }
            attributes = elements
        }
        var keys = Set<String>()
        for attribute in attributes {
            guard case .object(let members) = attribute else { throw Malformed(detail: "an attribute is not an object") }
            if let key = members.last(where: { $0.key == "key" })?.value.string { keys.insert(key) }
        }
        var room = OTLPProfilesLabels.maxAttributesPerResource - attributes.count
        var added = false
        for label in labels where room > 0 && !keys.contains(label.attribute.key) && !keys.contains(label.name) {
            room -= 1
            added = true
            // proto3 JSON writes an int64 as a string.
            let value: JSONValue =
                label.attribute.isInteger && Int64(label.value) != nil
                ? .object([("intValue", .string(label.value))]) : .object([("stringValue", .string(label.value))])
            attributes.append(.object([("key", .string(label.attribute.key)), ("value", value)]))
        }
        guard added else { return false }
        if let attributesIndex { resource[attributesIndex].value = .array(attributes) } else { resource.append(("attributes", .array(attributes))) }
        if let resourceIndex { entry[resourceIndex].value = .object(resource) } else { entry.insert(("resource", .object(resource)), at: 0) }
        return true
    }
}
