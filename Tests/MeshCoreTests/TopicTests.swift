import Testing
@testable import MeshCore

@Suite struct TopicTests {
    @Test(arguments: [
        "a", "a/b", "sensors/room-1/temp", "orders/2024/05/01", "é/日本/🚀", "$SYS/broker",
        String(repeating: "x", count: 255), "a.b_c-d:e@f", "A/b/C",
    ])
    func acceptsValidTopics(_ name: String) throws {
        let topic = try Topic(name)
        #expect(topic.name == name)
        #expect(topic.description == name)
        #expect(topic.levelCount == topic.levels.count)
    }

    @Test func exposesLevels() throws {
        let topic = try Topic("a/bc/日本")
        #expect(topic.levels == ["a", "bc", "日本"])
        #expect(topic.levelCount == 3)
    }

    struct Rejection: Sendable, CustomStringConvertible {
        let input: String
        let level: Int?
        let byte: Int?
        let message: String
        var description: String { input.debugDescription }
    }

    static let rejections: [Rejection] = [
        Rejection(input: "", level: nil, byte: nil, message: "invalid topic \"\": a topic is 1 to 255 bytes, this one is 0"),
        Rejection(input: String(repeating: "x", count: 256), level: nil, byte: nil,
                  message: "invalid topic \"\(String(repeating: "x", count: 256))\": a topic is 1 to 255 bytes, this one is 256"),
        Rejection(input: "a//b", level: 2, byte: 2, message: "invalid topic \"a//b\": level 2 is empty (byte 2)"),
        Rejection(input: "/a", level: 1, byte: 0, message: "invalid topic \"/a\": level 1 is empty (byte 0)"),
        Rejection(input: "a/", level: 2, byte: 2, message: "invalid topic \"a/\": level 2 is empty (byte 2)"),
        Rejection(input: "/", level: 1, byte: 0, message: "invalid topic \"/\": level 1 is empty (byte 0)"),
        Rejection(input: "a/b+/c", level: 2, byte: 3,
                  message: "invalid topic \"a/b+/c\": level 2 contains \"+\" (byte 3); wildcards belong in patterns, not topics"),
        Rejection(input: "a/#", level: 2, byte: 2,
                  message: "invalid topic \"a/#\": level 2 contains \"#\" (byte 2); wildcards belong in patterns, not topics"),
        Rejection(input: "a b", level: 1, byte: 1, message: "invalid topic \"a b\": level 1 contains whitespace U+0020 (byte 1)"),
        Rejection(input: "a/b\u{0}", level: 2, byte: 3, message: "invalid topic \"a/b\\u{0}\": level 2 contains NUL (byte 3)"),
        Rejection(input: "x/y\tz", level: 2, byte: 3,
                  message: "invalid topic \"x/y\\u{9}z\": level 2 contains whitespace U+0009 (byte 3)"),
        Rejection(input: "x\n", level: 1, byte: 1,
                  message: "invalid topic \"x\\u{A}\": level 1 contains whitespace U+000A (byte 1)"),
        Rejection(input: "é/a\u{00A0}b", level: 2, byte: 4,
                  message: "invalid topic \"é/a\\u{A0}b\": level 2 contains whitespace U+00A0 (byte 4)"),
        Rejection(input: "日本/x/\u{3000}", level: 3, byte: 9,
                  message: "invalid topic \"日本/x/\\u{3000}\": level 3 contains whitespace U+3000 (byte 9)"),
        Rejection(input: "a/\u{7F}", level: 2, byte: 2,
                  message: "invalid topic \"a/\\u{7F}\": level 2 contains control character U+007F (byte 2)"),
        Rejection(input: "a/\u{85}", level: 2, byte: 2,
                  message: "invalid topic \"a/\\u{85}\": level 2 contains whitespace U+0085 (byte 2)"),
        Rejection(input: "a/\u{9F}", level: 2, byte: 2,
                  message: "invalid topic \"a/\\u{9F}\": level 2 contains control character U+009F (byte 2)"),
        Rejection(input: "a/b/\u{2028}", level: 3, byte: 4,
                  message: "invalid topic \"a/b/\\u{2028}\": level 3 contains whitespace U+2028 (byte 4)"),
    ]

    @Test(arguments: rejections)
    func rejectsInvalidTopics(_ r: Rejection) {
        #expect {
            try Topic(r.input)
        } throws: { error in
            guard let error = error as? TopicError else { return false }
            #expect(error.level == r.level)
            #expect(error.byteOffset == r.byte)
            #expect(error.message == r.message)
            #expect(error.description == r.message)
            #expect(error.code == "topic.invalid")
            #expect(error.input == r.input)
            return true
        }
    }

    @Test func equalityIsByteWise() throws {
        let composed = try Topic("caf\u{E9}")
        let decomposed = try Topic("cafe\u{301}")
        #expect(composed.name == decomposed.name)  // String's canonical equivalence
        #expect(composed != decomposed)            // but topics compare bytes, like MQTT
        #expect(Set([composed, decomposed]).count == 2)
        #expect(try Topic("a/b") == Topic("a/b"))
    }
}
