import MeshCore
import NIOCore

extension Frame {
    /// Decodes one frame from the front of `buffer`.
    ///
    /// Returns nil and consumes nothing while the buffer does not yet hold the whole frame. Throws as
    /// soon as the bytes already seen prove the frame bad, without waiting for the rest: a length
    /// prefix outside `6...maxFrameLength` is rejected from its 4 bytes alone, an unknown frame type
    /// from the 5th byte. So a peer can never make the receiver buffer more than `maxFrameLength`.
    ///
    /// Every thrown error is fatal (a receiver closes the connection after it) and carries the
    /// frame's type and id once they are known.
    ///
    /// With `keepingEncodedEvents`, a PUBLISH_BATCH comes out as `.publishEncoded` with each event's
    /// bytes as they are, unchecked: whoever takes them checks them (`EventEnvelope`).
    public static func decode(
        from buffer: inout ByteBuffer, maxFrameLength: UInt32 = WireProtocol.defaultMaxFrameLength,
        keepingEncodedEvents: Bool = false
    ) throws(WireError) -> Frame? {
        let start = buffer.readerIndex
        guard let length = buffer.getInteger(at: start, as: UInt32.self) else { return nil }
        guard length >= UInt32(WireProtocol.headerSize) else {
            throw WireError(.badFrame, "length prefix \(length) is shorter than the 6-byte frame header", isFatal: true)
        }
        guard length <= maxFrameLength else {
            throw WireError(.frameTooLarge, "frame of \(length) bytes exceeds the maximum of \(maxFrameLength)", isFatal: true)
        }
        if let rawType = buffer.getInteger(at: start + WireProtocol.lengthPrefixSize, as: UInt8.self),
           FrameType(rawValue: rawType) == nil {
            throw WireError(.badFrame, "unknown frame type 0x\(hex(rawType))", isFatal: true)
        }
        guard buffer.readableBytes - WireProtocol.lengthPrefixSize >= Int(length) else { return nil }

        buffer.moveReaderIndex(forwardBy: WireProtocol.lengthPrefixSize)
        var body = buffer.readSlice(length: Int(length))!
        let type = FrameType(rawValue: body.readInteger(as: UInt8.self)!)!
        let flags = body.readInteger(as: UInt8.self)!
        let streamID = body.readInteger(as: UInt32.self)!
        do throws(WireError) {
            guard flags & ~type.knownFlags == 0 else {
                throw WireError(.badFrame, "\(type) has undefined flag bits 0x\(hex(flags & ~type.knownFlags))")
            }
            switch type.streamIDRule {
            case .zero where streamID != 0:
                throw WireError(.badFrame, "\(type) must have id 0, not \(streamID)")
            case .nonZero where streamID == 0:
                throw WireError(.badFrame, "\(type) needs a non-zero id")
            default:
                break
            }
            var reader = BodyReader(buffer: body, type: type)
            let frame = try decodeBody(type: type, flags: flags, streamID: streamID, from: &reader, keepingEncodedEvents: keepingEncodedEvents)
            guard reader.buffer.readableBytes == 0 else {
                throw WireError(.badFrame, "\(reader.buffer.readableBytes) unexpected bytes at the end of \(type)")
            }
            return frame
        } catch {
            throw error.attributed(to: type, streamID: streamID).fatal()
        }
    }

