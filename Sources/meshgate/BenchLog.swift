import ArgumentParser
import Foundation
import Logging
import MeshCore
import MeshLog

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Load generators and benchmarks.", subcommands: [BenchLog.self, BenchRoutes.self, BenchPublish.self, BenchMQTT.self, BenchWebhook.self, BenchCompare.self])
}

/// `meshgate bench log`: appends/s and MB/s of the built-in log under each durability mode, read
/// throughput, recovery time, and the machine's sequential-write ceiling measured in the same run.
struct BenchLog: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "log", abstract: "Benchmark the built-in log against the disk's own ceiling.")

    @Option(help: "Scratch directory (deleted afterwards).") var dir = "./.bench-log"
    @Option(help: "Seconds per scenario.") var seconds = 3.0
    @Option(help: "Record sizes to test.") var sizes: [Int] = [100, 1024]
    @Option(name: .customLong("recovery-mib"), help: "Size of the log for the recovery scenario, in MiB (0 to skip).") var recoveryMiB = 1024
    @Flag(help: "One short pass of the main scenarios only.") var quick = false
    @Option(help: "Also write the results as JSON to this file.") var json: String?

    func run() throws {
        let seconds = quick ? 1.0 : self.seconds
        FileIO_removeTree(dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { FileIO_removeTree(dir) }
        print("meshgate bench log — \(ProcessInfo.processInfo.activeProcessorCount) cores, \(seconds)s per scenario, data in \(dir)\n")

        var rows: [BenchRow] = []
        var ceilings: [Int: Double] = [:]
        let modes: [(String, Durability)] = [("none", .none), ("interval", .interval(milliseconds: 100)), ("always", .always)]
        let shapes: [(producers: Int, inflight: Int, batch: Int)] = quick
            ? [(1, 8, 256), (64, 64, 1)]
            : [(1, 1, 1), (1, 8, 256), (64, 64, 1)]
        for size in sizes {
            for (name, durability) in modes {
                for shape in shapes {
                    let row = try appendScenario(size: size, mode: name, durability: durability, producers: shape.producers,
                                                 inflight: shape.inflight, batch: shape.batch, seconds: seconds)
                    rows.append(row)
                }
            }
            // The ceiling writes as many bytes as the largest run of this size wrote.
            let largest = rows.filter { $0.size == size }.map(\.bytes).max() ?? (256 << 20)
            ceilings[size] = max(try rawCeiling(bytes: max(largest, 64 << 20)), try rawCeiling(bytes: max(largest, 64 << 20)))
        }
        let read = try readScenario(size: 1024, seconds: seconds)

        print("\r\u{1B}[K")
        print("| scenario | size | producers × in flight × batch | records/s | MB/s | vs raw write |")
        print("|---|---|---|---|---|---|")
        for row in rows {
            let ratio = row.mbPerSecond / (ceilings[row.size] ?? .infinity)
            print("| append fsync=\(row.mode) | \(row.size) B | \(row.producers) × \(row.inflight) × \(row.batch) | \(fmt(row.recordsPerSecond)) | \(fmt1(row.mbPerSecond)) | \(String(format: "%.2f", ratio)) |")
        }
        for (size, mbps) in ceilings.sorted(by: { $0.key < $1.key }) {
            print("| raw sequential write + fdatasync (ceiling) | \(size) B run | 1 | – | \(fmt1(mbps)) | 1.00 |")
        }
        print("| read (sequential, verified) | 1024 B | 1 reader | \(fmt(read.recordsPerSecond)) | \(fmt1(read.mbPerSecond)) | – |")

        var recovery: Double?
        if !quick && recoveryMiB > 0 {
            recovery = try recoveryScenario(mib: recoveryMiB)
            print("\nrecovery of a \(recoveryMiB) MiB log after kill -9: \(String(format: "%.3f", recovery!)) s")
        }
        print("RSS at end: \(residentMiB()) MiB")

        if let json {
            var out: [String: Any] = ["cores": ProcessInfo.processInfo.activeProcessorCount, "seconds": seconds]
            out["append"] = rows.map { ["mode": $0.mode, "size": $0.size, "producers": $0.producers, "inflight": $0.inflight,
                                        "batch": $0.batch, "records_per_s": $0.recordsPerSecond, "mb_per_s": $0.mbPerSecond,
                                        "ratio_to_raw": $0.mbPerSecond / (ceilings[$0.size] ?? .infinity)] }
            out["raw_write_mb_per_s"] = Dictionary(uniqueKeysWithValues: ceilings.map { ("\($0.key)", $0.value) })
            out["read"] = ["records_per_s": read.recordsPerSecond, "mb_per_s": read.mbPerSecond]
            if let recovery { out["recovery_s"] = recovery; out["recovery_mib"] = recoveryMiB }
            out["rss_mib"] = residentMiB()
            let data = try JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: json))
        }
    }

    private func appendScenario(size: Int, mode: String, durability: Durability, producers: Int, inflight: Int,
                                batch: Int, seconds: Double) throws -> BenchRow {
        let path = "\(dir)/append-\(mode)-\(size)-\(producers)-\(batch)"
        let log = try DurableLog(directory: path, logger: benchLogger)
        defer { log.close(); FileIO_removeTree(path) }
        let topic = try log.createTopic(Topic("bench/append"), config: TopicConfig(partitions: 1, durability: durability))
        let partition = topic.partitions[0]
        let payload = [UInt8](repeating: 0x61, count: size)
        let batchPayloads = Array(repeating: payload, count: batch)
        let counter = BenchCounter()
        let deadline = Date().addingTimeInterval(seconds)
        let label = "append fsync=\(mode) \(size) B \(producers)×\(inflight)×\(batch)"

        @Sendable func issue() {
            if counter.stopped { counter.finishOne(); return }
            let done: @Sendable (Result<Int64, LogError>) -> Void = { result in
                if case .failure(let e) = result { counter.fail(e) }
                counter.add(batch)
                issue()
            }
            if batch == 1 { partition.append(payload, completion: done) } else { partition.append(batch: batchPayloads, completion: done) }
        }
        let started = Date()
        counter.expect(producers * inflight)
        for _ in 0..<(producers * inflight) { issue() }
        while Date() < deadline {
            Thread.sleep(forTimeInterval: 0.25)
            progress(label, counter.count, Date().timeIntervalSince(started), size)
        }
        counter.stop()
        counter.waitAll()
        let elapsed = Date().timeIntervalSince(started)
        if let e = counter.error { throw e }
        let records = Double(counter.count)
        return BenchRow(mode: mode, size: size, producers: producers, inflight: inflight, batch: batch,
                        recordsPerSecond: records / elapsed, mbPerSecond: records * Double(size) / elapsed / 1e6,
                        bytes: Int(records) * size)
    }

    private func readScenario(size: Int, seconds: Double) throws -> (recordsPerSecond: Double, mbPerSecond: Double) {
        let path = "\(dir)/read"
        let log = try DurableLog(directory: path, logger: benchLogger)
        defer { log.close(); FileIO_removeTree(path) }
        let partition = try log.createTopic(Topic("bench/read"), config: TopicConfig(durability: .none)).partitions[0]
        let batch = Array(repeating: [UInt8](repeating: 0x62, count: size), count: 1000)
        let sem = DispatchSemaphore(value: 0)
        for _ in 0..<500 { partition.append(batch: batch) { _ in sem.signal() } }
        for _ in 0..<500 { sem.wait() }
        let started = Date()
        var offset: Int64 = 0, records = 0
        while Date().timeIntervalSince(started) < seconds {
            let got = try partition.read(from: offset, maxRecords: 4096, maxBytes: 4 << 20)
            if got.isEmpty { offset = 0; continue }
            records += got.count
            offset = got.last!.offset + 1
        }
        let elapsed = Date().timeIntervalSince(started)
        return (Double(records) / elapsed, Double(records * size) / elapsed / 1e6)
    }

    /// The disk's own ceiling: `bytes` written sequentially in 1 MiB writes, ending in fdatasync
    /// (the better of two runs is reported, as the page cache's writeback makes single runs noisy).
    private func rawCeiling(bytes: Int) throws -> Double {
        let path = "\(dir)/raw-ceiling"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw ValidationError("cannot create \(path)") }
        defer { close(fd); unlink(path) }
        let chunk = [UInt8](repeating: 0x63, count: 1 << 20)
        let started = Date()
        var written = 0
        while written < bytes {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw ValidationError("write failed: \(String(cString: strerror(errno)))") }
            written += n
        }
        fdatasync(fd)
        return Double(written) / Date().timeIntervalSince(started) / 1e6
    }

    /// Writes a log of `mib` MiB in a child process, kills it with SIGKILL, and times reopening.
    private func recoveryScenario(mib: Int) throws -> Double {
        let path = "\(dir)/recovery"
        defer { FileIO_removeTree(path) }
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        child.arguments = ["append-load", "--data", path, "--fsync", "none", "--producers", "4", "--inflight", "64",
                           "--partitions", "4", "--max-payload", "2000", "--segment-bytes", "\(64 << 20)", "--bytes", "\(Int64(mib) << 20)", "--hold"]
        let out = Pipe()
        child.standardOutput = out
        try child.run()
        // Wait until the child has written everything, then kill it before it can close cleanly.
        let handle = out.fileHandleForReading
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains("written") {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            seen.append(chunk)
        }
        guard String(decoding: seen, as: UTF8.self).contains("written") else {
            throw ValidationError("the writer for the recovery scenario failed")
        }
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        let started = Date()
        let log = try DurableLog(directory: path, logger: benchLogger)
        let elapsed = Date().timeIntervalSince(started)
        let records = log.topics.flatMap(\.partitions).reduce(Int64(0)) { $0 + $1.endOffset }
        log.close()
        guard records > 0 else { throw ValidationError("the recovered log is empty") }
        return elapsed
    }

    private func progress(_ label: String, _ count: Int, _ elapsed: Double, _ size: Int) {
        let rate = Double(count) / max(elapsed, 0.001)
        FileHandle.standardError.write("\r\u{1B}[K\(label): \(fmt(rate)) records/s, \(fmt1(rate * Double(size) / 1e6)) MB/s".data(using: .utf8)!)
    }
}

