import MeshCore
import Synchronization

/// One topic of the log: its settings and its partitions.
public final class TopicLog: Sendable {
    public let topic: Topic
    public let config: TopicConfig
    public let partitions: [PartitionLog]
    let directory: String
    private let roundRobin = Atomic<UInt64>(0)

    init(topic: Topic, config: TopicConfig, directory: String, partitions: [PartitionLog]) {
        self.topic = topic
        self.config = config
        self.directory = directory
        self.partitions = partitions
    }

    /// The partition for an event: a stable hash of its partition key, else round robin.
    public func partition(forKey key: String?) -> Int {
        let n = UInt64(partitions.count)
        if n == 1 { return 0 }
        if let key { return Int(UInt64(stableHash(key)) % n) }
        return Int(roundRobin.wrappingAdd(1, ordering: .relaxed).oldValue % n)
    }

    /// Appends one record to the partition its key selects; the completion gets (partition, offset).
    public func append(_ payload: [UInt8], key: String?,
                       completion: @escaping @Sendable (Result<(partition: Int, offset: Int64), LogError>) -> Void) {
        let p = partition(forKey: key)
        partitions[p].append(payload) { result in completion(result.map { (p, $0) }) }
    }

    public func append(_ payload: [UInt8], key: String?) async throws(LogError) -> (partition: Int, offset: Int64) {
        let p = partition(forKey: key)
        return (p, try await partitions[p].append(payload))
    }

    public func partition(_ index: Int) throws(LogError) -> PartitionLog {
        guard partitions.indices.contains(index) else {
            throw LogError(.unknownPartition, "topic \(topic) has \(partitions.count) partition(s); \(index) does not exist")
        }
        return partitions[index]
    }
}

/// FNV-1a (32 bit) of the key's UTF-8 bytes: stable across processes, versions and machines, so a
/// key keeps its partition. Documented in docs/log-format.md.
public func stableHash(_ key: String) -> UInt32 {
    var hash: UInt32 = 0x811C_9DC5
    for byte in key.utf8 {
        hash ^= UInt32(byte)
        hash = hash &* 0x0100_0193
    }
    return hash
}
