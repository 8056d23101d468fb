import ArgumentParser
import Foundation
import MeshAuth

/// `meshgate auth hash-token`: what goes into meshgate.yaml for a static token (docs/security.md).
struct AuthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auth", abstract: "Helpers for authentication settings.", subcommands: [HashToken.self])

    struct HashToken: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "hash-token",
            abstract: "Print the SHA-256 of a token, for auth.tokens[].sha256 in meshgate.yaml.",
            discussion: "With no TOKEN (or '-'), the token is read from the first line of standard input, which keeps it out of the shell history.")

        @Argument(help: "The token; '-' or nothing reads it from standard input.") var token: String?

        func run() throws {
            var value = token ?? "-"
            if value == "-" {
                value = readLine(strippingNewline: true) ?? ""
            }
            guard !value.isEmpty else { throw ValidationError("the token is empty") }
            guard value.utf8.count >= 16 else {
                throw ValidationError("the token is \(value.utf8.count) bytes; use at least 16 random bytes (e.g. openssl rand -hex 32)")
            }
            print(TokenHash.hex(value))
        }
    }
}
