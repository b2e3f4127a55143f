/// Adds labels to the `name` parameter of a legacy `/ingest` query (`app.cpu{k=v,...}`),
/// as the Go extension adds its session id: the key is parsed as Pyroscope's
/// `flameql.ParseKey` does, missing labels are added (a label the client set keeps the
/// client's value), and the key goes back in Go's normalized form (labels sorted) with
/// Go's `url.QueryEscape`. Only that parameter is rewritten: every other byte of the
/// query stays as the client sent it.
enum IngestNameLabels {
    enum Outcome: Equatable {
        /// The query with the labels in `name`.
        case rewritten(String)
        /// Every label is set already: the query stays as sent.
        case unchanged
        /// No `name` parameter, or one Pyroscope could not parse either: left as sent.
        case unparsableName
    }

    static func add(_ labels: [LambdaLabel], toQuery query: Substring) -> Outcome {
        // Go's url.ParseQuery: '&'-separated pairs; a pair with ';' or a bad escape is skipped.
        var pairs = query.split(separator: "&", omittingEmptySubsequences: false)
        var nameIndex: Int?
        var nameValue = ""
        for (index, pair) in pairs.enumerated() where !pair.isEmpty && !pair.contains(";") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = percentDecode(parts[0], plusIsSpace: true), key == "name",
                let value = percentDecode(parts.count > 1 ? parts[1] : "", plusIsSpace: true)
            else { continue }
            nameIndex = index
            nameValue = value
            break
        }
        guard let nameIndex, var key = ProfileKey(parsing: nameValue) else { return .unparsableName }
        var added = false
        for label in labels where key.labels[label.name] == nil {
            key.labels[label.name] = label.value
            added = true
        }
        guard added else { return .unchanged }
        pairs[nameIndex] = Substring("name=" + queryEscape(key.normalized))
        // Go's Values.Set replaces every value of the key: later `name` pairs go.
        var kept: [Substring] = []
        for (index, pair) in pairs.enumerated() {
            if index > nameIndex, let key = percentDecode(pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0], plusIsSpace: true),
                key == "name"
            {
                continue
            }
            kept.append(pair)
        }
        return .rewritten(kept.joined(separator: "&"))
    }
}
