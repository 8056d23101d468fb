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
}
