import Foundation
import Testing
@testable import MeshLog

@Suite struct RetentionAndTimeTests {
    @Test func retentionByBytesDeletesWholeOldSegments() async throws {
        let dir = ScratchDirectory()
        let log = try DurableLog.test(dir, smallOptions(segmentBytes: 4096))
        defer { log.close() }
        let t = try log.createTopic(topic("bounded"), config: TopicConfig(retentionBytes: 20_000))
        let p = t.partitions[0]
        for i in 0..<1000 { _ = try await p.append(payload(i, size: 100)) }
        let before = segmentFiles(p).count
        let deleted = log.enforceRetention()
        #expect(deleted > 0)
        #expect(segmentFiles(p).count == before - deleted)
        let remaining = segmentFiles(p).reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int) ?? 0) }
        #expect(remaining >= 20_000 && remaining < 20_000 + 4096 + 200)
        // The log now starts at a segment boundary; earlier offsets are out of range, later ones intact.
        let start = p.startOffset
        #expect(start > 0)
        #expect(URL(fileURLWithPath: segmentFiles(p)[0]).deletingPathExtension().lastPathComponent == String(format: "%020lld", start))
        #expect(throws: LogError.self) { try p.read(from: start - 1) }
        #expect(try readAll(p).map(\.payload) == (Int(start)..<1000).map { payload($0, size: 100) })
        #expect(p.endOffset == 1000)
    }

    @Test func retentionByAgeUsesEachSegmentsNewestRecord() async throws {
        let dir = ScratchDirectory()
        let clock = TestClock()
        let log = try DurableLog.test(dir, smallOptions(segmentBytes: 4096, clock: clock))
        defer { log.close() }
        let hour: Int64 = 3_600_000_000
        let p = try log.createTopic(topic("aging"), config: TopicConfig(retentionMicros: 24 * hour)).partitions[0]
        for i in 0..<300 { _ = try await p.append(payload(i, size: 100)) }   // old records
        clock.advance(20 * hour)
        for i in 300..<600 { _ = try await p.append(payload(i, size: 100)) } // newer records
        #expect(log.enforceRetention(now: clock.now) == 0)
        clock.advance(5 * hour)  // the first batch is now 25 h old, the second 5 h
        #expect(log.enforceRetention(now: clock.now) > 0)
        let start = p.startOffset
        #expect(start > 200 && start <= 300)
        #expect(try readAll(p).map(\.payload) == (Int(start)..<600).map { payload($0, size: 100) })
        // The active segment is never deleted, however old.
        clock.advance(1000 * hour)
        log.enforceRetention(now: clock.now)
        #expect(p.endOffset == 600)
        #expect(segmentFiles(p).count == 1)
        #expect(try p.read(from: p.startOffset, maxRecords: 1000).last?.offset == 599)
    }

    @Test func lookupByTimeFindsTheFirstRecordAtOrAfter() async throws {
        let dir = ScratchDirectory()
        let clock = TestClock()
        let log = try DurableLog.test(dir, smallOptions(segmentBytes: 2048, clock: clock))
        defer { log.close() }
        let p = try log.createTopic(topic("timed")).partitions[0]
        var times: [Int64] = []
        for i in 0..<400 {
            times.append(clock.now)
            _ = try await p.append(payload(i, size: 50))
            clock.advance(1000)
        }
        #expect(try p.read(from: 123, maxRecords: 1).first?.timestamp == times[123])
        for i in [0, 1, 57, 199, 200, 333, 399] {
            #expect(try p.offset(atOrAfter: times[i]) == Int64(i))
            #expect(try p.offset(atOrAfter: times[i] - 1) == Int64(i))
        }
        #expect(try p.offset(atOrAfter: 0) == 0)
        #expect(try p.offset(atOrAfter: times[399] + 1) == 400)
    }

    @Test func segmentsRollByAge() async throws {
        let dir = ScratchDirectory()
        let clock = TestClock()
        var options = smallOptions(segmentBytes: 1 << 30, clock: clock)
        options.segmentAgeMicros = 60_000_000
        let log = try DurableLog.test(dir, options)
        defer { log.close() }
        let p = try log.createTopic(topic("rolling")).partitions[0]
        _ = try await p.append(payload(0))
        clock.advance(30_000_000)
        _ = try await p.append(payload(1))
        #expect(segmentFiles(p).count == 1)
        clock.advance(31_000_000)
        _ = try await p.append(payload(2))
        #expect(segmentFiles(p).count == 2)
        #expect(try readAll(p).map(\.payload) == (0..<3).map { payload($0) })
    }
}

@Suite struct ConsumerOffsetTests {
    @Test func committedOffsetsSurviveReopenAndCompaction() async throws {
        let dir = ScratchDirectory()
        do {
            let log = try DurableLog.test(dir)
            try await log.offsets.commit(group: "billing", [GroupOffset(topic: "orders", partition: 0, offset: 10),
                                                            GroupOffset(topic: "orders", partition: 1, offset: 7)])
            try await log.offsets.commit(group: "audit", [GroupOffset(topic: "orders", partition: 0, offset: 3)])
            try await log.offsets.commit(group: "billing", [GroupOffset(topic: "orders", partition: 0, offset: 12)])
            log.close()
        }
        let log = try DurableLog.test(dir)
        #expect(log.offsets.committed(group: "billing", topic: "orders", partition: 0) == 12)
        #expect(log.offsets.committed(group: "billing", topic: "orders", partition: 1) == 7)
        #expect(log.offsets.committed(group: "audit", topic: "orders", partition: 0) == 3)
        #expect(log.offsets.committed(group: "nobody", topic: "orders", partition: 0) == nil)
        #expect(log.offsets.groups == ["audit", "billing"])
        log.close()
    }

