import Foundation
import MeshTestSupport
import Testing
@testable import MeshLog

/// Kills a real writer process with SIGKILL at random moments and checks, after each crash, that
/// every acknowledged record is present and intact and that nothing corrupt is served.
@Suite(.serialized) struct CrashTests {
    struct Ack: Hashable {
        let topic: String
        let partition: Int
        let offset: Int64
        let run: String
        let producer: Int
        let seq: Int
        let crc: UInt32
        let length: Int
    }

    /// Runs the writer until `killAfter` has passed since its first acknowledgement, then SIGKILLs it.
    func crashRun(dir: String, topic: String, fsync: String, killAfter: Double) async throws -> [Ack] {
        try #require(FileManager.default.isExecutableFile(atPath: meshgateBinary), "the meshgate binary is not built at \(meshgateBinary)")
        let child = try ChildProcess(meshgateBinary, [
            "append-load", "--data", dir, "--topic", topic, "--partitions", "2", "--fsync", fsync,
            "--producers", "4", "--inflight", "8", "--max-payload", "700", "--segment-bytes", "65536", "--acks",
        ])
        await child.waitForOutput(containing: "ack ")
        try await Task.sleep(for: .seconds(killAfter))
        child.signal(SIGKILL)
        let text = try await child.wait()
        #expect(child.wasSignaled)
        // Only whole lines count: the last one may have been cut by the kill.
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        return lines.compactMap { line in
            let f = line.split(separator: " ")
            guard f.count == 8, f[0] == "ack" else { return nil }
            return Ack(topic: topic, partition: Int(f[1])!, offset: Int64(f[2])!, run: String(f[3]), producer: Int(f[4])!,
                       seq: Int(f[5])!, crc: UInt32(f[6])!, length: Int(f[7])!)
        }
    }

    @Test func acknowledgedRecordsSurviveRepeatedKills() async throws {
        let dir = ScratchDirectory()
        var acked: [Ack] = []
        var generator = SystemRandomNumberGenerator()
        for cycle in 0..<24 {
            // Alternate a group-committed topic with a write-only one: a process kill loses neither.
            let (name, mode) = cycle % 2 == 0 ? ("crash/always", "always") : ("crash/none", "none")
            let acks = try await crashRun(dir: dir.path, topic: name, fsync: mode,
                                    killAfter: Double.random(in: 0.0...0.25, using: &generator))
            #expect(!acks.isEmpty, "cycle \(cycle) acknowledged nothing")
            acked += acks

            let log = try DurableLog.test(dir)
            defer { log.close() }
            var stored: [String: [Int: [Int64: LogRecord]]] = [:]
            for t in log.topics {
                for p in t.partitions {
                    // Reading everything must succeed: no corrupt record is ever served.
                    let records = try readAll(p, chunk: 1000)
                    #expect(records.map(\.offset) == Array(p.startOffset..<p.endOffset))
                    stored[t.topic.name, default: [:]][p.index] = Dictionary(uniqueKeysWithValues: records.map { ($0.offset, $0) })
                    // Per producer, sequence numbers rise with offsets (per-key order).
                    var lastSeq: [String: Int] = [:]
                    var outOfOrder = 0
                    for r in records {
                        // Split bytes, not characters: filler bytes may form combining marks.
                        let header = r.payload.prefix(40).split(separator: UInt8(ascii: ":")).map { String(decoding: $0, as: UTF8.self) }
                        let key = "\(header[0]):\(header[1])"
                        guard header.count >= 3, let seq = Int(header[2].dropFirst()) else {
                            Issue.record("record \(r.offset) of \(p.name) does not carry a writer header: \(r.payload.prefix(40))")
                            continue
                        }
                        if seq <= lastSeq[key, default: -1] { outOfOrder += 1 }
                        lastSeq[key] = seq
                    }
                    #expect(outOfOrder == 0, "\(p.name): \(outOfOrder) records out of producer order")
                }
            }
            var missing = 0, damaged = 0
            for ack in acked {
                guard let record = stored[ack.topic]?[ack.partition]?[ack.offset] else {
                    missing += 1
                    continue
                }
                if record.payload.count != ack.length || record.payload.withUnsafeBytes({ crc32c($0) }) != ack.crc
                    || !record.payload.starts(with: Array("r\(ack.run):p\(ack.producer):s\(ack.seq):".utf8)) {
                    damaged += 1
                }
            }
            #expect(missing == 0, "cycle \(cycle): \(missing) acknowledged records are missing")
            #expect(damaged == 0, "cycle \(cycle): \(damaged) acknowledged records differ from what was acknowledged")
        }
        #expect(acked.count > 24)
        print("crash test: \(acked.count) acknowledged records checked over 24 kills")
    }
}
