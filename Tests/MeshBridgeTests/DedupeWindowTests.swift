import MeshCore
import Testing
@testable import MeshBridge

@Suite struct DedupeWindowTests {
    @Test func boundedPerOriginAndRoundTripsThroughTheCheckpoint() throws {
        var w = DedupeWindow(limits: .init(perOrigin: 3, maxAgeMicros: 1_000_000))
        for i in 0..<5 { w.insert(origin: "a", id: "e\(i)", at: 10) }
        w.insert(origin: "b", id: "x", at: 10)
        #expect(!w.contains(origin: "a", id: "e1"))
        #expect(w.contains(origin: "a", id: "e4"))
        #expect(!w.contains(origin: "b", id: "e4"))
        let bytes = DedupeCheckpoint.encode(positions: [.init(topic: "t", partition: 0): 42], window: w)
        let back = try #require(DedupeCheckpoint.decode(bytes, limits: w.limits))
        #expect(back.positions[.init(topic: "t", partition: 0)] == 42)
        #expect(back.window.contains(origin: "a", id: "e2") && back.window.contains(origin: "b", id: "x"))
        var torn = bytes
        torn[7] ^= 1
        #expect(DedupeCheckpoint.decode(torn, limits: w.limits) == nil)
        // Age: an id recorded long before the newest one is forgotten.
        w.insert(origin: "b", id: "y", at: 5_000_000)
        #expect(!w.contains(origin: "b", id: "x"))
    }

    @Test func meshgateIdsAreKeptAsTheirBitsAndOtherIdsAsText() throws {
        let id = EventID.next().description
        #expect(DedupeID(id) == .ulid(try #require(EventID(id))))
        // Ids EventID would parse leniently (lower case, I/L/O) differ as strings: they stay text,
        // so none of them is taken for a duplicate of the canonical one.
        let lower = id.lowercased()
        #expect(DedupeID(lower) == .text(lower))
        #expect(DedupeID("order-42") == .text("order-42"))
        var w = DedupeWindow()
        w.insert(origin: "a", id: id, at: 1)
        w.insert(origin: "a", id: "order-42", at: 1)
        #expect(w.contains(origin: "a", id: id) && !w.contains(origin: "a", id: lower))
        let bytes = DedupeCheckpoint.encode(positions: [:], window: w)
        let back = try #require(DedupeCheckpoint.decode(bytes, limits: w.limits))
        #expect(back.window.contains(origin: "a", id: id) && back.window.contains(origin: "a", id: "order-42"))
        #expect(back.window.entries.first?.ids.map(\.id.text) == [id, "order-42"])
    }
}
