import Foundation
import MeshHTTP
import MeshTestSupport
import Testing

/// Clients no one here wrote: the official CloudEvents Python SDK and curl.
@Suite struct InteropTests {
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let repo = here.deletingLastPathComponent().deletingLastPathComponent()

    /// Runs a program to completion; returns its exit status and combined output.
    static func run(_ executable: String, _ arguments: [String], stdin: Data? = nil) async throws -> (status: Int32, output: String) {
        try await ChildProcess.run(executable, arguments, stdin: stdin.map { [UInt8]($0) })
    }

    @Test func cloudEventsPythonSDKRoundTrips() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        let script = Self.here.appendingPathComponent("interop/cloudevents_sdk.py").path
        let port = gw.port
        let result = try await Self.run("python3", [script, String(port), "interop/sdk"])
        #expect(result.status == 0, "the CloudEvents SDK check failed (scripts/setup.sh installs the SDK):\n\(result.output)")
        #expect(result.output.contains("ok 5"), "\(result.output)")
        // And from this side: the SDK's binary-mode extension and key arrived as attributes.
        let events = try await gw.fetch("interop/sdk")
        #expect(events.first?["myext"] as? String == "value one")
        #expect(events.first?["partitionkey"] as? String == "p1")
    }

    @Test func curlPublishesInEveryMode() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        let url = "http://127.0.0.1:\(gw.port)/v1/publish/interop/curl"
        let binary = Data((0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let port = gw.port
        _ = port
        let runs: [(args: [String], stdin: Data?)] = [
            (["-sS", "--fail-with-body", "-X", "POST", "--data-binary", "@-", "-H", "Content-Type: application/octet-stream", url], binary),
            (["-sS", "--fail-with-body", "-X", "POST", "--data-binary", "hello from curl", "-H", "ce-specversion: 1.0", "-H", "ce-id: curl-1",
              "-H", "ce-source: /curl", "-H", "ce-type: curl.test", "-H", "Content-Type: text/plain", url], nil),
            (["-sS", "--fail-with-body", "-X", "POST", "-H", "Content-Type: application/cloudevents+json",
              "--data-binary", #"{"specversion":"1.0","id":"curl-2","source":"/curl","type":"curl.structured","data":{"x":[1,2,3]}}"#, url], nil),
        ]
        for run in runs {
            let r = try await Self.run("curl", run.args, stdin: run.stdin)
            #expect(r.status == 0, "\(r.output)")
            #expect(r.output.contains(#""topic":"interop/curl""#), "\(r.output)")
        }
        let events = try await gw.fetch("interop/curl")
        #expect(events.count == 3)
        #expect(try dataBytes(events[0]) == [UInt8](binary))
        #expect(events[1]["id"] as? String == "curl-1" && events[1]["type"] as? String == "curl.test")
        #expect(events[1]["data"] as? String == "hello from curl")
        #expect(events[2]["id"] as? String == "curl-2")
        let raw = try await gw.get("/v1/fetch/interop/curl?offset=2")
        #expect(raw.text.contains(#""data":{"x":[1,2,3]}"#))
        // curl reads an SSE stream too (the stream never ends by itself: curl stops at --max-time,
        // generous for a loaded machine).
        let sse = try await Self.run("curl", ["-sS", "-N", "--max-time", "8", "http://127.0.0.1:\(port)/v1/stream/interop/curl?from=earliest"])
        #expect(sse.output.components(separatedBy: "\ndata: ").count == 4, "\(sse.output)")
    }

    @Test func openAPIDocumentValidatesAndIsServed() async throws {
        let file = Self.repo.appendingPathComponent("openapi/meshgate.yaml").path
        let onDisk = try String(contentsOfFile: file, encoding: .utf8)
        #expect(OpenAPIDocument.yaml + "\n" == onDisk || OpenAPIDocument.yaml == onDisk,
                "Sources/MeshHTTP/OpenAPIDocument.swift is stale: run scripts/embed-openapi.sh")
        let check = """
            import sys, yaml
            from openapi_spec_validator import validate
            validate(yaml.safe_load(open(sys.argv[1])))
            print("valid")
            """
        let r = try await Self.run("python3", ["-c", check, file])
        #expect(r.status == 0 && r.output.contains("valid"), "openapi-spec-validator (scripts/setup.sh installs it) says:\n\(r.output)")
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        let served = try await gw.get("/v1/openapi.yaml")
        #expect(served.status == 200)
        #expect(served.header("content-type") == "application/yaml")
        #expect(served.text == OpenAPIDocument.yaml)
        // Every path the document lists answers something other than 404 here.
        for (template, path) in [("/v1/status", "/v1/status"), ("/v1/topics", "/v1/topics"), ("/healthz", "/healthz"), ("/readyz", "/readyz"),
                                 ("/v1/openapi.yaml", "/v1/openapi.yaml"), ("/v1/groups/{group}", "/v1/groups/g")] {
            #expect(onDisk.contains("\n  \(template):\n"), "\(template)")
            #expect(try await gw.get(path).status == 200, "\(path)")
        }
    }
}
