import Testing
@testable import MeshCore

@Suite struct EventTests {
    @Test func fillsMissingAttributesAtIngest() throws {
        let now = Timestamp(microsecondsSinceEpoch: 1_709_210_096_123_456)
        // A private generator: the shared one may already have handed out ids at a later clock
        // reading, and then (rightly) keeps counting from there.
        let event = Event(topic: try Topic("a/b"))
            .filled(node: "node-a", ingress: "http", now: now, ids: EventIDGenerator())
        #expect(event.source == "meshgate://node-a/http")
        #expect(event.type == "meshgate.publish")
        #expect(event.time == now)
        #expect(event.specversion == "1.0")
        let id = try #require(EventID(event.id))
        #expect(id.milliseconds == 1_709_210_096_123)
        try event.validate()
    }

    @Test func keepsAttributesTheProducerGave() throws {
        let time = Timestamp(microsecondsSinceEpoch: 5)
        let given = Event(topic: try Topic("a"), id: "x", source: "urn:s", type: "t", time: time)
        #expect(given.filled(node: "n", ingress: "tcp") == given)
    }

    @Test func idsOfFilledEventsIncrease() throws {
        let generator = EventIDGenerator()
        let base = Event(topic: try Topic("a"))
        let now = Timestamp.now()
        let ids = (0..<100).map { _ in base.filled(node: "n", ingress: "i", now: now, ids: generator).id }
        #expect(ids == ids.sorted())
        #expect(Set(ids).count == 100)
    }

    @Test(arguments: ["a", "abc123", "x0", String(repeating: "z", count: 20)])
    func acceptsAttributeNames(_ name: String) {
        #expect(Event.isValidAttributeName(name))
    }

    @Test(arguments: ["", "A", "a-b", "a_b", "é", String(repeating: "z", count: 21), "a b"])
    func rejectsAttributeNames(_ name: String) {
        #expect(!Event.isValidAttributeName(name))
    }

    @Test func validateNamesTheAttribute() throws {
        var event = Event(topic: try Topic("a"), id: "1", source: "s", type: "t")
        event.extensions["Bad-Name"] = "v"
        #expect {
            try event.validate()
        } throws: { error in
            guard let error = error as? EventError else { return false }
            return error.code == "event.invalid" && error.attribute == "Bad-Name"
                && error.message == "invalid event: attribute \"Bad-Name\" is not a valid attribute name (1 to 20 characters, a-z and 0-9 only)"
        }
        event.extensions["Bad-Name"] = nil
        event.extensions["partitionkey"] = "k"
        #expect(throws: EventError.self) { try event.validate() }
        event.extensions["partitionkey"] = nil
        try event.validate()
        event.id = ""
        #expect(throws: EventError(attribute: "id", reason: "is required and may not be empty")) { try event.validate() }
    }

    @Test func extensionsStaySortedAndUnique() {
        var ext: EventExtensions = ["b": "2", "a": "1", "c": "3"]
        ext["a"] = "one"
        ext["ab"] = "x"
        ext["c"] = nil
        #expect(ext.map(\.name) == ["a", "ab", "b"])
        #expect(ext.map(\.value) == ["one", "x", "2"])
        #expect(ext["ab"] == "x" && ext["zz"] == nil)
        #expect(ext.count == 3)
        #expect(EventExtensions(["y": "1", "x": "2"]).map(\.name) == ["x", "y"])
        #expect(EventExtensions(["y": "1", "x": "2"]) == ["x": "2", "y": "1"])
    }
}
