import MeshBroker
import MeshCore
import MeshLog

/// The JSON bodies of the admin endpoints: status, topics, consumer groups, publish receipts.
enum Admin {
    static func writeReceipt(_ r: PublishReceipt, into w: inout JSONWriter) {
        w.raw(#"{"id":"#); w.string(r.id)
        w.raw(#","topic":"#); w.string(r.topic)
        w.raw(#","partition":"#); w.int(r.partition)
        w.raw(#","offset":"#); w.int(r.offset)
        w.raw("}")
    }

    static func status(_ s: NodeStatus) -> [UInt8] {
        var w = JSONWriter()
        w.raw(#"{"node":"#); w.string(s.node)
        w.raw(#","version":"#); w.string(s.version)
        w.raw(#","started_at":"#); w.string(s.startedAt.rfc3339)
        w.raw(#","uptime_seconds":"#); w.int(Int(s.uptimeSeconds))
        w.raw(#","ready":"#); w.raw(s.notReadyReason == nil ? "true" : "false")
        w.raw(#","listeners":["#)
        for (i, l) in s.listeners.enumerated() {
            if i > 0 { w.raw(",") }
            w.raw(#"{"name":"#); w.string(l.name)
            w.raw(#","address":"#); w.string(l.address)
            w.raw(#","host":"#); w.string(l.host)
            w.raw(#","port":"#); w.int(l.port)
            w.raw("}")
        }
        w.raw("]}")
        return w.bytes
    }

    static func topics(_ broker: Broker) -> [UInt8] {
        var w = JSONWriter()
        w.raw(#"{"topics":["#)
        for (i, t) in broker.log.topics.sorted(by: { $0.topic.name < $1.topic.name }).enumerated() {
            if i > 0 { w.raw(",") }
            w.raw(#"{"name":"#); w.string(t.topic.name)
            w.raw(#","durability":"#)
            switch t.config.durability {
            case .always: w.string("always")
            case .none: w.string("none")
            case .interval(let ms): w.string("interval:\(ms)")
            }
            w.raw(#","retention_ms":"#)
            if let r = t.config.retentionMicros { w.int(r / 1000) } else { w.raw("null") }
            w.raw(#","retention_bytes":"#)
            if let r = t.config.retentionBytes { w.int(r) } else { w.raw("null") }
            let storage = t.partitions.map(\.storage)
            w.raw(#","segments":"#); w.int(storage.reduce(0) { $0 + $1.segments })
            w.raw(#","bytes":"#); w.int(storage.reduce(0) { $0 + $1.bytes })
            w.raw(#","partitions":["#)
            for (k, p) in t.partitions.enumerated() {
                if k > 0 { w.raw(",") }
                w.raw(#"{"partition":"#); w.int(p.index)
                w.raw(#","start_offset":"#); w.int(p.startOffset)
                w.raw(#","end_offset":"#); w.int(p.endOffset)
                w.raw(#","segments":"#); w.int(storage[k].segments)
                w.raw(#","bytes":"#); w.int(storage[k].bytes)
                w.raw("}")
            }
            w.raw("]}")
        }
        w.raw("]}")
        return w.bytes
    }

    /// `{"group", "offsets": [{"topic","partition","offset"}], "members": [{"member","partitions":[{"topic","partition"}]}]}`
    static func group(_ name: String, broker: Broker) -> [UInt8] {
        var w = JSONWriter()
        w.raw(#"{"group":"#); w.string(name)
        w.raw(#","offsets":["#)
        // A route's cursor keeps a marker entry with an empty topic (its creation, see PairWorker);
        // it is not an offset of any topic, so the API leaves it out.
        let offsets = broker.committed(group: name).filter { !$0.topic.isEmpty }
            .sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
        for (i, o) in offsets.enumerated() {
            if i > 0 { w.raw(",") }
            w.raw(#"{"topic":"#); w.string(o.topic)
            w.raw(#","partition":"#); w.int(o.partition)
            w.raw(#","offset":"#); w.int(o.offset)
            w.raw("}")
        }
        w.raw(#"],"members":["#)
        for (i, m) in broker.members(of: name).enumerated() {
            if i > 0 { w.raw(",") }
            w.raw(#"{"member":"#); w.int(m.member)
            w.raw(#","partitions":["#)
            for (k, tp) in m.partitions.enumerated() {
                if k > 0 { w.raw(",") }
                w.raw(#"{"topic":"#); w.string(tp.topic)
                w.raw(#","partition":"#); w.int(tp.partition)
                w.raw("}")
            }
            w.raw("]}")
        }
        w.raw("]}")
        return w.bytes
    }

    /// Parses `{"offsets": [{"topic": T, "partition": P, "offset": O}, …]}`.
    static func parseOffsets(_ body: [UInt8]) throws(Problem) -> [GroupOffset] {
        let doc: JSONValue
        do { doc = try JSONReader.parse(body) } catch { throw .invalidJSON(error) }
        guard case .array(let items)? = doc["offsets"] else {
            throw .invalidRequest(#"the body must be an object with an "offsets" array: {"offsets":[{"topic":"t","partition":0,"offset":42}]}"#)
        }
        var out: [GroupOffset] = []
        for (i, item) in items.enumerated() {
            guard case .string(let topic)? = item["topic"] else { throw .invalidRequest("offsets[\(i)].topic must be a string") }
            do { _ = try Topic(topic) } catch { throw .invalidTopic(error) }
            guard case .number(let p)? = item["partition"], let partition = Int(p), partition >= 0 else {
                throw .invalidRequest("offsets[\(i)].partition must be a non-negative integer")
            }
            guard case .number(let o)? = item["offset"], let offset = Int64(o), offset >= 0 else {
                throw .invalidRequest("offsets[\(i)].offset must be a non-negative integer (the next offset to read)")
            }
            out.append(GroupOffset(topic: topic, partition: partition, offset: offset))
        }
        return out
    }
}
