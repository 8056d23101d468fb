import CoreMetrics
/// How a topic makes appends durable before they are acknowledged (SPEC §2).
public enum Durability: Sendable, Equatable, CustomStringConvertible {
    /// Acknowledge after a group-committed fdatasync that covers the record. The default.
    case always
    /// Acknowledge after the write to the OS; fdatasync every `milliseconds`.
    case interval(milliseconds: Int)
    /// Acknowledge after the write to the OS; the OS flushes when it chooses.
    case none

    public var description: String {
        switch self {
        case .always: "always"
        case .interval(let ms): "interval(\(ms)ms)"
        case .none: "none"
        }
    }

    /// Parses `always`, `none`, `interval` (1000 ms) or `interval:250`.
    public init?(parsing text: String) {
        switch text {
        case "always": self = .always
        case "none": self = .none
        case "interval": self = .interval(milliseconds: 1000)
        default:
            guard text.hasPrefix("interval:"), let ms = Int(text.dropFirst("interval:".count)), ms > 0 else { return nil }
            self = .interval(milliseconds: ms)
        }
    }
}

/// Per-topic settings. Stored in the topic's directory when the topic is created.
public struct TopicConfig: Sendable, Equatable {
    public var partitions: Int
    public var durability: Durability
    /// Delete whole segments whose newest record is older than this; nil keeps them forever.
    public var retentionMicros: Int64?
    /// Delete the oldest whole segments while the partition holds more than this; nil for no bound.
    public var retentionBytes: Int64?

    public init(partitions: Int = 1, durability: Durability = .always, retentionMicros: Int64? = nil, retentionBytes: Int64? = nil) {
        self.partitions = partitions
        self.durability = durability
        self.retentionMicros = retentionMicros
        self.retentionBytes = retentionBytes
    }
}

/// Settings of the log as a whole.
public struct LogOptions: Sendable {
    /// The configuration a topic gets when it is created without one.
    public var defaultTopic = TopicConfig()
    /// Roll to a new segment once the active one reaches this size.
    public var segmentBytes: Int64 = 64 << 20
    /// Roll to a new segment once the active one is this old (checked when writing).
    public var segmentAgeMicros: Int64 = 7 * 24 * 3600 * 1_000_000
    /// Add a sparse index entry after this many bytes of records.
    public var indexIntervalBytes = 4096
    /// The largest payload a record may carry.
    public var maxRecordBytes = 16 << 20
    /// Open file descriptors the log keeps at most (segments of 10,000 topics share them).
    public var maxOpenFiles = 1024
    /// Sealed segment indexes kept in memory at most; others are loaded on demand.
    public var maxCachedIndexes = 256
    /// How often retention runs in the background; nil disables the background task.
    public var retentionCheckMicros: Int64? = 60 * 1_000_000
    /// The clock stamping records, in microseconds since the epoch. Tests replace it.
    public var clock: @Sendable () -> Int64 = wallClockMicros
    /// Where the log records its write and fsync metrics; nil: the process's bootstrapped
    /// `MetricsSystem` (no-op until the executable bootstraps one).
    public var metricsFactory: (any MetricsFactory)?

    public init() {}
}
