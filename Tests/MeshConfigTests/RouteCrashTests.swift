import Foundation
import MeshCore
import MeshLog
import MeshTestSupport
import Testing

/// SIGKILLs a real gateway process while it routes, restarts it, and checks that every event of
/// the source topic reached the destination (at least once) — the committed cursors survive.
@Suite(.serialized) struct RouteCrashTests {
    func runChild(_ args: [String], killAfter: Double?) async throws -> String {
        let child = try ChildProcess(meshgateBinary, ["route-run"] + args)
        guard let killAfter else { return try await child.wait() }
        // Wait for "ready", then kill at the chosen moment.
        #expect(await child.waitForOutput(containing: "ready"), "the child did not start")
        try await Task.sleep(for: .seconds(killAfter))
        child.signal(SIGKILL)
        let text = try await child.wait()
        #expect(child.wasSignaled)
        return text
    }

    @Test func killedMidDeliveryLosesNothing() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: meshgateBinary), "the meshgate binary is not built at \(meshgateBinary)")
        let dir = ScratchDirectory()
        let routes = dir.path + "/routes"
        try FileManager.default.createDirectory(atPath: routes, withIntermediateDirectories: true)
        try "version: 1\nroutes:\n  - {name: copy, from: \"src/+\", to: [{topic: \"dst/{1}\", buffer: 64}]}\n"
            .write(toFile: routes + "/r.yaml", atomically: true, encoding: .utf8)
        let data = dir.path + "/data"
        for cycle in 0..<6 {
            _ = try await runChild(["--data", data, "--routes", routes, "--produce", "3000"], killAfter: Double(cycle % 3) * 0.1 + 0.05)
        }
        let final = try await runChild(["--data", data, "--routes", routes, "--exit-when-idle"], killAfter: nil)
        #expect(final.contains("idle"))

        let log = try openLog(dir.path)
        defer { log.close() }
        let source = try events(log, "src/a").map(\.id)
        let copied = try events(log, "dst/a").map(\.id)
        #expect(source.count > 0)
        let missing = Set(source).subtracting(copied)
        #expect(missing.isEmpty, "\(missing.count) of \(source.count) events never reached the destination")
        #expect(Set(copied).isSubset(of: Set(source)))
        // At least once: a kill between delivery and commit may repeat up to one batch per partition.
        #expect(copied.count - Set(copied).count <= 6 * 2 * 64)
    }
}