    @Test func compactionKeepsTheLatestOffsetOfEveryKey() throws {
        let dir = ScratchDirectory()
        let offsets = try ConsumerOffsets(directory: dir.path + "/groups", maxRecordBytes: 1 << 20, compactBytes: 4096)
        for round in 0..<200 {
            try offsets.commitNow(group: "g\(round % 3)", (0..<4).map { GroupOffset(topic: "t", partition: $0, offset: Int64(round)) })
        }
        let size = (try FileManager.default.attributesOfItem(atPath: dir.path + "/groups/offsets.log")[.size] as! NSNumber).intValue
        #expect(size < 8192)
        let reopened = try ConsumerOffsets(directory: dir.path + "/groups", maxRecordBytes: 1 << 20)
        #expect(reopened.committed(group: "g2") == (0..<4).map { GroupOffset(topic: "t", partition: $0, offset: 197) })
        #expect(reopened.committed(group: "g1", topic: "t", partition: 3) == 199)
    }

    @Test func aTornJournalTailLosesOnlyTheUnfinishedCommit() throws {
        let dir = ScratchDirectory()
        let path = dir.path + "/groups/offsets.log"
        do {
            let offsets = try ConsumerOffsets(directory: dir.path + "/groups", maxRecordBytes: 1 << 20)
            try offsets.commitNow(group: "g", [GroupOffset(topic: "t", partition: 0, offset: 5)])
            try offsets.commitNow(group: "g", [GroupOffset(topic: "t", partition: 0, offset: 9)])
        }
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        bytes.removeLast(4)
        try #require(FileManager.default.createFile(atPath: path, contents: Data(bytes)), "cannot write \(path)")
        let offsets = try ConsumerOffsets(directory: dir.path + "/groups", maxRecordBytes: 1 << 20)
        #expect(offsets.committed(group: "g", topic: "t", partition: 0) == 5)
        try offsets.commitNow(group: "g", [GroupOffset(topic: "t", partition: 0, offset: 11)])
        #expect(try ConsumerOffsets(directory: dir.path + "/groups", maxRecordBytes: 1 << 20).committed(group: "g", topic: "t", partition: 0) == 11)
    }
}

@Suite struct WaitingAndLimitsTests {
    @Test func aReaderWaitsForNewDataWithoutPolling() async throws {
        let dir = ScratchDirectory()
        let log = try DurableLog.test(dir)
        defer { log.close() }
        let p = try log.createTopic(topic("live")).partitions[0]
        async let woke: [LogRecord] = {
            await p.waitForData(beyond: 0)
            return try p.read(from: 0)
        }()
        try await Task.sleep(for: .milliseconds(50))
        _ = try await p.append(payload(1))
        #expect(try await woke.map(\.payload) == [payload(1)])
    }

    @Test func cancellingAWaitReturnsPromptly() async throws {
        let dir = ScratchDirectory()
        let log = try DurableLog.test(dir)
        defer { log.close() }
        let p = try log.createTopic(topic("idle")).partitions[0]
        let waiter = Task { await p.waitForData(beyond: 0); return p.endOffset }
        try await Task.sleep(for: .milliseconds(20))
        waiter.cancel()
        #expect(await waiter.value == 0)
    }

    @Test func notifyCallsBackOnceDataArrives() async throws {
        let dir = ScratchDirectory()
        let log = try DurableLog.test(dir)
        defer { log.close() }
        let p = try log.createTopic(topic("callback")).partitions[0]
        let fired = await withCheckedContinuation { (cont: CheckedContinuation<Int64, Never>) in
            p.notify(beyond: 0) { cont.resume(returning: p.endOffset) }
            p.append(payload(0)) { _ in }
        }
        #expect(fired >= 1)
    }

    @Test func openFilesStayBoundedWithManyTopics() async throws {
        let dir = ScratchDirectory()
        var options = smallOptions(segmentBytes: 2048)
        options.maxOpenFiles = 16
        let log = try DurableLog.test(dir, options)
        let names = (0..<300).map { "fleet/device-\($0)/telemetry" }
        for (i, name) in names.enumerated() {
            let t = try log.createTopic(topic(name))
            for j in 0..<5 { _ = try await t.append(payload(i * 10 + j, size: 200), key: nil) }
            #expect(log.openFiles <= 16)
        }
        for (i, name) in names.enumerated() {
            let p = log.topic(topic(name))!.partitions[0]
            #expect(try readAll(p).map(\.payload) == (0..<5).map { payload(i * 10 + $0, size: 200) })
        }
        #expect(log.openFiles <= 16)
        log.close()
        let reopened = try DurableLog.test(dir, options)
        defer { reopened.close() }
        #expect(reopened.topics.count == 300)
        #expect(reopened.openFiles <= 16)
    }
}
