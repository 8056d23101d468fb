import Foundation
import ArgumentParser
import MeshClient
import MeshNet

/// `tcp://HOST:PORT`, `tls://HOST:PORT` (or `HOST:PORT`), as `--server` takes it.
struct ServerAddress: ExpressibleByArgument, CustomStringConvertible {
    var host: String
    var port: Int
    var tls = false

    init?(argument: String) {
        var text = Substring(argument)
        if text.hasPrefix("tcp://") {
            text = text.dropFirst(6)
        } else if text.hasPrefix("tls://") {
            text = text.dropFirst(6)
            tls = true
        }
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

    var description: String { "\(tls ? "tls" : "tcp")://\(host):\(port)" }
}

/// TLS options of the commands that connect over TCP. Any of them, or a `tls://` server, turns
/// TLS on.
struct TLSOptions: ParsableArguments {
    @Option(name: .customLong("ca-file"), help: "PEM CA certificates to trust instead of the system's (TLS).")
    var caFile: String?
    @Option(name: .customLong("cert-file"), help: "PEM client certificate chain, for servers with mutual TLS.")
    var certFile: String?
    @Option(name: .customLong("key-file"), help: "PEM private key of --cert-file.")
    var keyFile: String?
    @Option(name: .customLong("server-name"), help: "The name the server's certificate must carry (default: the host).")
    var serverName: String?

    func settings(for address: ServerAddress) -> ClientTLS? {
        guard address.tls || caFile != nil || certFile != nil || keyFile != nil || serverName != nil else { return nil }
        return ClientTLS(caFile: caFile, certificateChain: certFile, privateKey: keyFile, serverName: serverName)
    }
}

extension ServerAddress {
    /// Connects the CLI to the server, or says why not and exits 1 (SPEC §7). Without `--token`
    /// the token comes from `MESHGATE_TOKEN`, which keeps it out of the process list.
    func connect(token: String?, tls: TLSOptions? = nil, client name: String = "meshgate-cli") async throws -> MeshClient {
        let token = token ?? ProcessInfo.processInfo.environment["MESHGATE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        var configuration = MeshClient.Configuration(name: "\(name)/\(meshgateVersion)", token: token)
        configuration.tls = tls?.settings(for: self)
        let shown = configuration.tls == nil ? description : "tls://\(host):\(port)"
        do {
            return try await MeshClient.connect(host: host, port: port, configuration: configuration)
        } catch let error as TLSSetupError {
            printError("cannot connect to \(shown): \(error.message)")
            throw ExitCode(1)
        } catch {
            printError("cannot connect to \(shown): \(error)")
            throw ExitCode(1)
        }
    }
}
