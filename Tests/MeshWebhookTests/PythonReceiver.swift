import MeshTestSupport
import Foundation

/// `examples/webhook-fanout/receiver.py` (Python's http.server, and the reference Standard
/// Webhooks verifier) as a child process: an HTTP stack no one here wrote.
final class PythonReceiver {
    let process = Process()
    let url: String
    let logPath: String

    struct Record {
        let path: String
        let mode: String
        let ids: [String]
        let webhookID: String?
        let verified: [String: Bool]
        let contentType: String?
    }

    init(_ arguments: [String] = [], directory: String) throws {
        logPath = directory + "/receiver-\(UUID().uuidString.prefix(6)).jsonl"
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", repositoryRoot + "/examples/webhook-fanout/receiver.py", "--port", "0", "--log", logPath] + arguments
        let out = Pipe()
        process.standardOutput = out
        let err = Pipe()
        process.standardError = err
        try process.run()
        var text = ""
        let deadline = Date().addingTimeInterval(15)
        while !text.contains("\n") && Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let line = text.split(separator: "\n").first, line.hasPrefix("listening on ") else {
            process.terminate()
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw ReceiverError(message: "receiver.py did not start: \(text) \(stderr)")
        }
        url = String(line.dropFirst("listening on ".count))
    }

    struct ReceiverError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    var records: [Record] {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return Record(path: o["path"] as? String ?? "", mode: o["mode"] as? String ?? "",
                          ids: (o["ids"] as? [Any])?.compactMap { $0 as? String } ?? [],
                          webhookID: o["webhook_id"] as? String, verified: o["verified"] as? [String: Bool] ?? [:],
                          contentType: o["content_type"] as? String)
        }
    }

    func stop() {
        if process.isRunning {
            // SIGKILL: a child of this process may start with SIGTERM blocked (inherited mask).
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

/// Runs a command and returns its exit status (output discarded unless it fails).
@discardableResult
func run(_ arguments: [String], in directory: String? = nil) throws -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = arguments
    if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    return p.terminationStatus
}
