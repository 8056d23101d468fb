import Foundation
import MeshTestSupport
import Testing

/// scripts/bench-doc.py turns a results file into docs/benchmarks.md and the plots: every target's
/// status is computed from the figures, never typed.
@Suite struct BenchDocTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func summary(_ perSecond: Double, p99: Double = 1000) -> String {
        #"{"ok": 1, "failed": 0, "seconds": 1, "per_second": \#(perSecond), "mb_per_second": 1, "samples": 1, "p50_us": 100, "p90_us": 200, "p99_us": \#(p99), "p999_us": 2000, "max_us": 3000}"#
    }

    static var results: String {
        let systems: [(String, Double)] = [("meshgate-none", 150_000), ("jetstream", 100_000), ("redis-always", 300_000)]
        let publish = systems.map { name, rate in
            #""\#(name)": {"100/1": \#(summary(rate)), "1024/16": \#(summary(rate / 2))}"#
        }.joined(separator: ", ")
        return #"""
            {"schema": 1, "taken_at": "2026-11-21T23:00:00Z", "quick": false, "seconds_per_run": 5, "suite_seconds": 400,
             "failures": {"webhook": "meshgate bench webhook failed (1)"},
             "machine": {"cores": 2, "cpu": "Test CPU", "memory_gib": 24, "kernel": "6.1", "os": "Debian", "filesystem": "ext4",
                         "load_average_start": [4.0], "load_average_end": [5.0]},
             "versions": {"meshgate": "0.1.0", "nats-server": "v2.9.10"},
             "figures": [
              {"id": "a", "group": "durable publish", "label": "none vs JetStream", "unit": "events/s", "value": 150000,
               "better": "higher", "peer": {"name": "JetStream", "value": 100000}, "ratio": 1.5,
               "target": {"kind": "ratio_min", "bound": 1.5}, "met": true},
              {"id": "b", "group": "durable publish", "label": "always vs Redis always", "unit": "events/s", "value": 150000,
               "better": "higher", "peer": {"name": "Redis always", "value": 300000}, "ratio": 0.5,
               "target": {"kind": "ratio_min", "bound": 1.0}, "met": false},
              {"id": "c", "group": "memory", "label": "RSS idle", "unit": "MiB", "value": 36, "better": "lower",
               "target": {"kind": "value_max", "bound": 30}, "met": false}
             ],
             "raw": {"publish": {\#(publish)}, "publish_depth": 256}}
            """#
    }

    @Test func writesTheTargetsWithTheirStatusAndThePlot() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bench-doc-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("results.json")
        try Data(Self.results.utf8).write(to: input)
        let doc = dir.appendingPathComponent("benchmarks.md")
        let plots = dir.appendingPathComponent("bench")
        let script = Self.repository.appendingPathComponent("scripts/bench-doc.py").path
        let (status, output) = try await ChildProcess.run("/usr/bin/python3", [script, input.path, doc.path, plots.path])
        #expect(status == 0, "\(output)")
        let text = try String(contentsOf: doc, encoding: .utf8)
        #expect(text.contains("1 of 3 targets met in this run."))
        #expect(text.contains("| none vs JetStream: ≥ 1.5× JetStream | 150,000 events/s | 100,000 events/s | 1.50 | met |"))
        #expect(text.contains("**missed**: 0.50 is 50 % short of 1"))
        #expect(text.contains("**missed**: 20 % over"))
        #expect(text.contains("The machine was **shared**"))
        #expect(text.contains("`webhook`: meshgate bench webhook failed (1)"))
        // The throughput table has one row per size × producers, each system's figure in it.
        #expect(text.contains("| size × producers | meshgate fsync none | JetStream (file) | Redis always |"))
        #expect(text.contains("| 100 B × 1 | 150,000 | 100,000 | 300,000 |"))
        #expect(text.contains("| 1024 B × 16 | 75,000 | 50,000 | 150,000 |"))
        #expect(FileManager.default.fileExists(atPath: plots.appendingPathComponent("publish-throughput-vs-size.svg").path))
        #expect(text.contains("![Durable publish throughput against event size](bench/publish-throughput-vs-size.svg)"))
    }
}
