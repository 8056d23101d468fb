import Foundation
import MeshGateway
import Testing

/// The admin API's view of routing: `GET /v1/routes`, `POST /v1/routes/reload`,
/// `GET /v1/connectors`, and `/readyz` following whether the route files load.
@Suite struct RoutesAPITests {
    static let good = """
        version: 1
        routes:
          - name: copy
            from: "in/+"
            to: [{topic: "out/{1}"}]
        """

    static func write(_ dir: String, _ text: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try text.write(toFile: dir + "/main.yaml", atomically: true, encoding: .utf8)
    }

    @Test func routesAreServedAndDeliverAndReloadReportsErrors() async throws {
        let routes = NSTemporaryDirectory() + "meshgate-routes-\(UUID().uuidString.prefix(8))"
        try Self.write(routes, Self.good)
        defer { try? FileManager.default.removeItem(atPath: routes) }
        let g = try await TestGateway { $0.routesDirectory = routes }

        // Routing runs: an event on in/a lands on out/a.
        let published = try await g.post("/v1/publish/in/a", "hello")
        #expect(published.status == 200)
        var delivered: [[String: Any]] = []
        for _ in 0..<200 where delivered.isEmpty {
            let r = try await g.get("/v1/fetch/out/a?partition=0&offset=0")
            if r.status == 200 { delivered = try json(r)["events"] as? [[String: Any]] ?? [] }
            if delivered.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(delivered.count == 1)
        #expect(try dataBytes(delivered[0]) == Array("hello".utf8))
        #expect(try await g.get("/readyz").status == 200)

        let table = try json(try await g.get("/v1/routes"))
        #expect(table["generation"] as? Int == 1)
        #expect(table["loaded"] as? Bool == true)
        #expect((table["routes"] as? [[String: Any]])?.first?["name"] as? String == "copy")

        let connectors = try json(try await g.get("/v1/connectors"))
        let pairs = try #require(connectors["destinations"] as? [[String: Any]])
        #expect(pairs.first?["group"] as? String == "route:copy:0")

        // The route's cursor shows as a group holding real topics' offsets only (its internal
        // creation marker has an empty topic, which the OpenAPI schema forbids; found by schemathesis).
        let group = try json(try await g.get("/v1/groups/route:copy:0"))
        let offsets = try #require(group["offsets"] as? [[String: Any]])
        #expect(offsets.map { $0["topic"] as? String } == ["in/a"], "\(offsets)")
        #expect(offsets.first?["offset"] as? Int == 1)

        // A broken file is rejected with its file:line:column; the running table stays.
        try Self.write(routes, Self.good + "\n    bogus_key: 1\n")
        let rejected = try await g.post("/v1/routes/reload", "")
        try expectProblem(rejected, 422, "routes.invalid", detail: "main.yaml:")
        let after = try json(try await g.get("/v1/routes"))
        #expect(after["generation"] as? Int == 1)
        #expect((after["last_error"] as? String)?.contains("bogus_key") == true)

        // (The directory watcher may also pick the fix up: the generation only has to move on.)
        try Self.write(routes, Self.good)
        let accepted = try await g.post("/v1/routes/reload", "")
        #expect(accepted.status == 200)
        let generation = try #require(try json(accepted)["generation"] as? Int)
        #expect(generation >= 2)
        // The table served is that generation's or, if the watcher reloaded the same files since,
        // a later one; either way loaded without an error.
        let served = try json(try await g.get("/v1/routes"))
        #expect((served["generation"] as? Int ?? 0) >= generation)
        #expect(served["loaded"] as? Bool == true && served["last_error"] as? String == nil, "\(served)")
        try await g.stop()
    }

    @Test func badRouteFilesAtStartLeaveTheGatewayNotReady() async throws {
        let routes = NSTemporaryDirectory() + "meshgate-routes-\(UUID().uuidString.prefix(8))"
        try Self.write(routes, "version: 2\nroutes: []\n")
        defer { try? FileManager.default.removeItem(atPath: routes) }
        let g = try await TestGateway { $0.routesDirectory = routes }
        var ready = try await g.get("/readyz")
        for _ in 0..<100 where ready.status == 200 {
            try await Task.sleep(for: .milliseconds(20))
            ready = try await g.get("/readyz")
        }
        try expectProblem(ready, 503, "not_ready", detail: "route files")
        try await g.stop()
    }

    @Test func withoutARoutesDirectoryRoutingIsOff() async throws {
        let g = try await TestGateway()
        let table = try json(try await g.get("/v1/routes"))
        #expect(table["loaded"] as? Bool == false)
        try expectProblem(try await g.post("/v1/routes/reload", ""), 503, "not_ready", detail: "routing is off")
        try await g.stop()
    }
}
