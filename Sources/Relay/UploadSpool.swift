import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The relay's side of the disk spool: converts uploads to spool records and back, and
/// runs the spool's blocking file I/O on NIO's thread pool, never on an event loop.
public final class UploadSpool: Sendable {
    let disk: DiskSpool
    let threadPool: NIOThreadPool
    let logger: Logger

    public init(directory: String, maxBytes: Int, threadPool: NIOThreadPool = .singleton, logger: Logger) throws(SpoolError) {
        self.disk = try DiskSpool(directory: directory, maxBytes: maxBytes, logger: logger)
        self.threadPool = threadPool
        self.logger = logger
    }

    public var isEmpty: Bool { disk.usage.items == 0 }
    public var usage: (items: Int, bytes: Int) { disk.usage }

    /// Writes the upload to disk; false when the spool is full or the write failed.
    public func store(_ upload: Upload) async -> Bool {
        let record = SpoolRecord(
            method: upload.method.rawValue, target: upload.target, headers: upload.headers.map { ($0.name, $0.value) },
            body: Array(upload.body.readableBytesView),
            receivedAtUnixMs: unixMilliseconds() - (ContinuousClock.now - upload.receivedAt).wholeMilliseconds, attempts: 0)
        let disk = self.disk
        do {
            _ = try await threadPool.runIfActive { () throws -> SpoolEntryID in try disk.append(record) }
            return true
        } catch let error as SpoolError where error.code == .full {
            return false
        } catch {
            logger.error("Could not write an upload to the spool", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// The oldest spooled upload, checked out (call `finish`); nil when none.
    public func takeOldest() async -> (id: SpoolEntryID, upload: Upload)? {
        let disk = self.disk
        guard let entry = try? await threadPool.runIfActive({ disk.checkOutOldest() }) else { return nil }
        let record = entry.record
        var headers = HTTPHeaders()
        for (name, value) in record.headers { headers.add(name: name, value: value) }
        // The monotonic clock does not survive a restart; age comes from the wall clock.
        let age = Duration.milliseconds(max(0, unixMilliseconds() - record.receivedAtUnixMs))
        let upload = Upload(
            method: HTTPMethod(rawValue: record.method), target: record.target, headers: headers,
            body: ByteBuffer(bytes: record.body), receivedAt: .now - age)
        return (entry.id, upload)
    }

    /// The upload reached its outcome (delivered or dropped): delete it.
    public func finish(_ id: SpoolEntryID) async {
        let disk = self.disk
        _ = try? await threadPool.runIfActive { disk.remove(id) }
    }
}
