import Foundation
import MeshBench
import Testing

@Suite struct BenchResultsTests {
    static let runA = """
        {"taken_at": "2026-11-21T22:00:00Z", "quick": false, "machine": {"cores": 2},
         "figures": [
          {"id": "publish.none.p16.s100", "label": "durable publish", "unit": "events/s", "value": 200000,
           "better": "higher", "peer": {"name": "JetStream", "value": 100000}, "ratio": 2.0, "target": {"text": "≥ 1.5×"}},
          {"id": "latency.p99.20000", "label": "p99", "unit": "µs", "value": 400, "better": "lower"},
          {"id": "rss.idle", "label": "RSS idle", "unit": "MB", "value": 20, "better": "lower"},
          {"id": "gone", "label": "only in A", "unit": "", "value": 1}
         ]}
        """
    static let runB = """
        {"figures": [
          {"id": "publish.none.p16.s100", "label": "durable publish", "unit": "events/s", "value": 300000,
           "peer": {"name": "JetStream", "value": 100000}, "ratio": 3.0},
          {"id": "latency.p99.20000", "label": "p99", "unit": "µs", "value": 600, "better": "lower"},
          {"id": "rss.idle", "label": "RSS idle", "unit": "MB", "value": 21, "better": "lower"},
          {"id": "new", "value": 5}
         ]}
        """

    @Test func decodesARunIgnoringFieldsItDoesNotCompare() throws {
        let run = try BenchRun.decode(Data(Self.runA.utf8), name: "a.json")
        #expect(run.takenAt == "2026-11-21T22:00:00Z")
        #expect(run.figures.count == 4)
        #expect(run.figures[0].peer == BenchFigure.Peer(name: "JetStream", value: 100000))
        #expect(run.figures[0].ratio == 2.0)
        #expect(run.figures[3].better == "higher")  // the default
    }

    @Test func comparesFigureByFigureInEachFiguresGoodDirection() throws {
        let a = try BenchRun.decode(Data(Self.runA.utf8), name: "a.json")
        let b = try BenchRun.decode(Data(Self.runB.utf8), name: "b.json")
        let comparison = BenchComparison(a, b, tolerance: 0.1)
        #expect(comparison.rows.map(\.id) == ["publish.none.p16.s100", "latency.p99.20000", "rss.idle"])
        let publish = comparison.rows[0]
        #expect(publish.change == 1.5)
        #expect(publish.verdict == .better)
        #expect(publish.peerRatioA == 2.0 && publish.peerRatioB == 3.0)
        #expect(comparison.rows[1].change == 1.5)
        #expect(comparison.rows[1].verdict == .worse)  // latency went up
        #expect(comparison.rows[2].verdict == .same)  // 5 % is within ±10 %
        #expect(comparison.onlyInA == ["gone"])
        #expect(comparison.onlyInB == ["new"])
    }

    @Test func aZeroBaselineHasNoRatio() {
        let a = BenchRun(figures: [BenchFigure(id: "x", label: "x", unit: "", value: 0)])
        let b = BenchRun(figures: [BenchFigure(id: "x", label: "x", unit: "", value: 3)])
        let row = BenchComparison(a, b).rows[0]
        #expect(row.change == nil)
        #expect(row.verdict == .incomparable)
    }

    @Test func rendersOneLinePerFigureAndASummary() throws {
        let a = try BenchRun.decode(Data(Self.runA.utf8), name: "a.json")
        let b = try BenchRun.decode(Data(Self.runB.utf8), name: "b.json")
        let text = BenchComparison(a, b).render()
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines[0].hasPrefix("figure"))
        #expect(lines.contains { $0.hasPrefix("publish.none.p16.s100") && $0.contains("200,000 events/s") && $0.contains("1.50") && $0.contains("3.00") && $0.hasSuffix("better") })
        #expect(lines.contains { $0.hasPrefix("latency.p99.20000") && $0.hasSuffix("worse") })
        #expect(text.contains("3 figures in both runs: 1 better in B, 1 worse, 1 within the tolerance"))
        #expect(text.contains("only in A: gone"))
        #expect(text.contains("only in B: new"))
    }

    @Test func namesWhatIsWrongWithABadFile() {
        #expect(throws: BenchResultsError(message: "b.json: figures[0].value is missing")) {
            try BenchRun.decode(Data(#"{"figures": [{"id": "x"}]}"#.utf8), name: "b.json")
        }
        #expect(throws: BenchResultsError(message: "b.json: figures is missing")) {
            try BenchRun.decode(Data(#"{"taken_at": "now"}"#.utf8), name: "b.json")
        }
        #expect(throws: BenchResultsError.self) {
            try BenchRun.decode(Data("not json".utf8), name: "b.json")
        }
        #expect(throws: BenchResultsError.self) {
            try BenchRun.load(path: "/nonexistent/results.json")
        }
    }

    @Test func summaryIsWrittenAsJSONWithStableKeys() throws {
        let summary = LoadSummary(ok: 10, failed: 0, seconds: 2, perSecond: 5, megabytesPerSecond: 0.0005, samples: 10,
                                  p50Micros: 1, p90Micros: 2, p99Micros: 3, p999Micros: 4, maxMicros: 5)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("summary-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try summary.write(to: path)
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Double]
        #expect(object?["per_second"] == 5)
        #expect(object?["p99_us"] == 3)
        #expect(try JSONDecoder().decode(LoadSummary.self, from: Data(contentsOf: URL(fileURLWithPath: path))) == summary)
    }
}
