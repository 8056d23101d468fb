import ArgumentParser
import Foundation
import MeshBench

/// The peers' load generators for the benchmark suite (`make bench`): the harness of
/// `meshgate bench publish` — producers each keeping a window of publishes in flight, or an open
/// loop at a fixed rate, HDR latency — driving NATS JetStream through libnats and Redis streams
/// through hiredis. A separate binary so the gateway links neither client.
@main
struct MeshgateBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshgate-bench",
        abstract: "Load generators for the systems meshgate is benchmarked against.",
        subcommands: [NATSLoad.self, RedisLoad.self, TCPCeiling.self])
}

/// The options every load generator shares, spelled as in `meshgate bench publish`.
struct LoadOptions: ParsableArguments {
    @Option(help: "Producers, each on its own connection.") var producers = 1
    @Option(help: "Publishes kept in flight per producer.") var depth = 256
    @Option(help: "Event data size in bytes.") var size = 100
    @Option(help: "Seconds to run.") var duration = 5.0
    @Option(help: "Also write the figures as JSON to this file.") var json: String?

    func validate() throws {
        guard producers >= 1, depth >= 1, duration > 0, size >= 8 else {
            throw ValidationError("--producers, --depth and --duration must be positive and --size at least 8")
        }
    }

    /// A payload of `size` bytes whose first 8 carry the send time (uptime nanoseconds).
    func stamped(_ buffer: inout [UInt8]) -> UInt64 {
        let now = DispatchTime.now().uptimeNanoseconds
        withUnsafeBytes(of: now.littleEndian) { for i in 0..<8 { buffer[i] = $0[i] } }
        return now
    }

    func finish(_ stats: LoadStats, mode: String) throws {
        stats.report(mode: mode, size: size)
        if let json { try stats.summary(size: size).write(to: json) }
    }
}

func stampOf(_ pointer: UnsafeRawPointer?, length: Int) -> UInt64? {
    guard let pointer, length >= 8 else { return nil }
    return UInt64(littleEndian: pointer.loadUnaligned(as: UInt64.self))
}

/// Runs `body(i)` on `count` threads and waits for all of them.
func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    var threads: [Thread] = []
    for i in 0..<count {
        group.enter()
        let thread = Thread {
            body(i)
            group.leave()
        }
        thread.stackSize = 1 << 20
        threads.append(thread)
        thread.start()
    }
    group.wait()
}

struct LoadFailure: Error, CustomStringConvertible {
    let description: String
}
