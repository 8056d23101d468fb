import ArgumentParser
import Foundation
import MeshBench

/// `meshgate bench compare A.json B.json`: figure by figure, how run B differs from run A (two
/// results files of `make bench`), and how each figure's ratio to its peer moved.
struct BenchCompare: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare two benchmark results files (docs/bench/results.json) figure by figure.",
        discussion: """
            B/A is B's figure divided by A's. A figure is better or worse when it moved by more than \
            the tolerance in its good direction (throughput up; latency, memory and time down). The \
            "vs peer" columns are each run's ratio to the peer measured in that same run — steadier \
            than raw figures on a noisy machine.
            """)

    @Argument(help: "The earlier run.") var a: String
    @Argument(help: "The later run.") var b: String
    @Option(help: "Relative change counted as noise, e.g. 0.1 for ±10 %.") var tolerance = 0.1

    func run() throws {
        guard tolerance >= 0 else { throw ValidationError("--tolerance must be 0 or more") }
        let runA: BenchRun, runB: BenchRun
        do {
            runA = try BenchRun.load(path: a)
            runB = try BenchRun.load(path: b)
        } catch let error as BenchResultsError {
            throw UsageFailure(message: error.message)
        }
        let comparison = BenchComparison(runA, runB, tolerance: tolerance)
        print("A: \(a)\(runA.takenAt.map { " (\($0))" } ?? "")")
        print("B: \(b)\(runB.takenAt.map { " (\($0))" } ?? "")")
        print("")
        print(comparison.render())
    }
}
