import MeshTestSupport
import Foundation
import MeshConfig
import MeshCore
import MeshLog
import MeshRouting
import Testing

@Suite(.serialized) struct RouteManagerTests {
    @Test func aBadFileKeepsTheRunningTableAndReportsTheError() async throws {
        let dir = ScratchDirectory()
        let routes = dir.path + "/routes"
        try FileManager.default.createDirectory(atPath: routes, withIntermediateDirectories: true)
        try "version: 1\nroutes:\n  - {name: copy, from: \"in/+\", to: [{topic: \"out/{1}\"}]}\n".write(toFile: routes + "/a.yaml", atomically: true, encoding: .utf8)
        let log = try openLog(dir.path)
        defer { log.close() }
        let manager = RouteManager(path: routes, engine: RouteEngine(log: log, logger: quietLogger), environment: [:], logger: quietLogger)
        let first = await manager.reload()
        #expect(first.ok && first.generation == 1 && first.changes?.started == ["route:copy:0"])
        #expect(manager.status.loaded && manager.status.routes.map(\.name) == ["copy"])

        try "version: 1\nroutes:\n  - {name: copy, from: \"in/+\", to: [{topic: \"out/{2}\"}]}\n".write(toFile: routes + "/a.yaml", atomically: true, encoding: .utf8)
        let bad = await manager.reload()
        #expect(!bad.ok && bad.generation == 1)
        #expect(bad.errors.map(\.message).first?.hasPrefix(routes + "/a.yaml:3:50: error: invalid topic template") == true)
        let status = manager.status
        #expect(status.generation == 1 && status.lastError != nil && status.failedReloads == 1)
        // The old table still delivers.
        try await publish(log, "in/x", id: "1")
        #expect(try await eventually { try events(log, "out/x").count == 1 })

        // Fixing it clears the error; an added file adds a route, the unchanged pair keeps running.
        try "version: 1\nroutes:\n  - {name: copy, from: \"in/+\", to: [{topic: \"out/{1}\"}]}\n".write(toFile: routes + "/a.yaml", atomically: true, encoding: .utf8)
        try "version: 1\nroutes:\n  - {name: more, from: \"in/#\", to: [{topic: \"more/{1}\"}]}\n".write(toFile: routes + "/b.yaml", atomically: true, encoding: .utf8)
        let good = await manager.reload()
        #expect(good.ok && good.generation == 2)
        #expect(good.changes?.kept == ["route:copy:0"] && good.changes?.started == ["route:more:0"])
        #expect(manager.status.lastError == nil && manager.status.files.count == 2)
        await manager.stop()
    }

    @Test func theWatcherReloadsWhenFilesChange() async throws {
        let dir = ScratchDirectory()
        let routes = dir.path + "/routes"
        try FileManager.default.createDirectory(atPath: routes, withIntermediateDirectories: true)
        try "version: 1\nroutes: []\n".write(toFile: routes + "/a.yaml", atomically: true, encoding: .utf8)
        let log = try openLog(dir.path)
        defer { log.close() }
        let manager = RouteManager(path: routes, engine: RouteEngine(log: log, logger: quietLogger), environment: [:], logger: quietLogger)
        await manager.reload()
        manager.watch(every: .milliseconds(50))
        try await Task.sleep(for: .milliseconds(100))
        try "version: 1\nroutes:\n  - {name: w, from: \"w/+\", to: [{topic: \"wo/{1}\"}]}\n".write(toFile: routes + "/b.yaml", atomically: true, encoding: .utf8)
        #expect(try await eventually(5) { manager.status.routes.map(\.name) == ["w"] })
        #expect(manager.status.generation == 2)
        try await publish(log, "w/1", id: "x")
        #expect(try await eventually { try events(log, "wo/1").count == 1 })
        await manager.stop()
    }

    @Test func theStatusNeverShowsSecrets() async throws {
        let dir = ScratchDirectory()
        let routes = dir.path + "/routes"
        try FileManager.default.createDirectory(atPath: routes, withIntermediateDirectories: true)
        try """
        version: 1
        connectors:
          hook: {type: webhook, url: "http://h/x", secret: "${S}"}
        routes:
          - {name: r, from: "a/#", to: [{connector: hook, topic: "b"}]}
        """.write(toFile: routes + "/a.yaml", atomically: true, encoding: .utf8)
        let log = try openLog(dir.path)
        defer { log.close() }
        let manager = RouteManager(path: routes, engine: RouteEngine(log: log, logger: quietLogger), environment: ["S": "whsec_dG9wc2VjcmV0"], logger: quietLogger)
        #expect(await manager.reload().ok)
        let status = manager.status
        #expect(status.connectors[0].options["secret"] == "***")
        #expect(!"\(status)".contains("dG9wc2VjcmV0"))
        // No connector runtime is registered: the destination waits, its events stay in the log.
        #expect(status.destinations[0].state == .waiting)
        await manager.stop()
    }
}
