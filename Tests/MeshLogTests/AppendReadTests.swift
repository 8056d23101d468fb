import Foundation
import MeshTestSupport
import Testing
@testable import MeshLog

@Suite struct AppendReadTests {
    @Test func appendsAndReadsBackInOrder() async throws {
        let dir = ScratchDirectory()
        let log = try DurableLog.test(dir)
        defer { log.close() }
        let p = try log.createTopic(topic("orders/eu")).partitions[0]
        for i in 0..<500 {
            let offset = try await p.append(payload(i))
            #expect(offset == Int64(i))
        }
        #expect(p.endOffset == 500)
        let all = try readAll(p)
        #expect(all.map(\.offset) == Array(0..<500))
        #expect(all.map(\.payload) == (0..<500).map { payload($0) })
        // Reads from the middle, with a byte budget that still returns at least one record.
        let middle = try p.read(from: 250, maxRecords: 10, maxBytes: 1)
        #expect(middle.map(\.offset) == [250])
        #expect(try p.read(from: 500).isEmpty)
        #expect(throws: LogError.self) { try p.read(from: 501) }
    }

    /// `top -H` and `perf` show the log's threads by name (Foundation's `Thread.name` alone does not
    /// reach the kernel on Linux).
    @Test func theLogThreadsCarryTheirNamesForTheKernel() async throws {
        let dir = ScratchDirectory()
        var options = smallOptions(segmentBytes: 1 << 16)
        options.retentionCheckMicros = 60_000_000
        let log = try DurableLog.test(dir, options)
        defer { log.close() }
        _ = try await log.createTopic(topic("named")).partitions[0].append(payload(0))
        let names = Set(threadNames())
        for name in ["mg-log-writer", "mg-log-sync", "mg-log-retain"] {
            #expect(names.contains(name), "no thread \(name) among \(names.sorted())")
        }
    }

    @Test func batchesGetConsecutiveOffsets() async throws {
        let dir = ScratchDirectory()
        let log = try DurableLog.test(dir, smallOptions(segmentBytes: 1 << 16))
        defer { log.close() }
        let p = try log.createTopic(topic("batch")).partitions[0]
        let first = try await p.append(batch: (0..<100).map { payload($0) })
        let second = try await p.append(batch: (100..<1100).map { payload($0, size: 1024) })
        #expect(first == 0 && second == 100)
        // A batch never spans segments; the next append rolls past the full one.
        #expect(segmentFiles(p).count == 1)
        #expect(try await p.append(payload(1100)) == 1100)
        #expect(segmentFiles(p).count == 2)
        let all = try readAll(p, chunk: 333)
        #expect(all.count == 1101)
        #expect(all.map(\.payload) == (0..<100).map { payload($0) } + (100..<1100).map { payload($0, size: 1024) } + [payload(1100)])
    }

    @Test func largeBatchesAcrossManySegmentsReadBackIntact() throws {
        let dir = ScratchDirectory()
        var options = smallOptions(segmentBytes: 1 << 20)
        options.indexIntervalBytes = 4096
        let log = try DurableLog.test(dir, options)
        defer { log.close() }
        let p = try log.createTopic(topic("bulk"), config: TopicConfig(durability: .none)).partitions[0]
        let batch = Array(repeating: [UInt8](repeating: 0x62, count: 1024), count: 1000)
        let done = DispatchSemaphore(value: 0)
        for _ in 0..<20 { p.append(batch: batch) { r in #expect((try? r.get()) != nil); done.signal() } }
        for _ in 0..<20 { done.wait() }
        var next: Int64 = 0
        var count = 0
        while true {
            let got = try p.read(from: next, maxRecords: 4096, maxBytes: 4 << 20)
            if got.isEmpty { break }
            #expect(got.first!.offset == next)
            #expect(got.allSatisfy { $0.payload == batch[0] })
            count += got.count
            next = got.last!.offset + 1
        }
        #expect(count == 20_000)
    }

    @Test(arguments: [Durability.always, .interval(milliseconds: 5), .none])
    func everyDurabilityModeAppendsAndReopens(_ durability: Durability) async throws {
        let dir = ScratchDirectory()
        do {
            let log = try DurableLog.test(dir)
            let t = try log.createTopic(topic("modes"), config: TopicConfig(partitions: 3, durability: durability))
            for i in 0..<300 { _ = try await t.append(payload(i), key: "k\(i % 7)") }
            log.close()
        }
        let log = try DurableLog.test(dir)
        defer { log.close() }
        let t = try #require(log.topic(topic("modes")))
        #expect(t.config.durability == durability)
        #expect(t.partitions.count == 3)
        let all = try t.partitions.flatMap { try readAll($0) }
        #expect(all.count == 300)
        #expect(Set(all.map(\.payload)) == Set((0..<300).map { payload($0) }))
    }

    @Test func reopenContinuesOffsetsAndKeepsData() async throws {
        let dir = ScratchDirectory()
        do {
            let log = try DurableLog.test(dir)
            let p = try log.createTopic(topic("a/b/c")).partitions[0]
            for i in 0..<200 { _ = try await p.append(payload(i)) }
            log.close()
        }
        let log = try DurableLog.test(dir)
        defer { log.close() }
        let p = try #require(log.topic(topic("a/b/c"))).partitions[0]
        #expect(p.endOffset == 200)
        #expect(try await p.append(payload(200)) == 200)
        #expect(try readAll(p).map(\.payload) == (0...200).map { payload($0) })
    }

    @Test func keysPickStablePartitionsAndNoKeyRoundRobins() throws {
        let dir = ScratchDirectory()
        let log = try DurableLog.test(dir)
        defer { log.close() }
        let t = try log.createTopic(topic("keyed"), config: TopicConfig(partitions: 8))
        for key in ["alpha", "beta", "gamma", "device-42"] {
            #expect(t.partition(forKey: key) == Int(stableHash(key) % 8))
            #expect(t.partition(forKey: key) == t.partition(forKey: key))
        }
        // FNV-1a of "a" is fixed by the algorithm, so the mapping never changes between versions.
        #expect(stableHash("a") == 0xE40C_292C)
        let spread = Set((0..<16).map { _ in t.partition(forKey: nil) })
        #expect(spread.count == 8)
    }

    @Test func rejectsOversizedRecordsAndKeepsServing() async throws {
        let dir = ScratchDirectory()
        var options = smallOptions()
        options.maxRecordBytes = 1000
        let log = try DurableLog.test(dir, options)
        defer { log.close() }
        let p = try log.createTopic(topic("limits")).partitions[0]
        await #expect(throws: LogError.self) { try await p.append([UInt8](repeating: 1, count: 1001)) }
        #expect(try await p.append([UInt8](repeating: 1, count: 1000)) == 0)
    }

    @Test func secondProcessCannotOpenTheSameDirectory() throws {
        let dir = ScratchDirectory()
        let log = try DurableLog.test(dir)
        defer { log.close() }
        // flock is per open file description, so a second open in this process conflicts too.
        #expect(throws: LogError.self) { try DurableLog.test(dir) }
    }
}
