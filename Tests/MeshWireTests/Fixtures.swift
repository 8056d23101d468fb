import MeshTestSupport
import MeshCore
import MeshWire
import NIOCore

enum Fixtures {
    static func topic(_ name: String) -> Topic { try! Topic(name) }
    static func pattern(_ text: String) -> TopicPattern { try! TopicPattern(text) }

    static func event(_ topicName: String = "orders/eu", data: String = "{}") -> Event {
        Event(topic: topic(topicName), id: "evt-1", source: "meshgate://a/tcp", type: "order.created",
              time: Timestamp(microsecondsSinceEpoch: 1_709_210_096_123_456), partitionKey: "c-7",
              hops: ["site-a"], data: Array(data.utf8))
    }

    /// At least one frame of every type, with the optional parts both present and absent.
    static func everyFrame() -> [Frame] {
        [
            .hello(Hello(minVersion: 1, maxVersion: 3, clientName: "meshgate-cli/0.1")),
            .hello(Hello(minVersion: 1, maxVersion: 1, clientName: "клиент", token: "s3cr3t-token")),
            .welcome(Welcome(version: 1, serverName: "node-a", maxFrameLength: WireProtocol.defaultMaxFrameLength,
                             heartbeatIntervalMilliseconds: 10_000, maxInFlightPublishes: 128)),
            .ping(nonce: 0),
            .ping(nonce: 7),
            .pong(nonce: 7),
            .goodbye,
            .error(WireError(.overloaded, "slow down", streamID: 42, inReplyTo: .publish, retryAfterMilliseconds: 250)),
            .error(WireError(.badFrame, "garbage — ü", isFatal: true)),
            .publish(requestID: 1, event: event()),
            .publish(requestID: .max, event: Event(topic: topic("a"))),
            .publishBatch(requestID: 2, events: [event("a/b", data: "1"), event("温度/🚀", data: ""), Event(topic: topic("x"))]),
            .publishAck(requestID: 2, receipts: [PublishReceipt(partition: 0, offset: 0),
                                                 PublishReceipt(partition: 3, offset: .max)]),
            .subscribe(Subscribe(subscriptionID: 1, pattern: pattern("orders/#"), start: .earliest, initialCredit: 100)),
            .subscribe(Subscribe(subscriptionID: 2, pattern: pattern("+/eu/+"), group: "billing", start: .latest,
                                 initialCredit: 0, ackMode: .explicit)),
            .subscribe(Subscribe(subscriptionID: 3, pattern: pattern("#"), start: .offset(12_345), initialCredit: 1)),
            .subscribe(Subscribe(subscriptionID: 4, pattern: pattern("a"), group: "g", start: .time(microsecondsSinceEpoch: -5),
                                 initialCredit: .max)),
            .subscribed(subscriptionID: 1),
            .event(EventDelivery(subscriptionID: 1, partition: 2, offset: 99, event: event())),
            .credit(subscriptionID: 1, count: 50),
            .ack(Ack(subscriptionID: 2, topic: topic("orders/eu"), partition: 1, offset: 98)),
            .unsubscribe(subscriptionID: 1),
            .unsubscribed(subscriptionID: 1),
            .assignment(Assignment(subscriptionID: 2, generation: 3, partitions: [
                TopicPartition(topic: topic("orders/eu"), partition: 0),
                TopicPartition(topic: topic("orders/us"), partition: 5),
            ])),
            .assignment(Assignment(subscriptionID: 2, generation: 4, partitions: [])),
        ]
    }

    static func bytes(_ frame: Frame) -> [UInt8] {
        let buffer = frame.encoded()
        return Array(buffer.readableBytesView)
    }

    /// Decodes exactly one frame from `bytes`, failing when bytes are left over.
    static func decodeOne(_ bytes: [UInt8], maxFrameLength: UInt32 = WireProtocol.defaultMaxFrameLength) throws(WireError) -> Frame? {
        var buffer = ByteBuffer(bytes: bytes)
        return try Frame.decode(from: &buffer, maxFrameLength: maxFrameLength)
    }

    /// A raw frame from its parts, for hand-made malformed input.
    static func raw(type: UInt8, flags: UInt8 = 0, id: UInt32 = 0, body: [UInt8]) -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(6 + body.count))
        buffer.writeInteger(type)
        buffer.writeInteger(flags)
        buffer.writeInteger(id)
        buffer.writeBytes(body)
        return Array(buffer.readableBytesView)
    }
}
