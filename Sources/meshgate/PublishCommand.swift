import ArgumentParser
import Foundation
import MeshClient

/// `meshgate publish TOPIC [DATA|-]`: publish one event over TCP and print its receipt.
struct PublishCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "publish", abstract: "Publish one event and print where it was stored.")

    @Argument(help: "The topic, e.g. orders/eu.") var topic: String
    @Argument(help: "The event data; '-' reads it from standard input; empty when left out.") var data: String?
    @Option(help: "The server, tcp://HOST:PORT.") var server: ServerAddress = .default
    @Option(help: "The partition key.") var key: String?
    @Option(help: "The CloudEvents type (default meshgate.publish).") var type: String?
    @Option(help: "The CloudEvents source (default meshgate://<node>/tcp).") var source: String?
    @Option(help: "The CloudEvents id (default: a new one).") var id: String?
    @Option(name: .customLong("content-type"), help: "The data's content type.") var contentType: String?
    @Option(name: .customLong("attr"), help: "An extension attribute, name=value (repeatable).") var attributes: [String] = []
    @Option(help: "A bearer token or JWT for the server (default: $MESHGATE_TOKEN).") var token: String?

    func run() async throws {
        let topic: Topic
        do { topic = try Topic(self.topic) } catch { throw ValidationError("invalid topic: \(error.message)") }
        var event = Event(topic: topic, id: id ?? "", source: source ?? "", type: type ?? "", datacontenttype: contentType, partitionKey: key)
        for attribute in attributes {
            guard let eq = attribute.firstIndex(of: "="), eq != attribute.startIndex else {
                throw ValidationError("--attr needs name=value, got '\(attribute)'")
            }
            event.extensions[String(attribute[..<eq])] = String(attribute[attribute.index(after: eq)...])
        }
        if data == "-" {
            event.data = [UInt8](FileHandle.standardInput.readDataToEndOfFile())
        } else if let data {
            event.data = Array(data.utf8)
        }
        let client = try await server.connect(token: token)
        do {
            let receipt = try await client.publish(event)
            print("\(receipt.topic) partition \(receipt.partition) offset \(receipt.offset) id \(receipt.id)")
            await client.close()
        } catch {
            await client.close()
            printError("publish failed: \(error)")
            throw ExitCode(1)
        }
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("meshgate: \(message)\n".utf8))
}
