import Dispatch
import Foundation
import Histogram
import Synchronization

/// Counters and the latency histogram of one load run, shared by every connection's thread or event
/// loop. Every load generator of the benchmark suite — meshgate's own client, the NATS and Redis C
/// clients — records into this one type, so their figures are taken the same way.
public final class LoadStats: Sendable {
    private struct State {
        var part = LoadShard.Part()
        var finishedAt: UInt64?
    }

    private let state = Mutex(State())
    private let shards = Mutex<[LoadShard]>([])
    /// Non-zero once finished: read on every recording without taking the lock.
    private let finishedFlag = Atomic<Bool>(false)
    private let outstanding = Atomic<Int>(0)
    public let seconds: Double
    public let startedAt = DispatchTime.now().uptimeNanoseconds

    public init(seconds: Double) { self.seconds = seconds }

    /// A recorder for one thread (or one connection's callbacks): it has its own histogram and
    /// counters, so threads do not contend on one lock; the summary merges them.
    public func shard() -> LoadShard {
        let shard = LoadShard(owner: self)
        shards.withLock { $0.append(shard) }
        return shard
    }

    public var isFinished: Bool { finishedFlag.load(ordering: .relaxed) }
    public var latencyCount: Int { merged().part.latencies }
    public var failed: Int { merged().part.failed }
    public var inFlight: Int { outstanding.load(ordering: .relaxed) }

    /// One operation sent and not yet answered (what `drain` waits for).
    public func sent() { outstanding.add(1, ordering: .relaxed) }

    /// One operation answered (for load generators recording through a shard).
    public func answered() { outstanding.subtract(1, ordering: .relaxed) }

    /// A publish answered; latency from `since` (nanoseconds, uptime clock) to now.
    public func record(_ ok: Bool, since: UInt64) {
        let now = DispatchTime.now().uptimeNanoseconds
        outstanding.subtract(1, ordering: .relaxed)
        state.withLock { s in
            guard s.finishedAt == nil else { return }
            s.part.record(ok, latency: now &- since)
        }
    }

    /// Publish answered in latency mode (the latency is measured at the subscriber).
    public func acknowledged(_ ok: Bool) {
        state.withLock { $0.part.acknowledged(ok) }
    }

    public func recordLatency(_ nanoseconds: UInt64) {
        state.withLock { $0.part.recordLatency(nanoseconds) }
    }

    public func finish() {
        state.withLock { s in if s.finishedAt == nil { s.finishedAt = DispatchTime.now().uptimeNanoseconds } }
        finishedFlag.store(true, ordering: .relaxed)
    }

    /// The main state with every shard merged in.
    private func merged() -> State {
        var s = state.withLock { $0 }
        for shard in shards.withLock({ $0 }) { s.part.add(shard.snapshot()) }
        return s
    }

    /// Waits for what is still in flight to be answered (not counted).
    public func drain(timeout: Double) async {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeout * 1e9)
        while inFlight > 0, DispatchTime.now().uptimeNanoseconds < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// The same, for load generators that run on their own threads.
    public func drainBlocking(timeout: Double) {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeout * 1e9)
        while inFlight > 0, DispatchTime.now().uptimeNanoseconds < deadline {
            usleep(5_000)
        }
    }

    public func startProgress() -> Task<Void, Never> {
        Task {
            var last = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let s = merged()
                let (ok, failed, p99) = (s.part.ok, s.part.failed, s.part.histogram.valueAtPercentile(99))
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - startedAt) / 1e9
                FileHandle.standardError.write(Data(String(
                    format: "\r\u{1B}[K%5.1fs  %@ ok  %@/s now  %d failed  p99 %@", elapsed, formatCount(ok), formatCount(ok - last), failed,
                    formatNanos(p99)).utf8))
                last = ok
            }
        }
    }

    /// The run's figures: rate over the time to `finish()`, latency percentiles in microseconds.
    public func summary(size: Int) -> LoadSummary {
        let s = merged()
        let elapsed = Double((s.finishedAt ?? DispatchTime.now().uptimeNanoseconds) - startedAt) / 1e9
        let (h, ok) = (s.part.histogram, s.part.ok)
        func us(_ p: Double) -> Double { Double(h.valueAtPercentile(p)) / 1e3 }
        return LoadSummary(
            ok: ok, failed: s.part.failed, seconds: elapsed, perSecond: Double(ok) / elapsed,
            megabytesPerSecond: Double(ok * size) / elapsed / 1e6, samples: Int(h.totalCount),
            p50Micros: us(50), p90Micros: us(90), p99Micros: us(99), p999Micros: us(99.9), maxMicros: Double(h.max) / 1e3)
    }

    public func report(mode: String, size: Int) {
        let s = summary(size: size)
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        print("events acknowledged: \(s.ok) in \(String(format: "%.2f", s.seconds)) s = \(formatCount(Int(s.perSecond)))/s"
            + " (\(String(format: "%.1f", s.megabytesPerSecond)) MB/s of data), failed: \(s.failed)")
        func ns(_ us: Double) -> String { formatNanos(UInt64(us * 1e3)) }
        print("\(mode) (\(s.samples) samples): p50 \(ns(s.p50Micros))  p90 \(ns(s.p90Micros))"
            + "  p99 \(ns(s.p99Micros))  p99.9 \(ns(s.p999Micros))  max \(ns(s.maxMicros))")
    }
}

