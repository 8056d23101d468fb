import Foundation
import Logging
import MeshCore

/// The one thread that writes records to segment files. Producers put a partition in its queue
/// when they add the partition's first pending append; the thread takes every queued partition,
/// writes each one's pending appends with a single `pwrite`, and hands `always` batches to the
/// syncer. While it writes, new appends pile up: that is the batching.
final class LogWriter: @unchecked Sendable {
    // `queue` and `stopping` are guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [PartitionLog] = []
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)
    private var started = false

    func start() {
        started = true
        startThread(named: "mg-log-writer") { [self] in run() }
    }

    func enqueue(_ partition: PartitionLog) {
        condition.lock()
        queue.append(partition)
        if queue.count == 1 { condition.signal() }
        condition.unlock()
    }

    /// Writes what is queued, then stops the thread.
    func stop() {
        guard started else { return }
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
        finished.wait()
        started = false
    }

    private func run() {
        let buffer = WriteBuffer()
        var batch: [PartitionLog] = []
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty && stopping {
                condition.unlock()
                break
            }
            swap(&batch, &queue)
            condition.unlock()
            for partition in batch { partition.writePending(buffer) }
            batch.removeAll(keepingCapacity: true)
        }
        finished.signal()
    }
}

/// One written batch waiting to be acknowledged: after its fdatasync for `always` partitions, at
/// once for the others.
struct SyncJob {
    let partition: PartitionLog
    let file: OpenFile
    let segment: Int64
    let endOffset: Int64
    let endPosition: Int64
    let needsSync: Bool
    let completions: [(completion: @Sendable (Result<Int64, LogError>) -> Void, first: Int64)]
}

/// The thread that runs fdatasync. It takes every batch written since its last round and syncs
/// each file once for all of them — the group commit — while the writer goes on writing. It also
/// syncs `interval` partitions when their deadline comes.
final class LogSyncer: @unchecked Sendable {
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [SyncJob] = []
    private var dirty: [ObjectIdentifier: (partition: PartitionLog, path: String, deadline: UInt64)] = [:]
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)
    private var started = false
    private let files: FileCache
    private let logger: Logger
    private let metrics: LogMetrics

    init(files: FileCache, logger: Logger, metrics: LogMetrics) {
        self.files = files
        self.logger = logger
        self.metrics = metrics
    }

    func start() {
        started = true
        startThread(named: "mg-log-sync") { [self] in run() }
    }

    func submit(_ job: SyncJob) {
        condition.lock()
        jobs.append(job)
        if jobs.count == 1 { condition.signal() }
        condition.unlock()
    }

    /// Notes that an `interval` partition has unsynced writes in `path`, due by `deadline`.
    func markDirty(_ partition: PartitionLog, path: String, deadline: UInt64) {
        condition.lock()
        let key = ObjectIdentifier(partition)
        if let existing = dirty[key] {
            // After a roll the path changes; the sealed segment was synced when it was sealed.
            dirty[key] = (partition, path, min(existing.deadline, deadline))
        } else {
            dirty[key] = (partition, path, deadline)
            condition.signal()
        }
        condition.unlock()
    }

    /// Syncs everything outstanding, then stops the thread.
    func stop() {
        guard started else { return }
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
        finished.wait()
        started = false
    }

    private func run() {
        var taken: [SyncJob] = []
        while true {
            condition.lock()
            var due: [(partition: PartitionLog, path: String)] = []
            while true {
                let now = monotonicNanos()
                let earliest = dirty.values.map(\.deadline).min()
                if !jobs.isEmpty || stopping || (earliest.map { $0 <= now } ?? false) { break }
                if let earliest {
                    _ = condition.wait(until: Date(timeIntervalSinceNow: Double(earliest - now) / 1e9))
                } else {
                    condition.wait()
                }
            }
            let now = monotonicNanos()
            for (key, entry) in dirty where entry.deadline <= now || stopping {
                due.append((entry.partition, entry.path))
                dirty.removeValue(forKey: key)
            }
            swap(&taken, &jobs)
            let exit = stopping && taken.isEmpty && dirty.isEmpty && due.isEmpty
            condition.unlock()
            if exit { break }

            syncJobs(taken)
            taken.removeAll(keepingCapacity: true)
            for entry in due { syncInterval(entry.partition, path: entry.path) }
        }
        finished.signal()
    }

    private func syncJobs(_ jobs: [SyncJob]) {
        // One fdatasync per file covers every batch written to it before the call.
        var results: [Int32: LogError?] = [:]
        for job in jobs where job.needsSync && results[job.file.fd] == nil {
            let started = monotonicNanos()
            do {
                try FileIO.sync(job.file.fd, path: job.file.path)
                results[job.file.fd] = .some(nil)
                metrics.fsync.recordNanoseconds(Int64(monotonicNanos() - started))
            } catch {
                results[job.file.fd] = .some(error)
                metrics.fsyncErrors.increment()
            }
        }
        for job in jobs {
            if let error = results[job.file.fd] ?? nil {
                job.partition.fail(error)
                for c in job.completions { c.completion(.failure(error)) }
            } else {
                job.partition.publish(endOffset: job.endOffset, segment: job.segment, bytes: job.endPosition)
                for c in job.completions { c.completion(.success(c.first)) }
            }
            files.release(job.file)
        }
    }

    private func syncInterval(_ partition: PartitionLog, path: String) {
        let started = monotonicNanos()
        do {
            try files.with(path) { (file) throws(LogError) in try FileIO.sync(file.fd, path: path) }
            metrics.fsync.recordNanoseconds(Int64(monotonicNanos() - started))
        } catch {
            if FileIO.exists(path) {
                logger.error("fsync of \(path) failed: \(error.message)")
                partition.fail(error)
            }
        }
    }
}
