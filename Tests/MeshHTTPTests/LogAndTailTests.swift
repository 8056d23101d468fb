import Foundation
import MeshHTTP
import MeshTestSupport
import Testing

/// The executable's logging formats and `meshgate tail`, against real processes.
@Suite(.serialized) struct LogAndTailTests {
    typealias Child = ServeProcessTests.Child

    @Test func jsonLogsAreOneObjectPerLineAndStateChangesOnly() async throws {
        let dir = ScratchDirectory()
        let serve = try Child(["serve", "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--data", dir.path, "--routes", dir.path + "/routes"],
                              environment: ["MESHGATE_LOG_FORMAT": "json"])
        let port = try await serve.httpPort()
        let client = AdminClient(host: "127.0.0.1", port: port)
        for i in 0..<50 { _ = try await client.request(.POST, "/v1/publish/logs/t", body: Array("e\(i)".utf8)) }
        #expect(await serve.terminate() == 0)
        let lines = serve.output.split(separator: "\n")
        #expect(lines.count >= 5 && lines.count < 20, "one line per state change, none per event:\n\(serve.output)")
        for line in lines {
            let object = try #require(try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
            #expect(object["time"] is String && object["level"] is String && object["logger"] is String && object["message"] is String)
        }
        #expect(serve.output.contains(#""message":"flushing and closing the log""#))
    }

    @Test func textLogsAreTheDefaultAndAnUnknownFormatIsAUsageError() async throws {
        let bad = try Child(["serve", "--log-format", "xml"])
        #expect(await bad.exit() == 2)
        #expect(bad.output.contains("--log-format"), "\(bad.output)")
        let dir = ScratchDirectory()
        let serve = try Child(["serve", "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--data", dir.path, "--routes", dir.path + "/routes"])
        _ = try await serve.httpPort()
        #expect(await serve.terminate() == 0)
        #expect(serve.output.contains(" notice  meshgate: listening http=127.0.0.1:"), "\(serve.output)")
    }

    @Test func tailPrintsEventsAsTheyArriveWithTheirTraceID() async throws {
        let gw = try await TestGateway()
        let tcp = try await gw.tcpPort()
        let tail = try ChildProcess(meshgateBinary, ["tail", "tail/#", "--count", "2", "--server", "tcp://127.0.0.1:\(tcp)"])
        // The subscription starts at the end: publish until the first event shows up.
        var published = 0
        let deadline = ContinuousClock.now + .seconds(20)
        while !tail.text.contains("tail/a") && ContinuousClock.now < deadline {
            _ = try await gw.post("/v1/publish/tail/a", "{\"n\":\(published)}",
                                  headers: [("traceparent", TraceContextTests.traceparent), ("ce-type", "demo.created"),
                                            ("ce-specversion", "1.0"), ("ce-id", "t\(published)"), ("ce-source", "/t")])
            published += 1
            try await Task.sleep(for: .milliseconds(100))
        }
        _ = try await gw.post("/v1/publish/tail/b", "second")
        let output = try await tail.wait()
        #expect(tail.exitCode == 0, "\(output)")
        let lines = output.split(separator: "\n")
        #expect(lines.count == 2, "\(output)")
        #expect(lines.first?.contains("tail/a#0@") == true && lines.first?.contains("demo.created") == true, "\(output)")
        #expect(lines.first?.contains("trace=4bf92f35") == true, "\(output)")
        let json = try await ChildProcess.run(meshgateBinary, ["tail", "tail/b", "--from", "earliest", "--count", "1", "--json",
                                                               "--server", "tcp://127.0.0.1:\(tcp)"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any], "\(json.output)")
        #expect(object["topic"] as? String == "tail/b" && object["data"] as? String == "second" && object["offset"] as? Int == 0)
        try await gw.stop()
    }
}
