import MeshTestSupport
import Testing
@testable import MeshCore

@Suite struct EventCodecTests {
    static func full() throws -> Event {
        Event(
            topic: try Topic("orders/eu/42"),
            id: "01HF7YAT00ABCDEFGHJKMNPQRS",
            source: "meshgate://node-a/http",
            type: "order.created",
            subject: "order-42",
            time: Timestamp(microsecondsSinceEpoch: 1_709_210_096_123_456),
            datacontenttype: "application/json",
            dataschema: "https://example.com/schemas/order.json",
            extensions: ["tenant": "acme", "region": "eu", "z9": "last", "a": ""],
            partitionKey: "customer-7",
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            tracestate: "congo=t61rcWkgMzE",
            hops: ["site-a", "site-b"],
            data: Array(#"{"total":120}"#.utf8))
    }

    static func minimal() throws -> Event { Event(topic: try Topic("a")) }

    static func samples() throws -> [Event] {
        var unicode = Event(topic: try Topic("日本/温度/🚀"), id: "ид-1", source: "источник", type: "тип.événement")
        unicode.subject = "sujet — ü"
        unicode.extensions["note"] = "😀 emoji\u{0}with nul"
        unicode.hops = ["サイト", ""]
        unicode.data = Array("données".utf8)
        var large = try full()
        large.data = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var negativeTime = try minimal()
        negativeTime.time = Timestamp(microsecondsSinceEpoch: -62_167_219_200_000_000)
        var longStrings = try minimal()
        longStrings.source = String(repeating: "s", count: 300)  // 2-byte length
        longStrings.extensions["big"] = String(repeating: "v", count: 20_000)  // 3-byte length
        return [try full(), try minimal(), unicode, large, negativeTime, longStrings]
    }

    @Test func roundTripsEveryShape() throws {
        for event in try Self.samples() {
            let bytes = EventCodec.encode(event)
            #expect(bytes.count == EventCodec.encodedSize(event))
            let decoded = try EventCodec.decode(bytes)
            #expect(decoded == event)
            #expect(decoded.extensions.dictionary == event.extensions.dictionary)
            let again = bytes.withUnsafeBytes { raw in Result { () throws(EventDecodingError) in try EventCodec.decode(raw) } }
            #expect(try again.get() == event)
            #expect(EventCodec.encode(decoded) == bytes)  // canonical
        }
    }

    @Test func encodingFilledEqualsEncodingTheFilledEvent() throws {
        let now = Timestamp(microsecondsSinceEpoch: 1_709_210_096_000_000)
        for event in try Self.samples() {
            let (id, bytes) = EventCodec.encodeFilled(event, node: "n1", ingress: "tcp", originHop: "n1", now: now)
            let filled = try EventCodec.decode(bytes)
            #expect(filled.id == id && !id.isEmpty)
            // Everything else is what `filled` sets, with the origin hop when there were none.
            var expected = event.filled(node: "n1", ingress: "tcp", now: now)
            expected.id = id
            if expected.hops.isEmpty { expected.hops = ["n1"] }
            #expect(filled == expected)
            #expect(bytes == EventCodec.encode(expected))
            // Attributes the event carried are kept, not replaced.
            if !event.id.isEmpty { #expect(id == event.id) }
            if event.time != nil { #expect(filled.time == event.time) }
        }
    }

    @Test func encodingIntoABufferWritesExactlyTheEncodingAndNothingBeyond() throws {
        for event in try Self.samples() {
            let size = EventCodec.encodedSize(event)
            var buffer = [UInt8](repeating: 0xEE, count: size + 16)
            buffer.withUnsafeMutableBytes { EventCodec.encode(event, size: size, into: $0) }
            #expect(Array(buffer[..<size]) == EventCodec.encode(event))
            #expect(buffer[size...].allSatisfy { $0 == 0xEE }, "the bytes after the encoding are untouched")
        }
    }

    @Test func retopicEqualsEncodingTheEventWithTheNewTopic() throws {
        for event in try Self.samples() {
            for name in ["out/" + event.topic.name, "x", "a/" + String(repeating: "b", count: 200)] {
                let topic = try Topic(name)
                let (bytes, key) = try EventCodec.encode(event).withUnsafeBytes { raw in
                    try EventCodec.retopic(raw, topic: topic)
                }
                var expected = event
                expected.topic = topic
                #expect(bytes == EventCodec.encode(expected))
                #expect(key == event.partitionKey)
            }
        }
        // A damaged header is refused as decode refuses it.
        var bad = EventCodec.encode(try Self.full())
        bad[0] = 9
        #expect(throws: EventDecodingError.self) { try bad.withUnsafeBytes { try EventCodec.retopic($0, topic: try Topic("x")) } }
        let cut = Array(EventCodec.encode(try Self.full()).prefix(12))
        #expect(throws: EventDecodingError.self) { try cut.withUnsafeBytes { try EventCodec.retopic($0, topic: try Topic("x")) } }
    }

    @Test func minimalEventIsSmallAndExact() throws {
        // version, flags, id "", source "", type "", topic "a", 0 extensions, 0 hops, 0 data
        #expect(EventCodec.encode(try Self.minimal()) == [1, 0, 0, 0, 0, 1, 0x61, 0, 0, 0])
    }

    @Test func layoutMatchesTheDocument() throws {
        var event = Event(topic: try Topic("t"), id: "i", source: "s", type: "y")
        event.time = Timestamp(microsecondsSinceEpoch: 0x0102_0304_0506_0708)
        event.partitionKey = "k"
        event.extensions["e"] = "v"
        event.hops = ["h"]
        event.data = [0xFF]
        #expect(EventCodec.encode(event) == [
            1, 0b0001_0010,
            1, 0x69, 1, 0x73, 1, 0x79, 1, 0x74,
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
            1, 0x6B,
            1, 1, 0x65, 1, 0x76,
            1, 1, 0x68,
            1, 0xFF,
        ])
    }

    @Test func appendsIntoAnExistingBuffer() throws {
        let event = try Self.full()
        var buffer: [UInt8] = [9, 9, 9]
        EventCodec.encode(event, into: &buffer)
        EventCodec.encode(event, into: &buffer)
        let single = EventCodec.encode(event)
        #expect(buffer == [9, 9, 9] + single + single)
    }

    @Test func emptyDataAndExtensions() throws {
        var event = try Self.full()
        event.data = []
        event.extensions = [:]
        event.hops = []
        #expect(try EventCodec.decode(EventCodec.encode(event)) == event)
    }

    // MARK: Errors

    static func expectDecodeError(_ bytes: [UInt8], _ kind: EventDecodingError.Kind, at offset: Int? = nil,
                                  sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try EventCodec.decode(bytes)
            Issue.record("decoded \(bytes) without error", sourceLocation: sourceLocation)
        } catch {
            #expect(error.kind == kind, "\(error.message)", sourceLocation: sourceLocation)
            if let offset { #expect(error.byteOffset == offset, "\(error.message)", sourceLocation: sourceLocation) }
            #expect(error.code == kind.rawValue, sourceLocation: sourceLocation)
        }
    }

    @Test func preciseErrors() {
        Self.expectDecodeError([], .truncated, at: 0)
        Self.expectDecodeError([2, 0], .unknownVersion, at: 0)
        Self.expectDecodeError([1, 0x80, 0, 0, 0, 1, 0x61, 0, 0, 0], .unknownFlags, at: 1)
        Self.expectDecodeError([1, 0, 0, 0, 0, 1, 0x61, 0, 0, 0, 7], .trailingBytes, at: 10)
        Self.expectDecodeError([1, 0, 0, 0, 0, 1, 0x61, 0, 0, 3, 1, 2], .truncated, at: 12)
        Self.expectDecodeError([1, 0, 1, 0xC3, 0, 0, 1, 0x61, 0, 0, 0], .invalidUTF8, at: 3)
        Self.expectDecodeError([1, 0, 0, 0, 0, 3, 0x61, 0x2F, 0x2F, 0, 0, 0], .invalidTopic, at: 5)
        Self.expectDecodeError([1, 0, 0, 0, 0, 0, 0, 0, 0], .invalidTopic, at: 5)
        // Non-minimal varint (1 spelled as 0x81 0x00) and an 11-byte varint.
        Self.expectDecodeError([1, 0, 0x81, 0x00, 0x61, 0, 0, 1, 0x61, 0, 0, 0], .invalidVarint, at: 2)
        Self.expectDecodeError([1, 0] + Array(repeating: 0xFF, count: 10) + [0x01], .invalidVarint, at: 2)
        Self.expectDecodeError([1, 0] + Array(repeating: 0xFF, count: 9) + [0x01], .truncated)
        // A huge count with few bytes behind it must fail before allocating.
        Self.expectDecodeError([1, 0, 0, 0, 0, 1, 0x61, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0, 0], .truncated, at: 7)
        // Extensions out of order, and repeated.
        Self.expectDecodeError([1, 0, 0, 0, 0, 1, 0x61, 2, 1, 0x62, 0, 1, 0x61, 0, 0, 0], .unsortedExtensions, at: 11)
        Self.expectDecodeError([1, 0, 0, 0, 0, 1, 0x61, 2, 1, 0x61, 0, 1, 0x61, 0, 0, 0], .unsortedExtensions, at: 11)
    }

    @Test func errorMessagesNameTheByte() {
        do {
            _ = try EventCodec.decode([1, 0, 5, 0x61])
            Issue.record("expected an error")
        } catch {
            #expect(error.message == "cannot decode event: truncated at byte 4: id needs 5 bytes, 1 remain")
            #expect(error.description == error.message)
        }
    }

    @Test func everyTruncatedPrefixThrows() throws {
        for event in try Self.samples().prefix(3) {
            let bytes = EventCodec.encode(event)
            for length in 0..<bytes.count {
                #expect(throws: EventDecodingError.self) { try EventCodec.decode(Array(bytes[..<length])) }
            }
        }
    }

    @Test func randomBytesNeverCrash() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRandom(seed: seed)
        let valid = EventCodec.encode(try Self.full())
        var decodedCount = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                // Pure noise, mostly with a plausible version byte so the decoder gets further.
                bytes = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                if !bytes.isEmpty, round % 4 == 0 { bytes[0] = 1 }
            } else {
                // A valid encoding with a few bytes flipped.
                bytes = valid
                for _ in 0..<(1 + rng.next() % 3) {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
            // Whatever decodes must re-encode to the same bytes (the encoding is canonical).
            if let event = try? EventCodec.decode(bytes) {
                decodedCount += 1
                #expect(EventCodec.encode(event) == bytes, "seed \(seed), round \(round)")
            }
        }
        #expect(decodedCount < 20_000, "seed \(seed)")
    }
}
