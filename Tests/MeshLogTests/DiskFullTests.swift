import Foundation
import MeshTestSupport
import Testing
@testable import MeshLog

/// Fills a small tmpfs mounted for the test: appends fail with a typed no-space error, nothing
/// acknowledged is damaged, and appends succeed again once space returns.
@Suite(.serialized) struct DiskFullTests {
    @Test func aFullDiskFailsAppendsWithoutDamagingAcknowledgedRecords() async throws {
        let dir = ScratchDirectory()
        let mounted = try await ChildProcess.run("/bin/mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", dir.path])
        try #require(mounted.status == 0, "mounting a tmpfs needs root (the test suite runs as root): \(mounted.output)")
        defer { _ = umount2(dir.path, Int32(MNT_DETACH)) }
        // A filler file we can delete later to give the space back.
        let filler = dir.path + "/filler"
        try #require(FileManager.default.createFile(atPath: filler, contents: Data(count: 256 << 10)), "cannot create \(filler)")

        let log = try DurableLog(directory: dir.path + "/data", options: smallOptions(segmentBytes: 256 << 10), logger: quietLogger)
        defer { log.close() }
        let p = try log.createTopic(topic("full")).partitions[0]
        var acknowledged: [Int64: [UInt8]] = [:]
        var failure: LogError?
        for i in 0..<10_000 {
            do {
                let record = payload(i, size: 1000)
                acknowledged[try await p.append(record)] = record
            } catch {
                failure = error
                break
            }
        }
        let error = try #require(failure)
        #expect(error.code == .noSpace)
        #expect(error.isStorageFailure)
        // Everything acknowledged reads back intact while the disk is full.
        let all = try readAll(p)
        #expect(all.count == acknowledged.count)
        for r in all { #expect(acknowledged[r.offset] == r.payload) }
        // Still full: another append fails the same way and changes nothing.
        await #expect(throws: LogError.self) { try await p.append(payload(0, size: 1000)) }
        #expect(p.endOffset == Int64(acknowledged.count))

        try FileManager.default.removeItem(atPath: filler)
        let next = try await p.append(payload(99_999, size: 1000))
        #expect(next == Int64(acknowledged.count))
        #expect(try p.read(from: next).first?.payload == payload(99_999, size: 1000))
    }
}
