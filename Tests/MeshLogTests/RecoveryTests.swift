import Foundation
import Testing
@testable import MeshLog

@Suite struct RecoveryTests {
    /// Writes `count` records in a closed log and returns the active segment's path.
    private func prepared(_ dir: ScratchDirectory, count: Int, segmentBytes: Int64 = 1 << 20) async throws -> String {
        let log = try DurableLog.test(dir, smallOptions(segmentBytes: segmentBytes))
        let p = try log.createTopic(topic("recover")).partitions[0]
        for i in 0..<count { _ = try await p.append(payload(i)) }
        let path = segmentFiles(p).last!
        log.close()
        return path
    }

    private func reopen(_ dir: ScratchDirectory, segmentBytes: Int64 = 1 << 20) throws -> (DurableLog, PartitionLog) {
        let log = try DurableLog.test(dir, smallOptions(segmentBytes: segmentBytes))
        return (log, log.topic(topic("recover"))!.partitions[0])
    }

    private func fileSize(_ path: String) -> Int {
        (try! FileManager.default.attributesOfItem(atPath: path)[.size] as! NSNumber).intValue
    }

    private func edit(_ path: String, _ change: (inout [UInt8]) -> Void) {
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        change(&bytes)
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)), "cannot write \(path)")
    }

    @Test func truncatedTailIsCutAtTheLastWholeRecord() async throws {
        let dir = ScratchDirectory()
        let path = try await prepared(dir, count: 100)
        let size = fileSize(path)
        edit(path) { $0.removeLast(7) }  // tear the last record
        let (log, p) = try reopen(dir)
        defer { log.close() }
        #expect(p.endOffset == 99)
        #expect(fileSize(path) < size - 7)
        #expect(try readAll(p).map(\.payload) == (0..<99).map { payload($0) })
        // The log goes on from the cut, with the offset the torn record had.
        #expect(try await p.append(payload(500)) == 99)
        #expect(try readAll(p).last?.payload == payload(500))
    }

    @Test func garbageAndZerosAfterTheTailAreCut() async throws {
        let dir = ScratchDirectory()
        let path = try await prepared(dir, count: 50)
        edit(path) { $0 += [UInt8](repeating: 0, count: 4096) + (0..<999).map { UInt8(truncatingIfNeeded: $0 &* 7) } }
        let (log, p) = try reopen(dir)
        defer { log.close() }
        #expect(p.endOffset == 50)
        #expect(try readAll(p).map(\.payload) == (0..<50).map { payload($0) })
    }

    @Test func aFlippedBitInTheTailDropsThatRecordAndWhatFollows() async throws {
        let dir = ScratchDirectory()
        let path = try await prepared(dir, count: 40)
        let size = fileSize(path)
        // Flip a bit inside the payload of a record near the end.
        edit(path) { $0[size - 150] ^= 0x10 }
        let (log, p) = try reopen(dir)
        defer { log.close() }
        let records = try readAll(p)
        #expect(records.count < 40 && records.count >= 35)
        #expect(records.map(\.payload) == (0..<records.count).map { payload($0) })
    }

    @Test func corruptionInASealedSegmentIsReportedNeverServed() async throws {
        let dir = ScratchDirectory()
        _ = try await prepared(dir, count: 400, segmentBytes: 4096)
        let (log, p) = try reopen(dir, segmentBytes: 4096)
        defer { log.close() }
        let sealed = segmentFiles(p)[1]
        let base = Int64(URL(fileURLWithPath: sealed).deletingPathExtension().lastPathComponent)!
        edit(sealed) { $0[30] ^= 0xFF }  // inside the first record's payload
        #expect(p.endOffset == 400)
        #expect(throws: LogError.self) { try p.read(from: base, maxRecords: 5) }
        do {
            _ = try p.read(from: base, maxRecords: 5)
        } catch {
            #expect(error.code == .corrupt)
        }
        // Records before and after the damaged segment still read.
        #expect(try p.read(from: 0, maxRecords: 3).map(\.payload) == (0..<3).map { payload($0) })
        let later = segmentFiles(p)[2]
        let laterBase = Int64(URL(fileURLWithPath: later).deletingPathExtension().lastPathComponent)!
        #expect(try p.read(from: laterBase, maxRecords: 1).first?.payload == payload(Int(laterBase)))
    }

    @Test func missingOrDamagedIndexesAreRebuilt() async throws {
        let dir = ScratchDirectory()
        _ = try await prepared(dir, count: 600, segmentBytes: 8192)
        var (log, p) = try reopen(dir, segmentBytes: 8192)
        let indexes = segmentFiles(p, ext: "index")
        let times = segmentFiles(p, ext: "timeindex")
        #expect(indexes.count == segmentFiles(p).count - 1)
        log.close()
        try FileManager.default.removeItem(atPath: indexes[0])
        edit(indexes[1]) { $0.removeLast(3) }       // not a whole number of entries
        edit(times[2]) { $0 = $0.reversed() }       // not increasing
        (log, p) = try reopen(dir, segmentBytes: 8192)
        defer { log.close() }
        for offset in stride(from: 0, to: 600, by: 37) {
            #expect(try p.read(from: Int64(offset), maxRecords: 1).first?.payload == payload(offset))
        }
        #expect(FileManager.default.fileExists(atPath: indexes[0]))
        #expect(fileSize(indexes[1]) % SparseIndex.positionEntrySize == 0)
    }

    @Test func everyOffsetIsReachableThroughTheIndexes() async throws {
        let dir = ScratchDirectory()
        _ = try await prepared(dir, count: 700, segmentBytes: 6000)
        let (log, p) = try reopen(dir, segmentBytes: 6000)
        defer { log.close() }
        #expect(segmentFiles(p).count > 10)
        for offset in 0..<700 {
            let got = try p.read(from: Int64(offset), maxRecords: 1)
            #expect(got.first?.offset == Int64(offset))
            #expect(got.first?.payload == payload(offset))
        }
    }
}

/// A kill between creating a topic's directory and writing its topic.meta must not make the data
/// directory unopenable (found by the route crash test).
@Test func aTopicDirectoryWithoutMetaIsRemovedAtOpen() throws {
    let dir = ScratchDirectory()
    do {
        let log = try DurableLog.test(dir)
        try log.createTopic(topic("kept/a"))
        log.close()
    }
    try FileManager.default.createDirectory(atPath: dir.path + "/topics/torn%2Fx/0", withIntermediateDirectories: true)
    let log = try DurableLog.test(dir)
    defer { log.close() }
    #expect(log.topics.map(\.topic.name) == ["kept/a"])
    #expect(!FileManager.default.fileExists(atPath: dir.path + "/topics/torn%2Fx"))
}
