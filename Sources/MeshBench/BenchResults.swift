import Foundation

/// One run of the benchmark suite as `make bench` writes it (docs/bench/results.json): where and
/// with what it ran, and every figure with its peer's figure from the same run.
public struct BenchRun: Codable, Sendable, Equatable {
    public var takenAt: String?
    public var quick: Bool?
    public var figures: [BenchFigure]

    public init(takenAt: String? = nil, quick: Bool? = nil, figures: [BenchFigure]) {
        self.takenAt = takenAt
        self.quick = quick
        self.figures = figures
    }

    enum CodingKeys: String, CodingKey {
        case takenAt = "taken_at"
        case quick, figures
    }

    /// Reads a results file; the error names the file and what is wrong with it.
    public static func load(path: String) throws -> BenchRun {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw BenchResultsError(message: "\(path): cannot read the file (\(error.localizedDescription))")
        }
        return try decode(data, name: path)
    }

    public static func decode(_ data: Data, name: String) throws -> BenchRun {
        do {
            return try JSONDecoder().decode(BenchRun.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw BenchResultsError(message: "\(name): \(path(context.codingPath + [key])) is missing")
        } catch let DecodingError.typeMismatch(_, context) {
            throw BenchResultsError(message: "\(name): \(path(context.codingPath)) has the wrong type (\(context.debugDescription))")
        } catch let DecodingError.valueNotFound(_, context) {
            throw BenchResultsError(message: "\(name): \(path(context.codingPath)) is null")
        } catch let DecodingError.dataCorrupted(context) {
            throw BenchResultsError(message: "\(name): not a results file: \(context.debugDescription)")
        }
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { key in key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)" }.joined().trimmingCharacters(in: ["."])
    }
}

/// One measured figure. `peer` is the same scenario on the system it is compared with, measured in
/// the same run; `ratio` is value / peer value.
public struct BenchFigure: Codable, Sendable, Equatable {
    public struct Peer: Codable, Sendable, Equatable {
        public var name: String
        public var value: Double
        public init(name: String, value: Double) {
            self.name = name
            self.value = value
        }
    }

    public var id: String
    public var label: String
    public var unit: String
    public var value: Double
    /// "higher" (throughput) or "lower" (latency, memory, time).
    public var better: String
    public var peer: Peer?
    public var ratio: Double?

    public init(id: String, label: String, unit: String, value: Double, better: String = "higher", peer: Peer? = nil, ratio: Double? = nil) {
        self.id = id
        self.label = label
        self.unit = unit
        self.value = value
        self.better = better
        self.peer = peer
        self.ratio = ratio
    }

    enum CodingKeys: String, CodingKey {
        case id, label, unit, value, better, peer, ratio
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        label = try c.decodeIfPresent(String.self, forKey: .label) ?? id
        unit = try c.decodeIfPresent(String.self, forKey: .unit) ?? ""
        value = try c.decode(Double.self, forKey: .value)
        better = try c.decodeIfPresent(String.self, forKey: .better) ?? "higher"
        peer = try c.decodeIfPresent(Peer.self, forKey: .peer)
        ratio = try c.decodeIfPresent(Double.self, forKey: .ratio)
    }

    public var lowerIsBetter: Bool { better == "lower" }
}

public struct BenchResultsError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public var description: String { message }
    public init(message: String) { self.message = message }
}

/// Figure-by-figure comparison of two runs (`meshgate bench compare A.json B.json`).
public struct BenchComparison: Sendable, Equatable {
    public enum Verdict: String, Sendable {
        case better, worse, same
        case incomparable = "–"
    }

    public struct Row: Sendable, Equatable {
        public var id: String
        public var label: String
        public var unit: String
        public var a: Double
        public var b: Double
        /// b / a; nil when a is 0.
        public var change: Double?
        /// The figure's ratio to its peer in each run, when both runs have one.
        public var peerRatioA: Double?
        public var peerRatioB: Double?
        public var verdict: Verdict
    }

    public var rows: [Row]
    public var onlyInA: [String]
    public var onlyInB: [String]

    /// `tolerance` is the relative change below which a figure counts as the same (0.1 = ±10 %).
    public init(_ a: BenchRun, _ b: BenchRun, tolerance: Double = 0.1) {
        let inB = Dictionary(b.figures.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let idsA = Set(a.figures.map(\.id))
        var seen = Set<String>()
        rows = a.figures.compactMap { fa -> Row? in
            guard let fb = inB[fa.id], seen.insert(fa.id).inserted else { return nil }
            let change: Double? = fa.value == 0 ? nil : fb.value / fa.value
            let verdict: Verdict
            if let change {
                let gain = fa.lowerIsBetter ? (change == 0 ? Double.infinity : 1 / change) : change
                verdict = gain >= 1 + tolerance ? .better : gain <= 1 / (1 + tolerance) ? .worse : .same
            } else {
                verdict = .incomparable
            }
            return Row(id: fa.id, label: fa.label, unit: fa.unit, a: fa.value, b: fb.value, change: change,
                       peerRatioA: fa.ratio, peerRatioB: fb.ratio, verdict: verdict)
        }
        onlyInA = a.figures.map(\.id).filter { inB[$0] == nil }
        onlyInB = b.figures.map(\.id).filter { !idsA.contains($0) }
    }

    /// A plain-text table, one line per figure both runs have.
    public func render() -> String {
        var lines: [[String]] = [["figure", "A", "B", "B/A", "vs peer A", "vs peer B", ""]]
        for r in rows {
            lines.append([
                r.id, Self.number(r.a) + " " + r.unit, Self.number(r.b) + " " + r.unit,
                r.change.map { String(format: "%.2f", $0) } ?? "–",
                r.peerRatioA.map { String(format: "%.2f", $0) } ?? "",
                r.peerRatioB.map { String(format: "%.2f", $0) } ?? "",
                r.verdict.rawValue,
            ])
        }
        let widths = (0..<7).map { column in lines.map { $0[column].count }.max() ?? 0 }
        var out = lines.map { line in
            line.enumerated().map { column, cell in
                column == 0 ? cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[column] - cell.count) + cell
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        let better = rows.filter { $0.verdict == .better }.count
        let worse = rows.filter { $0.verdict == .worse }.count
        out.append("")
        out.append("\(rows.count) figures in both runs: \(better) better in B, \(worse) worse, \(rows.count - better - worse) within the tolerance")
        if !onlyInA.isEmpty { out.append("only in A: " + onlyInA.joined(separator: ", ")) }
        if !onlyInB.isEmpty { out.append("only in B: " + onlyInB.joined(separator: ", ")) }
        return out.joined(separator: "\n")
    }

    static func number(_ v: Double) -> String {
        if v == v.rounded(), abs(v) >= 1000 { return formatCount(Int(v)) }
        if abs(v) >= 100 { return formatCount(Int(v.rounded())) }
        return String(format: abs(v) >= 10 ? "%.1f" : "%.3g", v)
    }
}
