import MeshCore
import NIOCore

extension Frame {
    /// Appends the whole frame, length prefix included, to `buffer`.
    ///
    /// Strings must be within their limits (names 255 bytes, tokens 65535): the state machines check
    /// what comes from users before building a frame. The one string a server builds from arbitrary
    /// input, an ERROR message, is shortened to fit instead.
    public func encode(into buffer: inout ByteBuffer) {
        let start = buffer.writerIndex
        buffer.writeInteger(UInt32(0))  // patched below, once the body's size is known
        buffer.writeInteger(type.rawValue)
        buffer.writeInteger(flags)
        buffer.writeInteger(streamID)
        encodeBody(into: &buffer)
        let length = buffer.writerIndex - start - WireProtocol.lengthPrefixSize
        precondition(length <= Int(UInt32.max), "frame body does not fit a u32 length")
        buffer.setInteger(UInt32(length), at: start)
    }

    /// The frame as one buffer.
    public func encoded(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 64)
        encode(into: &buffer)
        return buffer
    }

    var flags: UInt8 {
        switch self {
        case .hello(let hello): (hello.token == nil ? 0 : FrameFlags.helloHasToken) | (hello.bridge ? FrameFlags.helloBridge : 0)
        case .error(let error): error.isFatal ? FrameFlags.errorFatal : 0
        case .subscribe(let s): s.group == nil ? 0 : FrameFlags.subscribeHasGroup
        default: 0
        }
    }

    private func encodeBody(into buffer: inout ByteBuffer) {
        switch self {
        case .hello(let hello):
            buffer.writeInteger(hello.minVersion)
            buffer.writeInteger(hello.maxVersion)
            buffer.writeWireString(hello.clientName)
            if let token = hello.token { buffer.writeWireString(token) }
        case .welcome(let welcome):
            buffer.writeInteger(welcome.version)
            buffer.writeWireString(welcome.serverName)
            buffer.writeInteger(welcome.maxFrameLength)
            buffer.writeInteger(welcome.heartbeatIntervalMilliseconds)
            buffer.writeInteger(welcome.maxInFlightPublishes)
        case .ping, .pong, .goodbye, .subscribed, .unsubscribe, .unsubscribed:
            break
        case .error(let error):
            buffer.writeInteger(error.code.rawValue)
            buffer.writeInteger(error.inReplyTo?.rawValue ?? 0)
            buffer.writeInteger(error.retryAfterMilliseconds)
            buffer.writeWireString(Self.clipped(error.message, to: WireProtocol.maxStringLength))
        case .publish(_, let event):
            buffer.writeEvent(event)
        case .publishBatch(_, let events):
            buffer.writeInteger(UInt32(events.count))
            // By index: each event is encoded where it lies, not copied out of the array first.
            for i in events.indices {
                let lengthIndex = buffer.writerIndex
                buffer.writeInteger(UInt32(0))
                let written = buffer.writeEvent(events[i])
                buffer.setInteger(UInt32(written), at: lengthIndex)
            }
        case .publishEncoded(_, let events):
            buffer.writeInteger(UInt32(events.count))
            for event in events {
                buffer.writeInteger(UInt32(event.count))
                buffer.writeBytes(event)
            }
        case .publishAck(_, let receipts):
            buffer.writeInteger(UInt32(receipts.count))
            for receipt in receipts {
                buffer.writeInteger(receipt.partition)
                buffer.writeInteger(receipt.offset)
            }
        case .subscribe(let s):
            buffer.writeWireString(s.pattern.text)
            if let group = s.group { buffer.writeWireString(group) }
            switch s.start {
            case .earliest:
                buffer.writeInteger(UInt8(0))
                buffer.writeInteger(UInt64(0))
            case .latest:
                buffer.writeInteger(UInt8(1))
                buffer.writeInteger(UInt64(0))
            case .offset(let offset):
                buffer.writeInteger(UInt8(2))
                buffer.writeInteger(offset)
            case .time(let micros):
                buffer.writeInteger(UInt8(3))
                buffer.writeInteger(micros)
            }
            buffer.writeInteger(s.initialCredit)
            buffer.writeInteger(s.ackMode.rawValue)
        case .event(let delivery):
            buffer.writeInteger(delivery.partition)
            buffer.writeInteger(delivery.offset)
            buffer.writeEvent(delivery.event)
        case .credit(_, let count):
            buffer.writeInteger(count)
        case .ack(let ack):
            buffer.writeWireString(ack.topic.name)
            buffer.writeInteger(ack.partition)
            buffer.writeInteger(ack.offset)
        case .assignment(let assignment):
            buffer.writeInteger(assignment.generation)
            buffer.writeInteger(UInt32(assignment.partitions.count))
            for tp in assignment.partitions {
                buffer.writeWireString(tp.topic.name)
                buffer.writeInteger(tp.partition)
            }
        }
    }

    /// The longest prefix of `text` that is at most `limit` UTF-8 bytes and ends on a character.
    static func clipped(_ text: String, to limit: Int) -> String {
        guard text.utf8.count > limit else { return text }
        var bytes = 0
        var end = text.startIndex
        for index in text.indices {
            let next = text.index(after: index)
            let size = text.utf8.distance(from: index, to: next)
            guard bytes + size <= limit else { break }
            bytes += size
            end = next
        }
        return String(text[..<end])
    }
}

extension ByteBuffer {
    /// A protocol string: u16 big-endian byte length, then UTF-8.
    mutating func writeWireString(_ string: String) {
        let count = string.utf8.count
        precondition(count <= WireProtocol.maxStringLength, "string of \(count) bytes exceeds the protocol's 65535")
        writeInteger(UInt16(count))
        writeString(string)
    }

    /// The event in MeshCore's binary encoding, with no length of its own; returns its size.
    @discardableResult
    mutating func writeEvent(_ event: Event) -> Int {
        let size = EventCodec.encodedSize(event)
        writeWithUnsafeMutableBytes(minimumWritableBytes: size) { destination in
            EventCodec.encode(event, size: size, into: destination)
            return size
        }
        return size
    }
}

extension Frame {
    /// Appends an EVENT frame whose event is given already encoded, as the log stores it, so a
    /// server can forward stored records without decoding and re-encoding them. The bytes on the
    /// wire are the same as `Frame.event(...).encode(into:)` writes for the decoded event.
    public static func encodeEvent(
        subscriptionID: UInt32, partition: UInt32, offset: UInt64, encodedEvent: some Collection<UInt8>,
        into buffer: inout ByteBuffer
    ) {
        let length = WireProtocol.headerSize + 4 + 8 + encodedEvent.count
        precondition(length <= Int(UInt32.max), "frame body does not fit a u32 length")
        buffer.reserveCapacity(minimumWritableBytes: WireProtocol.lengthPrefixSize + length)
        buffer.writeInteger(UInt32(length))
        buffer.writeInteger(FrameType.event.rawValue)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(subscriptionID)
        buffer.writeInteger(partition)
        buffer.writeInteger(offset)
        buffer.writeBytes(encodedEvent)
    }
}
