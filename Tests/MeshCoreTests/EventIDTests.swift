import Synchronization
import Testing
@testable import MeshCore

@Suite struct EventIDTests {
    @Test func spellsTwentySixCrockfordCharactersThatRoundTrip() throws {
        let id = EventID.next()
        let text = id.description
        #expect(text.utf8.count == 26)
        #expect(text.allSatisfy { "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains($0) })
        #expect(EventID(text) == id)
        #expect(EventID(text.lowercased()) == id)
        #expect(EventID("") == nil)
        #expect(EventID(String(text.dropLast())) == nil)
        #expect(EventID("8" + String(repeating: "0", count: 25)) == nil)  // > 128 bits
        #expect(EventID("7ZZZZZZZZZZZZZZZZZZZZZZZZZ") == EventID(high: .max, low: .max))
        #expect(EventID("0000000000000000000000000U") == nil)
    }

    /// `init?(canonical:)` takes exactly what `description` writes: every id spelled the way
    /// `init?(_:)` also reads but written otherwise stays out.
    @Test func theCanonicalParserTakesOnlyWhatDescriptionWrites() {
        func canonical(_ text: String) -> EventID? {
            var text = text
            return text.withUTF8 { EventID(canonical: UnsafeRawBufferPointer($0)) }
        }
        for id in [EventID.next(), EventID(high: 0, low: 0), EventID(high: .max, low: .max), EventID(high: 1 << 63, low: 31)] {
            #expect(canonical(id.description) == id)
        }
        let text = EventID.next().description
        #expect(canonical(text.lowercased()) == nil)
        for (i, spelling) in [(5, "I"), (5, "L"), (5, "O"), (5, "U"), (25, "-"), (25, "\u{0}")] {
            var bytes = Array(text.utf8)
            bytes[i] = Array(spelling.utf8)[0]
            #expect(canonical(String(decoding: bytes, as: UTF8.self)) == nil, "\(spelling) at \(i)")
        }
        #expect(canonical("8" + String(repeating: "0", count: 25)) == nil)  // > 128 bits
        #expect(canonical("Z" + String(repeating: "0", count: 25)) == nil)
        #expect(canonical(String(text.dropLast())) == nil)
        #expect(canonical(text + "0") == nil)
        #expect(canonical("") == nil)
        var high = Array(text.utf8)
        high[0] = 0xC3  // a byte above ASCII, where a digit should be
        #expect(high.withUnsafeBytes { EventID(canonical: $0) } == nil)
    }

    @Test func carriesItsMillisecond() {
        let generator = EventIDGenerator()
        let id = generator.next(milliseconds: 1_700_000_000_123)
        #expect(id.milliseconds == 1_700_000_000_123)
        #expect(id.description.hasPrefix("01HF7YAT"))  // the 48-bit time spelled in the first 10
    }

    @Test func increasesWithinOneMillisecondAndWhenTheClockStepsBack() {
        let generator = EventIDGenerator()
        var previous = generator.next(milliseconds: 1000)
        for ms: UInt64 in [1000, 1000, 999, 0, 1000, 1001, 1001, 500] {
            let id = generator.next(milliseconds: ms)
            #expect(id > previous)
            #expect(id.description > previous.description)  // text order == value order
            previous = id
        }
    }

    @Test func strictlyIncreasingAndUniqueAcrossThreads() async {
        let generator = EventIDGenerator()
        let perTask = 20_000
        let batches = await withTaskGroup(of: [EventID].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var ids: [EventID] = []
                    ids.reserveCapacity(perTask)
                    for _ in 0..<perTask { ids.append(generator.next()) }
                    return ids
                }
            }
            var all: [[EventID]] = []
            for await batch in group { all.append(batch) }
            return all
        }
        for batch in batches {
            // Each caller sees its own ids strictly increasing.
            #expect(zip(batch, batch.dropFirst()).allSatisfy { $0 < $1 })
        }
        let all = batches.flatMap { $0 }
        #expect(Set(all).count == all.count)
        #expect(Set(all.map(\.description)).count == all.count)
    }
}
