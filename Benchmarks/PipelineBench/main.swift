import Foundation
import Logging
import NIOCore
import NIOHTTP1
import RelayCore

// CPU per upload of the delivery pipeline alone (admit, take, complete), with the spool and
// its journal and without: what journaling adds to each acknowledged upload.
//
//     swift build -c release --product PipelineBench && .build/release/PipelineBench [N] [BODY_BYTES]

func cpuMicroseconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
}

let arguments = CommandLine.arguments
let count = arguments.count > 1 ? Int(arguments[1]) ?? 50_000 : 50_000
let bodyBytes = arguments.count > 2 ? Int(arguments[2]) ?? 1024 : 1024
let logger = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
let headers: HTTPHeaders = [
    "user-agent": "pyroscope-rs/pyspy/1.4.0 reqwest", "content-type": "application/proto", "content-encoding": "gzip",
    "accept": "*/*", "host": "localhost:4040",
]
let body = ByteBuffer(bytes: (0..<bodyBytes).map { UInt8(truncatingIfNeeded: $0 &* 31) })

func run(journal: Bool) async -> Double {
    let directory = NSTemporaryDirectory() + "pipeline-bench-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let pipeline = DeliveryPipeline(configuration: .init(spoolDirectory: journal ? directory : nil), logger: logger)
    let start = cpuMicroseconds()
    for _ in 0..<count {
        _ = await pipeline.admit(Upload(method: .POST, target: "/push.v1.PusherService/Push", headers: headers, body: body))
        let delivery = await pipeline.next()!
        await pipeline.complete(delivery, .delivered)
    }
    return (cpuMicroseconds() - start) / Double(count)
}

var memoryOnly: [Double] = []
var journaled: [Double] = []
for round in 0..<3 {
    memoryOnly.append(await run(journal: false))
    journaled.append(await run(journal: true))
    print(
        "round \(round + 1): memory only \(String(format: "%.2f", memoryOnly.last!)) µs/upload, with the journal "
            + "\(String(format: "%.2f", journaled.last!)) µs/upload (\(bodyBytes) B body)")
}
func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
print(#"{"pipeline_us_per_upload":\#(median(memoryOnly)),"pipeline_journal_us_per_upload":\#(median(journaled)),"body_bytes":\#(bodyBytes)}"#)
