import Foundation
import MeshClient
import MeshCore
import MeshHTTP
import MeshTestSupport
import Synchronization
import Testing

/// SIGKILLs a real `meshgate serve` while HTTP and TCP clients publish flat out, ten times over the
/// same data directory, and checks after every restart that each acknowledged event is readable,
/// where its receipt said, with its data.
@Suite(.serialized) struct KillTests {
    struct Ack: Hashable {
        let topic: String
        let partition: Int
        let offset: Int64
        let id: String
    }

    final class Shared: Sendable {
        let acked = Mutex<[Ack]>([])
        let stop = Atomic<Bool>(false)
    }

    /// Starts `serve` on free ports; returns the child and its HTTP and TCP ports.
    static func startServer(data: String) async throws -> (ChildProcess, http: Int, tcp: Int) {
        let child = try ChildProcess(meshgateBinary, [
            "serve", "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--data", data, "--routes", data + "/no-routes",
            "--node", "kill-test",
        ], mergeStandardError: true)
        #expect(await child.waitForOutput(containing: "listening tcp="), "\(child.text)")
        #expect(await child.waitForOutput(containing: "listening http="), "\(child.text)")
        func port(_ name: String) throws -> Int {
            let text = child.text
            let r = try #require(text.range(of: "listening \(name)=127\\.0\\.0\\.1:[0-9]+", options: .regularExpression), "\(text)")
            return Int(text[r].split(separator: ":").last!)!
        }
        return (child, try port("http"), try port("tcp"))
    }

    @Test func everyAcknowledgedEventSurvivesKillsDuringHTTPAndTCPPublishing() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: meshgateBinary), "meshgate is not built at \(meshgateBinary)")
        let dir = ScratchDirectory()
        let shared = Shared()
        for cycle in 0..<10 {
            let (server, httpPort, tcpPort) = try await Self.startServer(data: dir.path + "/data")
            let http = AdminClient(host: "127.0.0.1", port: httpPort)
            let tcp = try await MeshClient.connect(host: "127.0.0.1", port: tcpPort, name: "kill-test")
            shared.stop.store(false, ordering: .relaxed)
            let publishers = Task {
                await withTaskGroup(of: Void.self) { group in
                    for worker in 0..<4 {
                        group.addTask {
                            var n = 0
                            while !shared.stop.load(ordering: .relaxed) {
                                let id = "h\(cycle)-\(worker)-\(n)"
                                n += 1
                                guard let r = try? await http.request(.POST, "/v1/publish/kill/http", headers: [("ce-id", id), ("ce-partitionkey", "w\(worker)")],
                                                                      body: Array(id.utf8)), r.status == 200,
                                      let o = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any],
                                      let partition = o["partition"] as? Int, let offset = o["offset"] as? Int else { break }
                                shared.acked.withLock { $0.append(Ack(topic: "kill/http", partition: partition, offset: Int64(offset), id: id)) }
                            }
                        }
                    }
                    for worker in 0..<8 {
                        group.addTask {
                            var n = 0
                            while !shared.stop.load(ordering: .relaxed) {
                                let id = "t\(cycle)-\(worker)-\(n)"
                                n += 1
                                let event = Event(topic: try! Topic("kill/tcp"), id: id, partitionKey: "w\(worker)", data: Array(id.utf8))
                                guard let r = try? await tcp.publish(event) else { break }
                                shared.acked.withLock { $0.append(Ack(topic: "kill/tcp", partition: Int(r.partition), offset: Int64(r.offset), id: id)) }
                            }
                        }
                    }
                }
            }
            // Let load build, then kill without warning.
            try await Task.sleep(for: .milliseconds(Int.random(in: 150...600)))
            server.signal(SIGKILL)
            try await server.wait()
            #expect(server.wasSignaled)
            shared.stop.store(true, ordering: .relaxed)
            await tcp.close()
            await publishers.value

            // Restart on the same data and read everything back.
            let (check, checkHTTP, _) = try await Self.startServer(data: dir.path + "/data")
            let reader = AdminClient(host: "127.0.0.1", port: checkHTTP)
            var stored: [String: [Int64: String]] = [:]
            for topic in ["kill/http", "kill/tcp"] {
                for partition in 0..<1 {
                    var offset = 0
                    while true {
                        let r = try await reader.request(.GET, "/v1/fetch/\(topic)?partition=\(partition)&offset=\(offset)&max=1000")
                        if r.status == 404 { break }
                        #expect(r.status == 200, "\(r.text)")
                        let body = try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
                        let events = body["events"] as? [[String: Any]] ?? []
                        if events.isEmpty { break }
                        for e in events { stored["\(topic)#\(partition)", default: [:]][Int64(e["offset"] as! Int)] = e["id"] as? String }
                        offset = body["next_offset"] as! Int
                    }
                }
            }
            let all = shared.acked.withLock { $0 }
            let missing = all.filter { stored["\($0.topic)#\($0.partition)"]?[$0.offset] != $0.id }
            #expect(missing.isEmpty, "cycle \(cycle): \(missing.count) of \(all.count) acknowledged events are missing or moved, e.g. \(missing.prefix(3))")
            check.signal(SIGTERM)
            try await check.wait()
        }
        let total = shared.acked.withLock { $0.count }
        let viaHTTP = shared.acked.withLock { $0.filter { $0.topic == "kill/http" }.count }
        #expect(viaHTTP > 10 && total - viaHTTP > 10, "too little load: \(viaHTTP) over HTTP, \(total - viaHTTP) over TCP")
        print("kill test: \(viaHTTP) HTTP and \(total - viaHTTP) TCP acknowledged events checked over 10 kills")
    }
}
