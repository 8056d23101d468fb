import MeshTestSupport
import Foundation
import MeshCore
import MeshLog
import Testing

/// SIGKILLs a real gateway process while it delivers to a webhook, restarts it, and checks that
/// the receiver got every event of the source topic (at least once): the cursor is committed
/// only after the receiver answered 2xx.
@Suite(.serialized) struct WebhookCrashTests {
    static var meshgateBinary: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("meshgate").path
    }

    func runChild(_ args: [String], killAfter: Double?) throws -> String {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: Self.meshgateBinary)
        child.arguments = ["webhook-run"] + args
        let out = Pipe()
        child.standardOutput = out
        child.standardError = FileHandle.nullDevice
        try child.run()
        if let killAfter {
            var text = ""
            let started = Date()
            while !text.contains("ready") && Date().timeIntervalSince(started) < 20 {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
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
        // A slowish receiver that also fails now and then, so kills land mid-request and mid-retry.
        let receiver = try TestReceiver { r in
            if r.number % 7 == 0 { return .respond(status: 503) }
            Thread.sleep(forTimeInterval: 0.001)
            return .respond(status: 200)
        }
        defer { receiver.stop() }
        let dir = ScratchDirectory()
        let routes = dir.path + "/routes"
        try FileManager.default.createDirectory(atPath: routes, withIntermediateDirectories: true)
        try """
        version: 1
        connectors:
          sink: {type: webhook, url: "\(receiver.url)/in", timeout: 2s}
        routes:
          - {name: out, from: "src/+", to: [{connector: sink, buffer: 64, retry: {backoff: 5ms, max_backoff: 50ms}}]}
        """.write(toFile: routes + "/r.yaml", atomically: true, encoding: .utf8)
        let data = dir.path + "/data"
        for cycle in 0..<6 {
            _ = try runChild(["--data", data, "--routes", routes, "--produce", "2000"], killAfter: Double(cycle % 3) * 0.15 + 0.1)
        }
        let beforeFinal = receiver.acknowledged.count
        let final = try runChild(["--data", data, "--routes", routes, "--exit-when-idle"], killAfter: nil)
        #expect(final.contains("idle"))

        var o = LogOptions()
        o.retentionCheckMicros = nil
        let log = try DurableLog(directory: data, options: o, logger: quietLogger)
        defer { log.close() }
        let source = try events(log, "src/a").map(\.id)
        #expect(source.count > 0)
        let missing = Set(source).subtracting(receiver.acknowledged)
        #expect(missing.isEmpty, "\(missing.count) of \(source.count) events never reached the webhook")
        #expect(receiver.acknowledged.isSubset(of: Set(source)))
        // The kills really interrupted delivery: work was left for the last run.
        #expect(beforeFinal < source.count, "every event was delivered before the last run: the kills missed")
    }
}
