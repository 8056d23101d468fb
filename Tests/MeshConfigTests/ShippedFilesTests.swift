import Foundation
import MeshConfig
import MeshRouting
import MeshTestSupport
import Testing

/// The repository root, found from this file's path.
let repositoryRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

struct ShippedFilesTests {
    /// Every file in routes/ and examples/ validates against schema/routes.schema.json.
    @Test func routeFilesValidateAgainstTheJSONSchema() async throws {
        let (status, text) = try await ChildProcess.run("python3", [repositoryRoot + "/scripts/validate-route-schema.py",
                                                                   repositoryRoot + "/routes", repositoryRoot + "/examples"])
        #expect(status == 0, "\(text)")
        #expect(text.contains("0 invalid"), "\(text)")
    }

    /// The schema really rejects things (so the test above cannot pass vacuously).
    @Test func theSchemaRejectsABadFile() async throws {
        let dir = NSTemporaryDirectory() + "meshgate-schema-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "version: 1\nroutes:\n  - {name: a, form: x, to: [{topic: b}]}\n".write(toFile: dir + "/bad.yaml", atomically: true, encoding: .utf8)
        let (status, text) = try await ChildProcess.run("python3", [repositoryRoot + "/scripts/validate-route-schema.py", dir])
        #expect(status == 1, "\(text)")
    }

    @Test func shippedRoutesLoadAndTheirTestsPass() throws {
        let table = try RouteLoader.load(path: repositoryRoot + "/routes")
        #expect(!table.routes.isEmpty)
        // Example routes are log-to-log only, so `make run` works without brokers.
        for r in table.routes {
            for d in r.destinations { if case .connector = d.target { Issue.record("\(r.name) uses a connector") } }
        }
        let files = RouteTestRunner.testFiles(at: repositoryRoot + "/routes")
        #expect(!files.isEmpty)
        for f in files {
            for c in try RouteTestRunner.parse(file: f, text: try String(contentsOfFile: f, encoding: .utf8)) {
                let outcome = RouteTestRunner.run(c, table: table)
                #expect(outcome.passed, "\(c.name): \(outcome.failures)")
            }
        }
        let federation = try RouteLoader.load(path: repositoryRoot + "/examples", environment: ["BILLING_SECRET": "whsec_eA==", "SITE_B_TOKEN": "y"])
        #expect(federation.connectors.count == 3)
    }

    @Test func aFailingRouteTestSaysWhatHappened() throws {
        let table = try RouteLoader.load(sources: [("r.yaml", "version: 1\nroutes:\n  - {name: r, from: \"a/+\", to: [{topic: \"b/{1}\"}]}\n")])
        let cases = try RouteTestRunner.parse(file: "t.test.yaml", text: """
        version: 1
        tests:
          - name: wrong topic
            given: {topic: a/x}
            expect: [{route: r, topic: b/y}]
        """)
        let outcome = RouteTestRunner.run(cases[0], table: table)
        #expect(outcome.failures == [
            "t.test.yaml:5:14: expected a delivery to route r topic b/y, but none matched",
            "unexpected delivery: route r → log topic b/x",
            "actual deliveries: r → log topic b/x",
        ])
    }
}
