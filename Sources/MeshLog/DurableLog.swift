#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import MeshCore
import Synchronization

/// The built-in durable log: topics of partitioned, segmented, checksummed records in a data
/// directory, with consumer group offsets. One process at a time may open a directory.
///
///     data/
///       LOCK
///       topics/<encoded topic>/topic.meta
///       topics/<encoded topic>/<partition>/<base offset>.log|.index|.timeindex
///       groups/offsets.log
public final class DurableLog: Sendable {
    public let directory: String
    public let options: LogOptions
    public let offsets: ConsumerOffsets
    let context: LogContext
    private let topicsByName: Mutex<[String: TopicLog]>
    private let topicObservers = Mutex<[@Sendable (TopicLog) -> Void]>([])
    private let lockFD: Int32
    private let closed = Atomic<Bool>(false)
    private let retention: RetentionTask?

    /// Opens (creating if needed) the log in `directory` and recovers every partition.
    public init(directory: String, options: LogOptions = LogOptions(), logger: Logger = Logger(label: "meshgate.log")) throws(LogError) {
        try FileIO.makeDirectories(directory + "/topics")
        self.directory = directory
        self.options = options
        lockFD = try FileIO.open(directory + "/LOCK", flags: O_RDWR | O_CREAT)
        if flock(lockFD, LOCK_EX | LOCK_NB) != 0 {
            FileIO.close(lockFD)
            throw LogError(.invalidConfig, "the data directory \(directory) is in use by another process")
        }
        let context = LogContext(options: options, logger: logger)
        self.context = context
        do {
            offsets = try ConsumerOffsets(directory: directory + "/groups", maxRecordBytes: options.maxRecordBytes)
            var topics: [String: TopicLog] = [:]
            let started = monotonicNanos()
            for entry in try FileIO.list(directory + "/topics") {
                // A crash between creating a topic's directory and writing its topic.meta leaves a
                // directory without one: the topic was never visible, so nothing in it was acknowledged.
                if !FileIO.exists("\(directory)/topics/\(entry)/topic.meta") {
                    logger.warning("removing \(entry): a topic creation interrupted by a crash")
                    FileIO.removeTree("\(directory)/topics/\(entry)")
                    continue
                }
                let topic = try Self.openTopic(directory: "\(directory)/topics/\(entry)", context: context)
                topics[topic.topic.name] = topic
            }
            topicsByName = Mutex(topics)
            logger.info("log opened", metadata: ["directory": "\(directory)", "topics": "\(topics.count)",
                                                 "recovery_ms": "\((monotonicNanos() - started) / 1_000_000)"])
        } catch {
            flock(lockFD, LOCK_UN)
            FileIO.close(lockFD)
            throw error
        }
        context.writer.start()
        context.syncer.start()
        retention = options.retentionCheckMicros.map { RetentionTask(intervalMicros: $0) }
        retention?.start { [weak self] in self?.enforceRetention() }
    }

    /// Every topic, sorted by name.
    public var topics: [TopicLog] {
        topicsByName.withLock { Array($0.values) }.sorted { $0.topic.name < $1.topic.name }
    }

    public func topic(_ topic: Topic) -> TopicLog? {
        topicsByName.withLock { $0[topic.name] }
    }

    /// The topic, created with `config` (or the default) if it does not exist yet.
    @discardableResult
    public func createTopic(_ topic: Topic, config: TopicConfig? = nil) throws(LogError) -> TopicLog {
        if let existing = self.topic(topic) { return existing }
        let config = config ?? options.defaultTopic
        guard config.partitions >= 1 && config.partitions <= 4096 else {
            throw LogError(.invalidConfig, "a topic has 1 to 4096 partitions, not \(config.partitions)")
        }
        if closed.load(ordering: .acquiring) { throw LogError(.closed, "the log is closed") }
        // Creation is rare; one lock for it keeps two creators from racing on the directory.
        var isNew = false
        let created = try topicsByName.withLock { (topics) throws(LogError) -> TopicLog in
            if let raced = topics[topic.name] { return raced }
            isNew = true
            let dir = "\(directory)/topics/\(Self.directoryName(for: topic.name))"
            try FileIO.makeDirectories(dir)
            try FileIO.writeAtomically(path: dir + "/topic.meta", bytes: Array(TopicMeta(name: topic.name, config: config).encoded.utf8))
            let created = try Self.openTopic(directory: dir, context: context)
            topics[topic.name] = created
            return created
        }
        if isNew { for observer in topicObservers.withLock({ $0 }) { observer(created) } }
        return created
    }

    /// Calls `observer` (on the creating thread) for every topic created from now on, so that
    /// subscriptions and routes over patterns pick up new topics without polling.
    public func observeNewTopics(_ observer: @escaping @Sendable (TopicLog) -> Void) {
        topicObservers.withLock { $0.append(observer) }
    }