/// One thread's recorder of a `LoadStats` (see `LoadStats.shard()`).
public final class LoadShard: Sendable {
    /// Counters and histogram of one recorder; `LoadStats` keeps one of its own besides its shards'.
    struct Part {
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        var ok = 0
        var failed = 0
        var latencies = 0

        /// An operation answered, with its latency counted when it succeeded.
        mutating func record(_ ok: Bool, latency: UInt64) {
            if ok {
                self.ok += 1
                _ = histogram.record(latency)
            } else {
                failed += 1
            }
        }

        mutating func acknowledged(_ ok: Bool) {
            if ok { self.ok += 1 } else { failed += 1 }
        }

        mutating func recordLatency(_ nanoseconds: UInt64) {
            latencies += 1
            _ = histogram.record(nanoseconds)
        }

        mutating func add(_ other: Part) {
            ok += other.ok
            failed += other.failed
            latencies += other.latencies
            histogram.add(other.histogram)
        }
    }

    private let part = Mutex(Part())
    private let owner: LoadStats

    init(owner: LoadStats) { self.owner = owner }

    /// An operation answered; latency from `since` (uptime nanoseconds) to now. Not counted once finished.
    public func record(_ ok: Bool, since: UInt64) {
        guard !owner.isFinished else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        part.withLock { $0.record(ok, latency: now &- since) }
    }

    /// An acknowledgement in latency mode (the latency is measured at the subscriber).
    public func acknowledged(_ ok: Bool) {
        part.withLock { $0.acknowledged(ok) }
    }

    public func recordLatency(_ nanoseconds: UInt64) {
        part.withLock { $0.recordLatency(nanoseconds) }
    }

    func snapshot() -> Part { part.withLock { $0 } }
}

/// What one load run measured, as the load generators write it with `--json`.
public struct LoadSummary: Codable, Sendable, Equatable {
    public var ok: Int
    public var failed: Int
    public var seconds: Double
    public var perSecond: Double
    public var megabytesPerSecond: Double
    public var samples: Int
    public var p50Micros: Double
    public var p90Micros: Double
    public var p99Micros: Double
    public var p999Micros: Double
    public var maxMicros: Double

    public init(ok: Int, failed: Int, seconds: Double, perSecond: Double, megabytesPerSecond: Double, samples: Int,
                p50Micros: Double, p90Micros: Double, p99Micros: Double, p999Micros: Double, maxMicros: Double) {
        self.ok = ok
        self.failed = failed
        self.seconds = seconds
        self.perSecond = perSecond
        self.megabytesPerSecond = megabytesPerSecond
        self.samples = samples
        self.p50Micros = p50Micros
        self.p90Micros = p90Micros
        self.p99Micros = p99Micros
        self.p999Micros = p999Micros
        self.maxMicros = maxMicros
    }

    enum CodingKeys: String, CodingKey {
        case ok, failed, seconds, samples
        case perSecond = "per_second"
        case megabytesPerSecond = "mb_per_second"
        case p50Micros = "p50_us"
        case p90Micros = "p90_us"
        case p99Micros = "p99_us"
        case p999Micros = "p999_us"
        case maxMicros = "max_us"
    }

    /// Writes the summary as one JSON object to `path`.
    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }
}

public func formatCount(_ n: Int) -> String {
    let digits = String(n)
    var out = ""
    for (i, c) in digits.reversed().enumerated() {
        if i > 0, i % 3 == 0, c != "-" { out.append(",") }
        out.append(c)
    }
    return String(out.reversed())
}

public func formatNanos(_ ns: UInt64) -> String {
    if ns < 1_000 { return "\(ns) ns" }
    if ns < 1_000_000 { return String(format: "%.0f µs", Double(ns) / 1e3) }
    if ns < 1_000_000_000 { return String(format: "%.2f ms", Double(ns) / 1e6) }
    return String(format: "%.2f s", Double(ns) / 1e9)
}
