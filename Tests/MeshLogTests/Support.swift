import Foundation
import Logging
import MeshCore
@testable import MeshLog

/// A fresh scratch directory, removed when the value is released.
final class ScratchDirectory {
    let path: String

    init(_ name: String = #function) {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        path = NSTemporaryDirectory() + "meshgate-test-\(safe)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A settable clock for retention and time-index tests.
final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var micros: Int64
    init(_ start: Int64 = 1_700_000_000_000_000) { micros = start }
    var now: Int64 { lock.lock(); defer { lock.unlock() }; return micros }
    func advance(_ by: Int64) { lock.lock(); micros += by; lock.unlock() }
}

func payload(_ i: Int, size: Int? = nil) -> [UInt8] {
    var bytes = Array("record-\(i)-".utf8)
    let n = size ?? (i % 300 + 1)
    while bytes.count < n { bytes.append(UInt8(truncatingIfNeeded: i &* 31 &+ bytes.count)) }
    return bytes
}

func smallOptions(segmentBytes: Int64 = 4096, clock: TestClock? = nil) -> LogOptions {
    var o = LogOptions()
    o.segmentBytes = segmentBytes
    o.indexIntervalBytes = 256
    o.retentionCheckMicros = nil
    if let clock { o.clock = { clock.now } }
    return o
}

let quietLogger: Logger = {
    var l = Logger(label: "test")
    l.logLevel = .critical
    return l
}()

extension DurableLog {
    static func test(_ dir: ScratchDirectory, _ options: LogOptions = smallOptions()) throws -> DurableLog {
        try DurableLog(directory: dir.path, options: options, logger: quietLogger)
    }
}

func topic(_ name: String) -> Topic { try! Topic(name) }

/// Reads a whole partition from its start, in pieces of `chunk` records.
func readAll(_ p: PartitionLog, chunk: Int = 97) throws -> [LogRecord] {
    var out: [LogRecord] = []
    var next = p.startOffset
    while true {
        let got = try p.read(from: next, maxRecords: chunk)
        if got.isEmpty { return out }
        out += got
        next = got.last!.offset + 1
    }
}

/// Paths of a partition's segment files, oldest first.
func segmentFiles(_ p: PartitionLog, ext: String = "log") -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: p.directory)) ?? []
    return names.filter { $0.hasSuffix("." + ext) }.sorted().map { p.directory + "/" + $0 }
}