    /// Runs retention on every partition now. Returns the number of segments deleted.
    @discardableResult
    public func enforceRetention(now: Int64? = nil) -> Int {
        let now = now ?? options.clock()
        var deleted = 0
        for topic in topics {
            for partition in topic.partitions {
                do { deleted += try partition.enforceRetention(now: now) } catch {
                    context.logger.error("retention of \(partition.name) failed: \(error.message)")
                }
            }
        }
        return deleted
    }

    /// Open descriptors the log holds (bounded by `maxOpenFiles`).
    public var openFiles: Int { context.files.openCount }

    /// Stops accepting appends, writes and syncs everything queued, and releases the directory.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        retention?.stop()
        let all = topics.flatMap(\.partitions)
        context.writer.stop()
        context.syncer.stop()
        for partition in all {
            partition.close()
            do { try partition.flush() } catch { context.logger.error("flush of \(partition.name) failed: \(error.message)") }
        }
        context.files.closeAll()
        flock(lockFD, LOCK_UN)
        FileIO.close(lockFD)
    }

    deinit { close() }

    private static func openTopic(directory: String, context: LogContext) throws(LogError) -> TopicLog {
        let text = String(decoding: try FileIO.read(path: directory + "/topic.meta"), as: UTF8.self)
        let meta = try TopicMeta(parsing: text, path: directory + "/topic.meta")
        let topic: Topic
        do { topic = try Topic(meta.name) } catch {
            throw LogError(.invalidConfig, "\(directory)/topic.meta names an invalid topic: \(error)")
        }
        var partitions: [PartitionLog] = []
        for i in 0..<meta.config.partitions {
            partitions.append(try PartitionLog.open(topicName: meta.name, index: i, directory: "\(directory)/\(i)",
                                                    config: meta.config, context: context))
        }
        return TopicLog(topic: topic, config: meta.config, directory: directory, partitions: partitions)
    }

    /// A readable directory name for a topic: bytes outside `[A-Za-z0-9_-]` are percent-encoded;
    /// names that would be too long are cut and given a hash suffix (the real name is in topic.meta).
    static func directoryName(for topic: String) -> String {
        var out = ""
        for byte in topic.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
                out.unicodeScalars.append(UnicodeScalar(byte))
            default:
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        if out.utf8.count > 200 {
            var h: UInt64 = 0xCBF2_9CE4_8422_2325
            for b in topic.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
            out = String(out.prefix(180)) + "~" + String(h, radix: 16)
        }
        return out
    }
}

extension String {
    func leftPadded(to n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

/// A topic's name and settings, stored as `key=value` lines in `topic.meta`.
struct TopicMeta {
    let name: String
    let config: TopicConfig

    init(name: String, config: TopicConfig) {
        self.name = name
        self.config = config
    }

    var encoded: String {
        var lines = ["name=\(name)", "partitions=\(config.partitions)", "fsync=\(Self.durabilityText(config.durability))"]
        if let r = config.retentionMicros { lines.append("retention_us=\(r)") }
        if let r = config.retentionBytes { lines.append("retention_bytes=\(r)") }
        return lines.joined(separator: "\n") + "\n"
    }

    static func durabilityText(_ d: Durability) -> String {
        switch d {
        case .always: "always"
        case .none: "none"
        case .interval(let ms): "interval:\(ms)"
        }
    }

    init(parsing text: String, path: String) throws(LogError) {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            fields[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        guard let name = fields["name"], let partitions = fields["partitions"].flatMap({ Int($0) }), partitions >= 1,
              let durability = fields["fsync"].flatMap({ Durability(parsing: $0) }) else {
            throw LogError(.invalidConfig, "\(path) is damaged: it needs name, partitions and fsync")
        }
        self.name = name
        config = TopicConfig(partitions: partitions, durability: durability,
                             retentionMicros: fields["retention_us"].flatMap { Int64($0) },
                             retentionBytes: fields["retention_bytes"].flatMap { Int64($0) })
    }
}

/// Runs retention every interval on its own thread.
final class RetentionTask: @unchecked Sendable {
    private let intervalMicros: Int64
    private let condition = NSCondition()
    private var stopping = false  // guarded by condition
    private let finished = DispatchSemaphore(value: 0)

    init(intervalMicros: Int64) { self.intervalMicros = intervalMicros }

    func start(_ body: @escaping @Sendable () -> Void) {
        startThread(named: "mg-log-retain") { [self] in
            while true {
                condition.lock()
                if !stopping { _ = condition.wait(until: Date(timeIntervalSinceNow: Double(intervalMicros) / 1e6)) }
                let stop = stopping
                condition.unlock()
                if stop { break }
                body()
            }
            finished.signal()
        }
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
        finished.wait()
    }
}
