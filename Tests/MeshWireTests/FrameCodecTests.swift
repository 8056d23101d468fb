import MeshTestSupport
import MeshCore
import NIOCore
import NIOEmbedded
import Testing
@testable import MeshWire

@Suite struct FrameCodecTests {
    @Test func everyFrameTypeIsCovered() {
        let covered = Set(Fixtures.everyFrame().map(\.type))
        #expect(covered == Set(FrameType.allCases))
    }

    @Test(arguments: Fixtures.everyFrame())
    func pureRoundTrip(_ frame: Frame) throws {
        var buffer = frame.encoded()
        let length = buffer.getInteger(at: 0, as: UInt32.self)!
        #expect(Int(length) == buffer.readableBytes - 4)
        let decoded = try Frame.decode(from: &buffer)
        #expect(decoded == frame)
        #expect(buffer.readableBytes == 0)
    }

    @Test func roundTripThroughEmbeddedChannel() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
        try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder()))
        let frames = Fixtures.everyFrame()
        var wire = ByteBuffer()
        for frame in frames {
            try channel.writeOutbound(frame)
            var out = try #require(try channel.readOutbound(as: ByteBuffer.self))
            wire.writeBuffer(&out)
        }
        // All frames arrive in one read, as a pipelined peer would send them.
        try channel.writeInbound(wire)
        for frame in frames {
            #expect(try channel.readInbound(as: Frame.self) == frame)
        }
        #expect(try channel.readInbound(as: Frame.self) == nil)
        #expect(try channel.finish().isClean)
    }

    @Test func byteByByteFragmentsDecode() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        let frames = Fixtures.everyFrame()
        var received: [Frame] = []
        for frame in frames {
            for byte in Fixtures.bytes(frame) {
                try channel.writeInbound(ByteBuffer(bytes: [byte]))
                while let f = try channel.readInbound(as: Frame.self) { received.append(f) }
            }
        }
        #expect(received == frames)
        #expect(try channel.finish().isClean)
    }

    @Test func pureDecodeConsumesNothingUntilTheFrameIsComplete() throws {
        let bytes = Fixtures.bytes(.credit(subscriptionID: 9, count: 3))
        for cut in 0..<bytes.count {
            var buffer = ByteBuffer(bytes: bytes[..<cut])
            #expect(try Frame.decode(from: &buffer) == nil)
            #expect(buffer.readableBytes == cut)
        }
    }

    @Test func oversizedLengthIsRejectedBeforeTheBodyArrives() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameLength: 1024)))
        var prefix = ByteBuffer()
        prefix.writeInteger(UInt32(1025))
        prefix.writeInteger(FrameType.publish.rawValue)
        do {
            try channel.writeInbound(prefix)
            Issue.record("an oversized length prefix was accepted")
        } catch let error as WireError {
            #expect(error.code == .frameTooLarge)
            #expect(error.isFatal)
        }
        _ = try? channel.finish()

        // The pure decoder needs only the four bytes of the prefix.
        var four = ByteBuffer()
        four.writeInteger(UInt32.max)
        #expect(throws: WireError.self) { try Frame.decode(from: &four, maxFrameLength: 1024) }
        // A frame of exactly the limit is fine.
        let atLimit = Fixtures.raw(type: FrameType.publish.rawValue, id: 1, body: Array(repeating: 0, count: 1024 - 6))
        #expect(throws: WireError.self) { try Fixtures.decodeOne(atLimit, maxFrameLength: 1024) }  // the body is no event
        do {
            _ = try Fixtures.decodeOne(atLimit, maxFrameLength: 1024)
        } catch {
            #expect(error.code == .invalidEvent)
        }
    }

    @Test func unknownTypeIsRejectedFromItsFirstByte() {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(100))
        buffer.writeInteger(UInt8(0x7F))
        do {
            _ = try Frame.decode(from: &buffer)
            Issue.record("unknown type accepted")
        } catch {
            #expect(error.code == .badFrame)
        }
    }

    @Test func lengthShorterThanTheHeaderIsBad() {
        for length in 0..<6 as Range<UInt32> {
            var buffer = ByteBuffer()
            buffer.writeInteger(length)
            #expect(throws: WireError.self) { try Frame.decode(from: &buffer) }
        }
    }

    @Test(arguments: Fixtures.everyFrame())
    func everyTruncationFails(_ frame: Frame) {
        // Keep the length prefix honest about a shorter body: the body itself is cut.
        let full = Fixtures.bytes(frame)
        let body = Array(full[10...])
        guard !body.isEmpty else { return }
        for cut in 0..<body.count {
            let bytes = Fixtures.raw(type: full[4], flags: full[5], id: UInt32(bigEndian: full[6..<10].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }), body: Array(body[..<cut]))
            do {
                let decoded = try Fixtures.decodeOne(bytes)
                Issue.record("truncated \(frame.type) at \(cut) decoded as \(String(describing: decoded))")
            } catch {
                #expect(error.code == .badFrame || error.code == .invalidEvent || error.code == .invalidTopic)
                #expect(error.inReplyTo == frame.type)
            }
        }
    }

    @Test func trailingBytesAreRejected() {
        var bytes = Fixtures.bytes(.credit(subscriptionID: 1, count: 1))
        bytes.append(0)
        bytes[3] += 1
        #expect(throws: WireError.self) { try Fixtures.decodeOne(bytes) }
    }

    @Test func malformedFieldsGetTheirCodes() throws {
        func code(_ bytes: [UInt8]) -> WireErrorCode? {
            do {
                _ = try Fixtures.decodeOne(bytes)
                return nil
            } catch {
                return error.code
            }
        }
        let ack = FrameType.ack.rawValue
        // Topic "a+b" is not a topic.
        #expect(code(Fixtures.raw(type: ack, id: 1, body: [0, 3] + Array("a+b".utf8) + [0, 0, 0, 0] + Array(repeating: 0, count: 8))) == .invalidTopic)
        // Invalid UTF-8 in a topic.
        #expect(code(Fixtures.raw(type: ack, id: 1, body: [0, 2, 0xC3, 0x28] + Array(repeating: 0, count: 12))) == .badFrame)
        // Pattern with # not last.
        var subscribe = ByteBuffer()
        subscribe.writeInteger(UInt16(3))
        subscribe.writeString("#/a")
        subscribe.writeBytes([0] + Array(repeating: 0, count: 8) + [0, 0, 0, 1] + [0])
        #expect(code(Fixtures.raw(type: FrameType.subscribe.rawValue, id: 1, body: Array(subscribe.readableBytesView))) == .invalidTopic)
        // Undefined flag bit.
        #expect(code(Fixtures.raw(type: FrameType.ping.rawValue, flags: 0x02, body: [])) == .badFrame)
        // HELLO must have id 0; PUBLISH must not.
        #expect(code(Fixtures.raw(type: FrameType.goodbye.rawValue, id: 5, body: [])) == .badFrame)
        #expect(code(Fixtures.raw(type: FrameType.unsubscribe.rawValue, id: 0, body: [])) == .badFrame)
        // CREDIT of zero.
        #expect(code(Fixtures.raw(type: FrameType.credit.rawValue, id: 1, body: [0, 0, 0, 0])) == .badFrame)
        // An event whose bytes are not an event.
        #expect(code(Fixtures.raw(type: FrameType.publish.rawValue, id: 1, body: [9, 9, 9])) == .invalidEvent)
        // A batch count that could never fit is refused before anything is reserved.
        #expect(code(Fixtures.raw(type: FrameType.publishBatch.rawValue, id: 1, body: [0xFF, 0xFF, 0xFF, 0xFF])) == .badFrame)
        // Earliest with a non-zero value.
        var earliest = ByteBuffer()
        earliest.writeInteger(UInt16(1))
        earliest.writeString("a")
        earliest.writeBytes([0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0])
        #expect(code(Fixtures.raw(type: FrameType.subscribe.rawValue, id: 1, body: Array(earliest.readableBytesView))) == .badFrame)
    }

    @Test func errorsCarryTheFramesTypeAndID() {
        do {
            _ = try Fixtures.decodeOne(Fixtures.raw(type: FrameType.publish.rawValue, id: 77, body: [1]))
        } catch {
            #expect(error.streamID == 77)
            #expect(error.inReplyTo == .publish)
            #expect(error.isFatal)
        }
    }

    @Test func knownBytesOfAPing() {
        // The worked example in docs/protocol.md.
        #expect(Fixtures.bytes(.ping(nonce: 0x0102_0304)) == [0, 0, 0, 6, 0x03, 0x00, 0x01, 0x02, 0x03, 0x04])
        #expect(Fixtures.bytes(.credit(subscriptionID: 1, count: 64))
                == [0, 0, 0, 10, 0x23, 0x00, 0, 0, 0, 1, 0, 0, 0, 64])
        #expect(Fixtures.bytes(.hello(Hello(minVersion: 1, maxVersion: 1, clientName: "cli")))
                == [0, 0, 0, 15, 0x01, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 3, 0x63, 0x6C, 0x69])
    }

    @Test func workedExampleInTheProtocolDocument() throws {
        func hex(_ text: String) -> [UInt8] { text.split(separator: " ").map { UInt8($0, radix: 16)! } }
        let smallest = try EventCodec.decode(hex("01 00 00 00 00 01 61 00 00 00"))
        let conversation: [(Frame, String)] = [
            (.hello(Hello(minVersion: 1, maxVersion: 1, clientName: "cli")),
             "00 00 00 0F 01 00 00 00 00 00 00 01 00 01 00 03 63 6C 69"),
            (.welcome(Welcome(version: 1, serverName: "node-a", maxFrameLength: 1_114_112,
                              heartbeatIntervalMilliseconds: 10_000, maxInFlightPublishes: 128)),
             "00 00 00 1C 02 00 00 00 00 00 00 01 00 06 6E 6F 64 65 2D 61 00 11 00 00 00 00 27 10 00 00 00 80"),
            (.publish(requestID: 1, event: smallest),
             "00 00 00 10 10 00 00 00 00 01 01 00 00 00 00 01 61 00 00 00"),
            (.publishAck(requestID: 1, receipts: [PublishReceipt(partition: 0, offset: 42)]),
             "00 00 00 16 12 00 00 00 00 01 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 2A"),
            (.goodbye, "00 00 00 06 05 00 00 00 00 00"),
        ]
        for (frame, bytes) in conversation {
            #expect(Fixtures.bytes(frame) == hex(bytes))
            #expect(try Fixtures.decodeOne(hex(bytes)) == frame)
        }
        #expect(WireProtocol.defaultMaxFrameLength == 1_114_112)
    }

    @Test func randomGarbageNeverCrashes() {
        var rng = SeededRandom(seed: 0x5EED_0001)
        var outcomes = (frames: 0, needMore: 0, errors: 0)
        for _ in 0..<5_000 {
            let count = Int.random(in: 0...80, using: &rng)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // Half the time make the prefix plausible so the body decoders see the garbage.
            if count >= 6, Bool.random(using: &rng) {
                let length = UInt32(count - 4)
                withUnsafeBytes(of: length.bigEndian) { bytes.replaceSubrange(0..<4, with: $0) }
                bytes[4] = FrameType.allCases.randomElement(using: &rng)!.rawValue
                bytes[5] = UInt8.random(in: 0...1, using: &rng)
            }
            var buffer = ByteBuffer(bytes: bytes)
            do {
                while let _ = try Frame.decode(from: &buffer, maxFrameLength: 4096) { outcomes.frames += 1 }
                outcomes.needMore += 1
            } catch {
                outcomes.errors += 1
            }
        }
        #expect(outcomes.errors > 0 && outcomes.needMore > 0)
    }

    @Test func mutatedValidFramesNeverCrash() {
        var rng = SeededRandom(seed: 0x5EED_0002)
        let encodings = Fixtures.everyFrame().map(Fixtures.bytes)
        for _ in 0..<5_000 {
            var bytes = encodings.randomElement(using: &rng)!
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                // Leave the length prefix alone most of the time so the body is what gets damaged.
                let index = Int.random(in: (bytes.count > 10 && Bool.random(using: &rng) ? 10 : 4)..<bytes.count, using: &rng)
                bytes[index] ^= UInt8.random(in: 1...255, using: &rng)
            }
            var buffer = ByteBuffer(bytes: bytes)
            do {
                if let frame = try Frame.decode(from: &buffer) {
                    // Anything that decodes must re-encode to a frame that decodes the same.
                    var again = frame.encoded()
                    #expect(try Frame.decode(from: &again) == frame)
                }
            } catch {
                #expect(error.isFatal)
            }
        }
    }

    @Test func longErrorMessagesAreClipped() throws {
        let long = String(repeating: "é", count: 40_000)  // 80,000 bytes
        let frame = Frame.error(WireError(.internalError, long))
        guard case .error(let decoded)? = try Fixtures.decodeOne(Fixtures.bytes(frame)) else {
            Issue.record("not an error frame")
            return
        }
        #expect(decoded.message.utf8.count <= 65_535)
        #expect(decoded.message.allSatisfy { $0 == "é" })
    }

    @Test func eventFramesFromStoredBytesMatchTheDecodedEncoding() throws {
        let event = Fixtures.event()
        let decodedForm = Frame.event(EventDelivery(subscriptionID: 7, partition: 3, offset: 12_345, event: event)).encoded()
        var stored = ByteBuffer()
        Frame.encodeEvent(subscriptionID: 7, partition: 3, offset: 12_345, encodedEvent: EventCodec.encode(event), into: &stored)
        #expect(stored == decodedForm)
        #expect(try Frame.decode(from: &stored) == .event(EventDelivery(subscriptionID: 7, partition: 3, offset: 12_345, event: event)))
    }
}