    private static func decodeBody(
        type: FrameType, flags: UInt8, streamID id: UInt32, from r: inout BodyReader, keepingEncodedEvents: Bool
    ) throws(WireError) -> Frame {
        switch type {
        case .hello:
            let minVersion = try r.u16("min version")
            let maxVersion = try r.u16("max version")
            let name = try r.string("client name", maxBytes: WireProtocol.maxNameLength)
            let token = flags & FrameFlags.helloHasToken != 0 ? try r.string("token") : nil
            return .hello(Hello(minVersion: minVersion, maxVersion: maxVersion, clientName: name, token: token,
                                bridge: flags & FrameFlags.helloBridge != 0))
        case .welcome:
            let version = try r.u16("version")
            let name = try r.string("server name", maxBytes: WireProtocol.maxNameLength)
            let maxFrame = try r.u32("max frame length")
            guard maxFrame >= UInt32(WireProtocol.headerSize) else {
                throw WireError(.badFrame, "max frame length \(maxFrame) is smaller than a frame header")
            }
            let heartbeat = try r.u32("heartbeat interval")
            let inFlight = try r.u32("max in-flight publishes")
            return .welcome(Welcome(version: version, serverName: name, maxFrameLength: maxFrame,
                                    heartbeatIntervalMilliseconds: heartbeat, maxInFlightPublishes: inFlight))
        case .ping:
            return .ping(nonce: id)
        case .pong:
            return .pong(nonce: id)
        case .goodbye:
            return .goodbye
        case .error:
            let rawCode = try r.u16("error code")
            guard rawCode != 0 else { throw WireError(.badFrame, "error code 0 is reserved") }
            let rawReplyTo = try r.u8("in-reply-to type")
            var replyTo: FrameType?
            if rawReplyTo != 0 {
                guard let known = FrameType(rawValue: rawReplyTo) else {
                    throw WireError(.badFrame, "in-reply-to names unknown frame type 0x\(hex(rawReplyTo))")
                }
                replyTo = known
            }
            let retryAfter = try r.u32("retry after")
            let message = try r.string("message")
            return .error(WireError(WireErrorCode(rawValue: rawCode), message, streamID: id, inReplyTo: replyTo,
                                    retryAfterMilliseconds: retryAfter, isFatal: flags & FrameFlags.errorFatal != 0))
        case .publish:
            return .publish(requestID: id, event: try r.event(length: r.buffer.readableBytes))
        case .publishBatch:
            // Each entry is a u32 length and an event of at least 10 bytes.
            let count = try r.count("event count", minimumBytesEach: 4 + 10)
            guard count > 0 else { throw WireError(.badFrame, "PUBLISH_BATCH holds no events") }
            if keepingEncodedEvents {
                var events: [[UInt8]] = []
                events.reserveCapacity(count)
                for _ in 0..<count {
                    let length = try r.u32("event length")
                    guard length <= UInt32(r.buffer.readableBytes) else {
                        throw WireError(.badFrame, "event length \(length) exceeds the \(r.buffer.readableBytes) bytes left in the frame")
                    }
                    events.append(r.buffer.readBytes(length: Int(length))!)
                }
                return .publishEncoded(requestID: id, events: events)
            }
            var events: [Event] = []
            events.reserveCapacity(count)
            for _ in 0..<count {
                let length = try r.u32("event length")
                guard length <= UInt32(r.buffer.readableBytes) else {
                    throw WireError(.badFrame, "event length \(length) exceeds the \(r.buffer.readableBytes) bytes left in the frame")
                }
                events.append(try r.event(length: Int(length)))
            }
            return .publishBatch(requestID: id, events: events)
        case .publishAck:
            let count = try r.count("receipt count", minimumBytesEach: 12)
            guard count > 0 else { throw WireError(.badFrame, "PUBLISH_ACK holds no receipts") }
            var receipts: [PublishReceipt] = []
            receipts.reserveCapacity(count)
            for _ in 0..<count {
                receipts.append(PublishReceipt(partition: try r.u32("partition"), offset: try r.u64("offset")))
            }
            return .publishAck(requestID: id, receipts: receipts)
        case .subscribe:
            let pattern = try r.pattern()
            let group = flags & FrameFlags.subscribeHasGroup != 0 ? try r.groupName() : nil
            let kind = try r.u8("start kind")
            let value = try r.u64("start value")
            let start: StartPosition
            switch kind {
            case 0, 1:
                guard value == 0 else {
                    throw WireError(.badFrame, "start value must be 0 for \(kind == 0 ? "earliest" : "latest")")
                }
                start = kind == 0 ? .earliest : .latest
            case 2: start = .offset(value)
            case 3: start = .time(microsecondsSinceEpoch: Int64(bitPattern: value))
            default: throw WireError(.badFrame, "unknown start kind \(kind)")
            }
            let credit = try r.u32("initial credit")
            let rawMode = try r.u8("ack mode")
            guard let mode = AckMode(rawValue: rawMode) else { throw WireError(.badFrame, "unknown ack mode \(rawMode)") }
            return .subscribe(Subscribe(subscriptionID: id, pattern: pattern, group: group, start: start,
                                        initialCredit: credit, ackMode: mode))
        case .subscribed:
            return .subscribed(subscriptionID: id)
        case .event:
            let partition = try r.u32("partition")
            let offset = try r.u64("offset")
            let event = try r.event(length: r.buffer.readableBytes)
            return .event(EventDelivery(subscriptionID: id, partition: partition, offset: offset, event: event))
        case .credit:
            let count = try r.u32("credit")
            guard count > 0 else { throw WireError(.badFrame, "CREDIT of 0") }
            return .credit(subscriptionID: id, count: count)
        case .ack:
            let topic = try r.topic()
            return .ack(Ack(subscriptionID: id, topic: topic, partition: try r.u32("partition"), offset: try r.u64("offset")))
        case .unsubscribe:
            return .unsubscribe(subscriptionID: id)
        case .unsubscribed:
            return .unsubscribed(subscriptionID: id)
        case .assignment:
            let generation = try r.u32("generation")
            // Each entry is at least a 3-byte topic and a u32 partition.
            let count = try r.count("partition count", minimumBytesEach: 2 + 1 + 4)
            var partitions: [TopicPartition] = []
            partitions.reserveCapacity(count)
            for _ in 0..<count {
                let topic = try r.topic()
                partitions.append(TopicPartition(topic: topic, partition: try r.u32("partition")))
            }
            return .assignment(Assignment(subscriptionID: id, generation: generation, partitions: partitions))
        }
    }

