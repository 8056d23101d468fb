import Foundation

/// Certificates made with `openssl` at test time in `directory`: a CA and a server certificate for
/// 127.0.0.1 / localhost it issued, a client certificate from the same CA, and a second CA with
/// a client certificate of its own (the "wrong CA"). All EC P-256, PEM, valid two days.
public struct TestCertificates: Sendable {
    public let directory: String
    public var ca: String { directory + "/ca.pem" }
    public var serverCertificate: String { directory + "/server.pem" }
    public var serverKey: String { directory + "/server.key" }
    public var clientCertificate: String { directory + "/client.pem" }
    public var clientKey: String { directory + "/client.key" }
    /// Issued by `ca` for DNS:localhost only (no IP address): for checking names.
    public var nameOnlyCertificate: String { directory + "/name-only.pem" }
    public var nameOnlyKey: String { directory + "/name-only.key" }
    public var otherCA: String { directory + "/other-ca.pem" }
    public var otherClientCertificate: String { directory + "/other-client.pem" }
    public var otherClientKey: String { directory + "/other-client.key" }

    public struct Failure: Error, CustomStringConvertible { public let description: String }

    public static func make(in directory: String) async throws -> TestCertificates {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let d = directory
        func openssl(_ args: String) async throws {
            let (status, output) = try await ChildProcess.run("/usr/bin/openssl", args.split(separator: " ").map(String.init))
            guard status == 0 else { throw Failure(description: "openssl \(args) failed (\(status)): \(output)") }
        }
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(toFile: d + "/server.ext", atomically: true, encoding: .utf8)
        try "extendedKeyUsage=clientAuth\n".write(toFile: d + "/client.ext", atomically: true, encoding: .utf8)
        for prefix in ["", "other-"] {
            try await openssl("req -x509 \(ec) -keyout \(d)/\(prefix)ca.key -out \(d)/\(prefix)ca.pem -days 2 -subj /CN=meshgate-test-\(prefix)ca")
            try await openssl("req \(ec) -keyout \(d)/\(prefix)client.key -out \(d)/\(prefix)client.csr -subj /CN=\(prefix)client")
            try await openssl("x509 -req -in \(d)/\(prefix)client.csr -CA \(d)/\(prefix)ca.pem -CAkey \(d)/\(prefix)ca.key -CAcreateserial -out \(d)/\(prefix)client.pem -days 2 -extfile \(d)/client.ext")
        }
        try await openssl("req \(ec) -keyout \(d)/server.key -out \(d)/server.csr -subj /CN=127.0.0.1")
        try await openssl("x509 -req -in \(d)/server.csr -CA \(d)/ca.pem -CAkey \(d)/ca.key -CAcreateserial -out \(d)/server.pem -days 2 -extfile \(d)/server.ext")
        try "subjectAltName=DNS:localhost\n".write(toFile: d + "/name-only.ext", atomically: true, encoding: .utf8)
        try await openssl("req \(ec) -keyout \(d)/name-only.key -out \(d)/name-only.csr -subj /CN=localhost")
        try await openssl("x509 -req -in \(d)/name-only.csr -CA \(d)/ca.pem -CAkey \(d)/ca.key -CAcreateserial -out \(d)/name-only.pem -days 2 -extfile \(d)/name-only.ext")
        return TestCertificates(directory: d)
    }
}
