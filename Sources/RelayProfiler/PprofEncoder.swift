/// Builds a pprof `Profile` (github.com/google/pprof/proto/profile.proto) for CPU
/// samples, encoded by hand: the message is small and fixed, and a protobuf dependency
/// would cost more binary than this file.
struct PprofProfile {
    /// A stack, leaf first, as function names.
    struct Sample {
        var functions: [String]
        var count: Int
    }

    var samples: [Sample]
    /// Nanoseconds of CPU each sample stands for (1 s / sampling rate).
    var periodNanos: Int64
    var startUnixNanos: Int64
    var durationNanos: Int64
    var executablePath: String

    /// The encoded profile, uncompressed.
    func encoded() -> [UInt8] {
        var strings = StringTable()
        let cpu = strings.index("cpu")
        let nanoseconds = strings.index("nanoseconds")

        // One function and one location per distinct name: addresses are symbolized
        // already, and Pyroscope aggregates by name.
        var functionIDs: [String: UInt64] = [:]
        var functions = ProtoWriter()
        var locations = ProtoWriter()
        var sampleMessages = ProtoWriter()
        for sample in samples {
            var locationIDs: [UInt64] = []
            locationIDs.reserveCapacity(sample.functions.count)
            for name in sample.functions {
                if let id = functionIDs[name] {
                    locationIDs.append(id)
                    continue
                }
                let id = UInt64(functionIDs.count + 1)
                functionIDs[name] = id
                let nameIndex = strings.index(name)
                var function = ProtoWriter()
                function.uint64(field: 1, id)
                function.int64(field: 2, nameIndex)  // name
                function.int64(field: 3, nameIndex)  // system_name
                functions.message(field: 5, function)
                var line = ProtoWriter()
                line.uint64(field: 1, id)
                var location = ProtoWriter()
                location.uint64(field: 1, id)
                location.uint64(field: 2, 1)  // mapping_id
                location.message(field: 4, line)
                locations.message(field: 4, location)
                locationIDs.append(id)
            }
            var message = ProtoWriter()
            message.packedUInt64(field: 1, locationIDs)
            message.packedInt64(field: 2, [Int64(sample.count) * periodNanos])
            sampleMessages.message(field: 2, message)
        }

        var valueType = ProtoWriter()
        valueType.int64(field: 1, cpu)
        valueType.int64(field: 2, nanoseconds)
        var mapping = ProtoWriter()
        mapping.uint64(field: 1, 1)
        mapping.int64(field: 5, strings.index(executablePath))
        mapping.bool(field: 7, true)  // has_functions

        var profile = ProtoWriter()
        profile.message(field: 1, valueType)  // sample_type
        profile.append(sampleMessages)
        profile.message(field: 3, mapping)
        profile.append(locations)
        profile.append(functions)
        for string in strings.strings { profile.string(field: 6, string) }
        profile.int64(field: 9, startUnixNanos)
        profile.int64(field: 10, durationNanos)
        profile.message(field: 11, valueType)  // period_type
        profile.int64(field: 12, periodNanos)
        return profile.bytes
    }
}

/// pprof's string table: index 0 is always "".
struct StringTable {
    private(set) var strings: [String] = [""]
    private var indices: [String: Int64] = ["": 0]

    mutating func index(_ string: String) -> Int64 {
        if let index = indices[string] { return index }
        let index = Int64(strings.count)
        strings.append(string)
        indices[string] = index
        return index
    }
}

/// The protobuf wire format, just what pprof needs.
struct ProtoWriter {
    private(set) var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    private mutating func key(_ field: Int, _ wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }

    mutating func uint64(field: Int, _ value: UInt64) {
        key(field, 0)
        varint(value)
    }

    mutating func int64(field: Int, _ value: Int64) { uint64(field: field, UInt64(bitPattern: value)) }

    mutating func bool(field: Int, _ value: Bool) { uint64(field: field, value ? 1 : 0) }

    mutating func bytes(field: Int, _ value: some Collection<UInt8>) {
        key(field, 2)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func string(field: Int, _ value: String) { bytes(field: field, Array(value.utf8)) }

    mutating func message(field: Int, _ value: ProtoWriter) { bytes(field: field, value.bytes) }

    mutating func packedUInt64(field: Int, _ values: [UInt64]) {
        var packed = ProtoWriter()
        for value in values { packed.varint(value) }
        bytes(field: field, packed.bytes)
    }

    mutating func packedInt64(field: Int, _ values: [Int64]) { packedUInt64(field: field, values.map { UInt64(bitPattern: $0) }) }

    mutating func append(_ other: ProtoWriter) { bytes.append(contentsOf: other.bytes) }
}