    static func hex(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16, uppercase: true)
        return byte < 0x10 ? "0" + digits : digits
    }
}

/// Reads the fields of one frame body; every read checks what remains first.
struct BodyReader {
    var buffer: ByteBuffer
    let type: FrameType

    mutating func u8(_ field: StaticString) throws(WireError) -> UInt8 {
        guard let v = buffer.readInteger(as: UInt8.self) else { throw truncated(field) }
        return v
    }

    mutating func u16(_ field: StaticString) throws(WireError) -> UInt16 {
        guard let v = buffer.readInteger(as: UInt16.self) else { throw truncated(field) }
        return v
    }

    mutating func u32(_ field: StaticString) throws(WireError) -> UInt32 {
        guard let v = buffer.readInteger(as: UInt32.self) else { throw truncated(field) }
        return v
    }

    mutating func u64(_ field: StaticString) throws(WireError) -> UInt64 {
        guard let v = buffer.readInteger(as: UInt64.self) else { throw truncated(field) }
        return v
    }

    /// A u32 count, checked against the bytes left before anyone reserves storage for it.
    mutating func count(_ field: StaticString, minimumBytesEach: Int) throws(WireError) -> Int {
        let value = try u32(field)
        guard UInt64(value) * UInt64(minimumBytesEach) <= UInt64(buffer.readableBytes) else {
            throw WireError(.badFrame, "\(type) \(field) \(value) cannot fit in the \(buffer.readableBytes) bytes left")
        }
        return Int(value)
    }

    /// u16 length + UTF-8, validated.
    mutating func string(_ field: StaticString, maxBytes: Int = WireProtocol.maxStringLength) throws(WireError) -> String {
        let length = Int(try u16(field))
        guard length <= buffer.readableBytes else {
            throw WireError(.badFrame, "\(type) \(field) of \(length) bytes exceeds the \(buffer.readableBytes) bytes left")
        }
        guard length <= maxBytes else {
            throw WireError(.badFrame, "\(type) \(field) is \(length) bytes; at most \(maxBytes) are allowed")
        }
        let view = buffer.readableBytesView.prefix(length)
        guard let text = String(validating: view, as: UTF8.self) else {
            throw WireError(.badFrame, "\(type) \(field) is not valid UTF-8")
        }
        buffer.moveReaderIndex(forwardBy: length)
        return text
    }

    mutating func topic() throws(WireError) -> Topic {
        let name = try string("topic", maxBytes: WireProtocol.maxNameLength)
        do {
            return try Topic(name)
        } catch {
            throw WireError(.invalidTopic, error.message)
        }
    }

    mutating func pattern() throws(WireError) -> TopicPattern {
        let text = try string("pattern", maxBytes: WireProtocol.maxNameLength)
        do {
            return try TopicPattern(text)
        } catch {
            throw WireError(.invalidTopic, error.message)
        }
    }

    /// 1 to 255 bytes of UTF-8 without control characters.
    mutating func groupName() throws(WireError) -> String {
        let name = try string("group", maxBytes: WireProtocol.maxNameLength)
        guard !name.isEmpty else { throw WireError(.badFrame, "\(type) group name is empty") }
        guard !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw WireError(.badFrame, "\(type) group name contains a control character")
        }
        return name
    }

    /// `length` bytes holding exactly one event in MeshCore's encoding.
    mutating func event(length: Int) throws(WireError) -> Event {
        let slice = buffer.readSlice(length: length)!
        // Returned straight from the closure: wrapping it in a Result would copy the event twice.
        do {
            return try slice.withUnsafeReadableBytes { raw in try EventCodec.decode(raw) }
        } catch let error as EventDecodingError {
            throw WireError(decoding: error)
        } catch {
            throw WireError(.invalidEvent, "\(error)")
        }
    }

    func truncated(_ field: StaticString) -> WireError {
        WireError(.badFrame, "\(type) is truncated: \(field) is cut off")
    }
}

extension WireError {
    /// How an event that does not decode is refused: ERROR 8 when its topic is the fault, ERROR 7
    /// otherwise; the same whether the decoder or a reader of the encoded bytes finds it.
    public init(decoding error: EventDecodingError, streamID: UInt32 = 0, inReplyTo: FrameType? = nil, isFatal: Bool = false) {
        self.init(error.kind == .invalidTopic ? .invalidTopic : .invalidEvent, error.message,
                  streamID: streamID, inReplyTo: inReplyTo, isFatal: isFatal)
    }
}
