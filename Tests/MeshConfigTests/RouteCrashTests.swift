import Foundation
import MeshCore
import MeshLog
import Testing

/// SIGKILLs a real gateway process while it routes, restarts it, and checks that every event of
/// the source topic reached the destination (at least once) — the committed cursors survive.
@Suite(.serialized) struct RouteCrashTests {
    static var meshgateBinary: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("meshgate").path
    }

    func runChild(_ args: [String], killAfter: Double?) throws -> String {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: Self.meshgateBinary)
        child.arguments = ["route-run"] + args
        let out = Pipe()
        child.standardOutput = out
        child.standardError = FileHandle.nullDevice
        try child.run()
        if let killAfter {
            // Wait for "ready", then kill at the chosen moment.
            var text = ""
            let started = Date()
            while !text.contains("ready") && Date().timeIntervalSince(started) < 20 {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }  // the child exited
                text += String(decoding: chunk, as: UTF8.self)
            }
            #expect(text.contains("ready"), "the child did not start")
            Thread.sleep(forTimeInterval: killAfter)
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            #expect(child.terminationReason == .uncaughtSignal)
            return text
        }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        child.waitUntilExit()
        return text
    }

    @Test func killedMidDeliveryLosesNothing() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.meshgateBinary), "the meshgate binary is not built at \(Self.meshgateBinary)")
        let dir = ScratchDirectory()
        let routes = dir.path + "/routes"
        try FileManager.default.createDirectory(atPath: routes, withIntermediateDirectories: true)
        try "version: 1\nroutes:\n  - {name: copy, from: \"src/+\", to: [{topic: \"dst/{1}\", buffer: 64}]}\n"
            .write(toFile: routes + "/r.yaml", atomically: true, encoding: .utf8)
        let data = dir.path + "/data"
        for cycle in 0..<6 {
            _ = try runChild(["--data", data, "--routes", routes, "--produce", "3000"], killAfter: Double(cycle % 3) * 0.1 + 0.05)
        }
        let final = try runChild(["--data", data, "--routes", routes, "--exit-when-idle"], killAfter: nil)
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