let benchLogger: Logger = {
    var l = Logger(label: "meshgate.bench")
    l.logLevel = .warning
    return l
}()

struct BenchRow {
    let mode: String
    let size: Int
    let producers: Int
    let inflight: Int
    let batch: Int
    let recordsPerSecond: Double
    let mbPerSecond: Double
    let bytes: Int
}

/// Counts completed appends across threads and lets the benchmark wait for in-flight ones.
final class BenchCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var _count = 0
    private var _stopped = false
    private var live = 0
    private(set) var error: LogError?
    private let drained = DispatchSemaphore(value: 0)

    func expect(_ n: Int) { lock.lock(); live = n; lock.unlock() }
    func add(_ n: Int) { lock.lock(); _count += n; lock.unlock() }
    func fail(_ e: LogError) { lock.lock(); error = e; _stopped = true; lock.unlock() }
    var count: Int { lock.lock(); defer { lock.unlock() }; return _count }
    var stopped: Bool { lock.lock(); defer { lock.unlock() }; return _stopped }
    func stop() { lock.lock(); _stopped = true; lock.unlock() }
    func finishOne() {
        lock.lock()
        live -= 1
        let last = live == 0
        lock.unlock()
        if last { drained.signal() }
    }
    func waitAll() { drained.wait() }
}

func fmt(_ x: Double) -> String {
    let n = Int(x.rounded())
    var s = String(n), out = ""
    while s.count > 3 { out = "," + s.suffix(3) + out; s = String(s.dropLast(3)) }
    return s + out
}

func fmt1(_ x: Double) -> String { String(format: "%.1f", x) }

func FileIO_removeTree(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

func residentMiB() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let kb = Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        return kb / 1024
    }
    return 0
}
