import MeshCore
import Testing
@testable import MeshBridge

@Suite struct BridgeTopicTemplateTests {
    @Test func rendersTheTopicThePeerAndTheOrigin() throws {
        let t = try BridgeTopicTemplate(parsing: "from/{peer}/{origin}/{topic}")
        #expect(try t.render(topic: Topic("orders/new"), peer: "site-b", origin: "site-a").name == "from/site-b/site-a/orders/new")
        #expect(!t.isIdentity)
        #expect(try BridgeTopicTemplate(parsing: "{topic}").isIdentity)
        #expect(try BridgeTopicTemplate(parsing: "all-remote").render(topic: Topic("a/b"), peer: "p", origin: "o").name == "all-remote")
    }

    @Test func refusesWhatCannotRenderATopicAndSaysWhy() {
        func reason(_ text: String) -> String? {
            do { _ = try BridgeTopicTemplate(parsing: text); return nil } catch { return error.message }
        }
        #expect(reason("from/{site}/{topic}")?.contains("unknown placeholder {site}; use {topic}, {peer} or {origin}") == true)
        #expect(reason("from/{peer/{topic}")?.contains("unknown placeholder {peer/{topic}") == true)
        #expect(reason("from/peer}/{topic}")?.contains("a brace at byte 9 is not closed or not opened") == true)
        #expect(reason("from/{topic")?.contains("a brace at byte 5") == true)
        #expect(reason("#/{topic}")?.contains("it renders an invalid topic") == true)
        #expect(reason("/{topic}")?.contains("it renders an invalid topic") == true)
        #expect(reason("")?.contains("it renders an invalid topic") == true)
    }

    @Test func aSiteNameThatMakesAnInvalidTopicFailsTheRender() throws {
        let t = try BridgeTopicTemplate(parsing: "from/{peer}/{topic}")
        #expect(throws: TopicError.self) { try t.render(topic: Topic("a"), peer: "bad+site", origin: "x") }
    }
}
