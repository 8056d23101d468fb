import Foundation
import MeshCore
import MeshLog

/// Every event of every topic matching `pattern` (a plain topic name matches just that topic), in
/// topic, partition and offset order.
public func events(_ log: DurableLog, matching pattern: String) throws -> [Event] {
    let p = try TopicPattern(pattern)
    var out: [Event] = []
    for t in log.topics where p.matches(t.topic) {
        for part in t.partitions {
            var next = part.startOffset
            while next < part.endOffset {
                let records = try part.read(from: next, maxRecords: 1000)
                if records.isEmpty { break }
                out += try records.map { try EventCodec.decode($0.payload) }
                next = records.last!.offset + 1
            }
        }
    }
    return out
}

/// Every event in one topic, in partition and offset order.
public func events(_ log: DurableLog, _ topic: String) throws -> [Event] {
    try events(log, matching: topic)
}

/// Polls until `condition` holds or `seconds` pass; returns whether it held.
public func eventually(_ seconds: Double = 10, _ condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try condition()
}
