import MeshAuth
import MeshBroker
import MeshCore
import NIOCore
import NIOHTTP1

/// `GET /v1/stream/{pattern}`: a subscription served as Server-Sent Events.
///
/// Each event's SSE `id` is the `StreamCursor` of the subscription's positions just after it, so
/// a client reconnecting with `Last-Event-ID` resumes every partition exactly. The subscription is
/// read in a task, off the event loop; each batch is written as one buffer and the next read waits
/// for the write to complete, so a slow client slows its own stream and nothing piles up. With a
/// group, the positions are committed once a batch has been flushed to the socket.
enum EventStream {
    static func start(pattern text: String, identity: Identity, credential: String, query: QueryParameters, headers: HTTPHeaders,
                      core: ServerCore, context: ChannelHandlerContext) throws(Problem) {
        let pattern: TopicPattern
        do { pattern = try TopicPattern(text) } catch { throw .invalidPattern(error) }
        let access = core.configuration.access
        if let denied = access.checkSubscribe(identity, pattern) { throw .forbidden(denied) }
        let group = query["group"]
        if let group, group.isEmpty || group.utf8.count > 255 {
            throw .invalidRequest("query parameter \"group\" must be 1 to 255 bytes")
        }
        let start: StartPosition
        switch query["from"] {
        case nil, "latest": start = .latest
        case "earliest": start = .earliest
        case let from?:
            if let offset = Int64(from), offset >= 0 {
                start = .offset(offset)
            } else {
                do { start = .time(try Timestamp(rfc3339: from).microsecondsSinceEpoch) } catch {
                    throw .invalidRequest("query parameter \"from\" must be earliest, latest, an offset or an RFC 3339 time: \(error.message)")
                }
            }
        }
        var resume: [TopicPartition: Int64] = [:]
        if let last = headers.first(name: "last-event-id"), !last.isEmpty {
            guard let positions = StreamCursor.decode(last) else {
                throw .invalidRequest("the Last-Event-ID header is not an id this stream sent")
            }
            resume = positions
        }
        let channel = context.channel
        let broker = core.broker
        let heartbeat = core.configuration.heartbeatInterval
        let logger = core.logger
        Task {
            let sub = broker.subscribe(pattern: pattern, group: group, start: start, resume: resume)
            channel.closeFuture.whenComplete { _ in sub.close() }
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "text/event-stream")
            headers.add(name: "cache-control", value: "no-cache")
            headers.add(name: "x-accel-buffering", value: "no")
            do {
                try await channel.writeAndFlush(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))).get()
                // A comment first, so that the client sees the stream is open before any event.
                try await channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: ": subscribed\n\n")))).get()
            } catch {
                sub.close()
                return
            }
            if access.enabled { core.streams.add(LiveStreams.Entry(credential: credential, pattern: pattern, channel: channel)) }
            let beat = channel.eventLoop.scheduleRepeatedTask(initialDelay: heartbeat, delay: heartbeat) { _ in
                channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: ": heartbeat\n\n"))), promise: nil)
            }
            defer { beat.cancel() }
            while true {
                let batch = await sub.next(max: 256, maxBytes: 1 << 20)
                if batch.isEmpty { break }
                var positions = sub.positions
                for d in batch.reversed() { positions[d.topicPartition] = d.offset }
                var out = ByteBuffer()
                var w = JSONWriter(capacity: 512)
                for d in batch {
                    positions[d.topicPartition] = d.offset + 1
                    let event: Event
                    do throws(BrokerError) { event = try d.decode() } catch {
                        logger.error("stream skips \(d.topic)[\(d.partition)]@\(d.offset): \(error.message)")
                        continue
                    }
                    w.bytes.removeAll(keepingCapacity: true)
                    CloudEventsHTTP.writeStructured(event, topic: d.topic, partition: d.partition, offset: d.offset, into: &w)
                    out.writeString("id: ")
                    out.writeString(StreamCursor.encode(positions))
                    out.writeString("\n")
                    writeDataLines(w.bytes, into: &out)
                    out.writeString("\n")
                }
                do {
                    try await channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(out))).get()
                } catch {
                    break
                }
                if group != nil {
                    do { try await sub.commitPositions() } catch {
                        logger.warning("stream of group \(group ?? ""): commit failed: \(error)")
                    }
                }
            }
            sub.close()
        }
    }

    /// `data:` lines: JSON text from a publisher may hold line breaks (as whitespace), which SSE
    /// would read as the end of the field, so each line gets its own `data:` prefix; a client
    /// joins them with `\n`.
    static func writeDataLines(_ json: [UInt8], into out: inout ByteBuffer) {
        var lineStart = 0
        var i = 0
        while i < json.count {
            let b = json[i]
            if b == 0x0A || b == 0x0D {
                out.writeString("data: ")
                out.writeBytes(json[lineStart..<i])
                out.writeString("\n")
                if b == 0x0D, i + 1 < json.count, json[i + 1] == 0x0A { i += 1 }
                lineStart = i + 1
            }
            i += 1
        }
        out.writeString("data: ")
        out.writeBytes(json[lineStart...])
        out.writeString("\n")
    }
}
