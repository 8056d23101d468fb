import MeshTestSupport
import Testing
@testable import MeshCore

/// The bridge's pass-through (docs/bridging.md): reading an encoding without decoding it must accept
/// exactly what decoding accepts, and appending a hop to the bytes must give what appending it to
/// the decoded event and encoding would.
@Suite struct EventEnvelopeTests {
    static func samples() throws -> [Event] {
        var many = try EventCodecTests.full()
        many.hops = (0..<130).map { "site-\($0)" }  // the hop count grows from 1 to 2 bytes on append
        var none = try EventCodecTests.full()
        none.hops = []
        return try EventCodecTests.samples() + [many, none]
    }

    @Test func readsWhatDecodingReadsAndAppendsTheHopEncodingWould() throws {
        for event in try Self.samples() {
            let bytes = EventCodec.encode(event)
            let envelope = try EventEnvelope(bytes)
            #expect(envelope.id == event.id && envelope.topic == event.topic && envelope.partitionKey == event.partitionKey)
            #expect(envelope.origin == event.hops.first && envelope.hopCount == event.hops.count)
            #expect(envelope.time == event.time?.microsecondsSinceEpoch && envelope.dataCount == event.data.count)
            #expect(envelope.isFilled == (!event.id.isEmpty && !event.source.isEmpty && !event.type.isEmpty && event.time != nil && !event.hops.isEmpty))
            for hop in event.hops { #expect(envelope.names(hop: hop)) }
            #expect(!envelope.names(hop: "elsewhere"))
            for hop in ["site-z", "サイト", ""] {
                var expected = event
                expected.hops.append(hop)
                #expect(envelope.appendingHop(hop) == EventCodec.encode(expected))
            }
            // Filling changes nothing in a filled event: what the broker would store is these bytes.
            if envelope.isFilled {
                #expect(EventCodec.encodeFilled(event, node: "n", ingress: "bridge", originHop: "n").bytes == bytes)
            }
        }
    }

    /// A publish stored from its bytes (the TCP path) must store what filling the decoded event
    /// would: every combination of the attributes filling sets, present or missing.
    @Test func fillingAnEncodingStoresWhatFillingTheDecodedEventWould() throws {
        let now = Timestamp(microsecondsSinceEpoch: 1_709_210_096_000_000)
        var shapes = 0
        for sample in try Self.samples() {
            for missing in 0..<32 {
                var event = sample
                if missing & 1 != 0 { event.id = "" }
                if missing & 2 != 0 { event.source = "" }
                if missing & 4 != 0 { event.type = "" }
                if missing & 8 != 0 { event.time = nil }
                if missing & 16 != 0 { event.hops = [] }
                let envelope = try EventEnvelope(EventCodec.encode(event))
                let (id, bytes) = envelope.filled(node: "n1", ingress: "tcp", originHop: "n1", now: now)
                #expect(!id.isEmpty)
                if !event.id.isEmpty { #expect(id == event.id) }
                var withID = event
                withID.id = id
                #expect(bytes == EventCodec.encodeFilled(withID, node: "n1", ingress: "tcp", originHop: "n1", now: now).bytes)
                // Stored bytes decode, and are filled: storing them again would not change them.
                #expect(try EventEnvelope(bytes).isFilled)
                shapes += 1
            }
        }
        #expect(shapes == 32 * (try Self.samples().count))
    }

    @Test func leavingASiteAppendsItUnlessItIsTheLastHop() throws {
        for event in try Self.samples() {
            for site in ["site-a", "site-b", "site-z"] {
                var expected = event
                if expected.hops.last != site { expected.hops.append(site) }
                let (bytes, time) = try EventCodec.leaving(EventCodec.encode(event), site: site)
                #expect(bytes == EventCodec.encode(expected))
                #expect(time == event.time?.microsecondsSinceEpoch)
            }
        }
    }

    @Test func retopicOfAnArrayKeepsTheArrayWhenTheTopicIsTheSame() throws {
        for event in try Self.samples() {
            let bytes = EventCodec.encode(event)
            let same = try EventCodec.retopic(bytes, topic: event.topic)
            #expect(same.bytes == bytes && same.partitionKey == event.partitionKey)
            var moved = event
            moved.topic = try Topic("elsewhere/" + event.topic.name)
            #expect(try EventCodec.retopic(bytes, topic: moved.topic).bytes == EventCodec.encode(moved))
        }
    }

    @Test func refusesExactlyWhatDecodingRefuses() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRandom(seed: seed)
        let valid = try [EventCodecTests.full(), EventCodecTests.samples()[2]].map(EventCodec.encode)
        var accepted = 0
        for round in 0..<20_000 {
            var bytes = valid[round % 2]
            if round % 5 == 0 {
                bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count))))
            } else {
                for _ in 0..<(1 + rng.next() % 3) {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
            let decoded = try? EventCodec.decode(bytes)
            let envelope = try? EventEnvelope(bytes)
            #expect((decoded == nil) == (envelope == nil), "seed \(seed), round \(round)")
            if let decoded, let envelope {
                accepted += 1
                #expect(envelope.id == decoded.id && envelope.topic == decoded.topic && envelope.origin == decoded.hops.first)
                #expect((envelope.extensionError == nil) == ((try? decoded.validateExtensions()) != nil))
            }
        }
        #expect(accepted > 0, "seed \(seed)")
        // The same errors on the precise cases decoding reports.
        for bytes: [UInt8] in [[], [2, 0], [1, 0, 1, 0xC3, 0, 0, 1, 0x61, 0, 0, 0], [1, 0, 0, 0, 0, 3, 0x61, 0x2F, 0x2F, 0, 0, 0],
                               [1, 0, 0, 0, 0, 1, 0x61, 2, 1, 0x62, 0, 1, 0x61, 0, 0, 0], [1, 0, 0, 0, 0, 1, 0x61, 0, 0, 0, 7]] {
            var decodeError: EventDecodingError?
            do { _ = try EventCodec.decode(bytes) } catch { decodeError = error }
            var envelopeError: EventDecodingError?
            do { _ = try EventEnvelope(bytes) } catch { envelopeError = error }
            #expect(decodeError != nil && envelopeError == decodeError)
        }
    }

    @Test func namesBadExtensionsAsPublishingWould() throws {
        var event = try EventCodecTests.minimal()
        event.extensions["Bad-Name"] = "x"
        let envelope = try EventEnvelope(EventCodec.encode(event))
        var expected: EventError?
        do { try event.validateExtensions() } catch { expected = error }
        #expect(expected != nil && envelope.extensionError == expected)
    }
}
