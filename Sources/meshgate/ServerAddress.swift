import Foundation
import ArgumentParser
import MeshClient

/// `tcp://HOST:PORT` (or `HOST:PORT`), as `--server` takes it.
struct ServerAddress: ExpressibleByArgument, CustomStringConvertible {
    var host: String
    var port: Int

    init?(argument: String) {
        var text = Substring(argument)
        if text.hasPrefix("tcp://") { text = text.dropFirst(6) }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port) else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host.isEmpty ? "127.0.0.1" : host
        self.port = port
    }

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    static let `default` = ServerAddress(host: "127.0.0.1", port: 7070)

    var description: String { "tcp://\(host):\(port)" }
}

extension ServerAddress {
    /// Connects the CLI to the server, or says why not and exits 1 (SPEC §7). Without `--token`
    /// the token comes from `MESHGATE_TOKEN`, which keeps it out of the process list.
    func connect(token: String?, client name: String = "meshgate-cli") async throws -> MeshClient {
        let token = token ?? ProcessInfo.processInfo.environment["MESHGATE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        do {
            return try await MeshClient.connect(host: host, port: port, name: "\(name)/\(meshgateVersion)", token: token)
        } catch {
            printError("cannot connect to \(self): \(error)")
            throw ExitCode(1)
        }
    }
}
