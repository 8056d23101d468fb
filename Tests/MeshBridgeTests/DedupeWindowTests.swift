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

    /// The id set against `Set<DedupeID>` as a model, through random inserts and removals of ids
    /// that crowd its table: runs of consecutive ids (as one millisecond's ids are), the all-zero
    /// id its empty slots are marked with, and text ids. Small pools keep the table small, so probe
    /// runs often wrap around its end and removals shift entries back across it.
    @Test(arguments: [6, 30, 300])
    func idSetAgreesWithASetThroughRandomInsertsAndRemovals(runs: Int) throws {
        var generator = SystemRandomNumberGenerator()
        var pool: [DedupeID] = [.ulid(EventID(high: 0, low: 0)), .ulid(EventID(high: 0, low: 1)), .text("order-1"), .text("")]
        for run in 0..<runs {
            let base = EventID.next()
            for k in 0..<UInt64(5) { pool.append(.ulid(EventID(high: base.high, low: base.low &+ k))) }
            pool.append(.ulid(EventID(high: UInt64(run), low: .max)))
        }
        var set = DedupeIDSet()
        var model = Set<DedupeID>()
        // A copy taken halfway (as a checkpoint takes one) keeps what it held while the set changes.
        var snapshot: (set: DedupeIDSet, model: Set<DedupeID>)?
        let steps = 20_000
        for step in 0..<steps {
            if step == steps / 2 { snapshot = (set, model) }
            let id = pool.randomElement(using: &generator)!
            // Mostly inserts in the first half, mostly removals in the second: the table fills
            // close to its load limit, then empties.
            let inserting = Int.random(in: 0..<100, using: &generator) < (step < steps / 2 ? 80 : 30)
            if inserting {
                #expect(set.insert(id) == model.insert(id).inserted)
            } else {
                set.remove(id)
                model.remove(id)
            }
            if step % 200 == 0 || step == steps - 1 {
                #expect(set.count == model.count)
                for candidate in pool where set.contains(candidate) != model.contains(candidate) {
                    Issue.record("step \(step): \(candidate) is \(set.contains(candidate) ? "in" : "not in") the set, the model says otherwise")
                }
            }
        }
        let copy = try #require(snapshot)
        #expect(copy.set.count == copy.model.count)
        #expect(pool.allSatisfy { copy.set.contains($0) == copy.model.contains($0) })
    }

    /// A set no copy shares changes its table in place; one a copy shares gets a table of its
    /// own once, on its first change (a window holds tables of 16 MiB).
    @Test func theTableIsCopiedOnlyWhileACopyOfTheSetSharesIt() {
        var set = DedupeIDSet()
        let ids = (0..<100).map { _ in DedupeID.ulid(EventID.next()) }
        for id in ids { set.insert(id) }
        let table = set.tableIdentity
        set.remove(ids[0])
        set.insert(ids[0])
        #expect(set.tableIdentity == table)
        let copy = set
        set.remove(ids[1])
        let own = set.tableIdentity
        #expect(own != table && copy.tableIdentity == table && copy.contains(ids[1]) && !set.contains(ids[1]))
        set.remove(ids[2])
        set.insert(ids[1])
        #expect(set.tableIdentity == own)
    }

    /// Which entries a removal shifts back, including probe runs that wrap around the table's end
    /// (slots 14, 15, 0, 1 of a 16-slot table), which random tables reach too rarely to rely on.
    @Test func aRemovalShiftsBackOnlyEntriesWhoseHomeIsNotPastTheGap() {
        // No wrap: the gap at 3, the entry at 5.
        #expect(!DedupeIDSet.stays(home: 2, gap: 3, at: 5))
        #expect(!DedupeIDSet.stays(home: 3, gap: 3, at: 5))
        #expect(DedupeIDSet.stays(home: 4, gap: 3, at: 5))
        #expect(DedupeIDSet.stays(home: 5, gap: 3, at: 5))
        // Wrapped: the gap at 14, the entry at 1.
        #expect(!DedupeIDSet.stays(home: 13, gap: 14, at: 1))
        #expect(!DedupeIDSet.stays(home: 14, gap: 14, at: 1))
        #expect(DedupeIDSet.stays(home: 15, gap: 14, at: 1))
        #expect(DedupeIDSet.stays(home: 0, gap: 14, at: 1))
        #expect(DedupeIDSet.stays(home: 1, gap: 14, at: 1))
        #expect(!DedupeIDSet.stays(home: 2, gap: 14, at: 1))
    }
}
