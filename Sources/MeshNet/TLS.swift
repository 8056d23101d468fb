import Foundation
import NIOCore
import NIOSSL
import NIOTLS
import Synchronization

/// The oldest TLS version a side accepts. TLS 1.3 is always offered; 1.0 and 1.1 never are.
public enum TLSMinimumVersion: String, Sendable, Equatable, CaseIterable {
    case tls12 = "1.2"
    case tls13 = "1.3"

    var nio: TLSVersion { self == .tls12 ? .tlsv12 : .tlsv13 }
}

/// Why TLS could not be set up from the configured files: the message names the file and what is
/// wrong with it (unreadable, not PEM, key not matching the certificate).
public struct TLSSetupError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A listener's TLS files, all PEM: its certificate chain (leaf first), its private key and, for
/// mutual TLS, the CA certificates a client certificate must chain to.
public struct ServerTLSFiles: Sendable, Equatable {
    public var certificateChain: String
    public var privateKey: String
    /// Set: every client must present a certificate issued by one of these CAs (mutual TLS).
    public var clientCA: String?
    public var minimumVersion: TLSMinimumVersion

    public init(certificateChain: String, privateKey: String, clientCA: String? = nil, minimumVersion: TLSMinimumVersion = .tls12) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.clientCA = clientCA
        self.minimumVersion = minimumVersion
    }

    /// Reads the files and builds the context, or says which file is wrong and why.
    public func makeContext() throws(TLSSetupError) -> NIOSSLContext {
        let chain = try PEMFiles.certificates(certificateChain, what: "certificate chain")
        let key = try PEMFiles.privateKey(privateKey)
        var configuration: TLSConfiguration
        if let clientCA {
            let roots = try PEMFiles.certificates(clientCA, what: "client CA")
            configuration = .makeServerConfigurationWithMTLS(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key), trustRoots: .certificates(roots))
            configuration.sendCANameList = true
        } else {
            configuration = .makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        }
        configuration.minimumTLSVersion = minimumVersion.nio
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSSetupError("the private key in \(privateKey) does not match the certificate in \(certificateChain) (\(error))")
        }
    }
}

/// A listener's TLS context, shared by every connection it accepts. `reload()` (SIGHUP) swaps in
/// one built from the files as they are now; connections already open keep the one they began with.
public final class ServerTLS: Sendable {
    public let files: ServerTLSFiles
    private let current = Mutex<NIOSSLContext?>(nil)

    public init(files: ServerTLSFiles) {
        self.files = files
    }

    /// Loads the files unless they are loaded already.
    public func prepare() throws(TLSSetupError) {
        if current.withLock({ $0 != nil }) { return }
        let context = try files.makeContext()
        current.withLock { if $0 == nil { $0 = context } }
    }

    /// Builds a new context from the files; on an error the old one stays in use.
    public func reload() throws(TLSSetupError) {
        let context = try files.makeContext()
        current.withLock { $0 = context }
    }

    /// Adds the TLS handler at the front of a new connection's pipeline, and behind it the handler
    /// that counts and closes failed handshakes (`stats`). Runs on the channel's event loop.
    public func addHandlers(to channel: any Channel, stats: ListenerStats?) throws {
        guard let context = current.withLock({ $0 }) else {
            throw TLSSetupError("TLS is on but its files were not loaded")
        }
        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
        try channel.pipeline.syncOperations.addHandler(TLSHandshakeGuard(stats: stats))
    }
}

/// An outbound connection's TLS: which CA to trust (CA pinning: only that one), the client
/// certificate to present for mutual TLS, and the name to verify the server's certificate against.
public struct ClientTLS: Sendable, Equatable {
    /// PEM CA certificates; only these are trusted. nil: the system's trust store.
    public var caFile: String?
    /// PEM certificate chain and key presented to servers that ask for one (mutual TLS).
    public var certificateChain: String?
    public var privateKey: String?
    /// The name the server's certificate must carry (and SNI); nil: the host connected to. An IP
    /// address is checked against the certificate's IP subject alternative names.
    public var serverName: String?
    public var minimumVersion: TLSMinimumVersion

    public init(caFile: String? = nil, certificateChain: String? = nil, privateKey: String? = nil,
                serverName: String? = nil, minimumVersion: TLSMinimumVersion = .tls12) {
        self.caFile = caFile
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.serverName = serverName
        self.minimumVersion = minimumVersion
    }

    public func makeContext() throws(TLSSetupError) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = minimumVersion.nio
        configuration.certificateVerification = .fullVerification
        if let caFile {
            configuration.trustRoots = .certificates(try PEMFiles.certificates(caFile, what: "CA"))
        }
        switch (certificateChain, privateKey) {
        case (let chain?, let key?):
            configuration.certificateChain = try PEMFiles.certificates(chain, what: "certificate").map { .certificate($0) }
            configuration.privateKey = .privateKey(try PEMFiles.privateKey(key))
        case (nil, nil): break
        case (nil, _?): throw TLSSetupError("a client key needs its certificate (cert_file)")
        case (_?, nil): throw TLSSetupError("a client certificate needs its key (key_file)")
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSSetupError("the private key in \(privateKey ?? "?") does not match the certificate in \(certificateChain ?? "?") (\(error))")
        }
    }

    /// The TLS handler for a connection to `host`: SNI and name verification against `serverName`
    /// or `host`; an IP address is verified against the certificate's IP addresses (no SNI).
    public func makeHandler(context: NIOSSLContext, host: String) throws -> NIOSSLClientHandler {
        let name = serverName ?? host
        let isAddress = (try? SocketAddress(ipAddress: name, port: 0)) != nil
        return try NIOSSLClientHandler(context: context, serverHostname: isAddress ? nil : name)
    }
}

/// Reading PEM files with errors that say which file and what is wrong.
enum PEMFiles {
    static func read(_ path: String, what: String) throws(TLSSetupError) -> [UInt8] {
        do {
            return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
            throw TLSSetupError("cannot read the \(what) file \(path): \(reason)")
        }
    }

    static func certificates(_ path: String, what: String) throws(TLSSetupError) -> [NIOSSLCertificate] {
        let bytes = try read(path, what: what)
        let certificates: [NIOSSLCertificate]
        do { certificates = try NIOSSLCertificate.fromPEMBytes(bytes) } catch {
            throw TLSSetupError("the \(what) file \(path) is not PEM certificates (\(error))")
        }
        guard !certificates.isEmpty else { throw TLSSetupError("the \(what) file \(path) holds no PEM certificate") }
        return certificates
    }

    static func privateKey(_ path: String) throws(TLSSetupError) -> NIOSSLPrivateKey {
        let bytes = try read(path, what: "private key")
        do { return try NIOSSLPrivateKey(bytes: bytes, format: .pem) } catch {
            throw TLSSetupError("the private key file \(path) is not an unencrypted PEM private key (\(error))")
        }
    }
}

/// Right behind the server's TLS handler: a handshake that fails (no client certificate, one from
/// another CA, a client speaking plain text or an old TLS version) is counted as a refused
/// connection and the connection closed, instead of reaching the protocol handlers as an error.
final class TLSHandshakeGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let stats: ListenerStats?
    private var handshakeDone = false

    init(stats: ListenerStats?) { self.stats = stats }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { handshakeDone = true }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !handshakeDone, error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            handshakeDone = true
            stats?.count(.tlsHandshake)
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }
}

/// A client's TLS, loaded once and used for every connection (and reconnection) it makes.
public final class ClientTLSContext: Sendable {
    public let settings: ClientTLS
    private let context: NIOSSLContext

    public init(_ settings: ClientTLS) throws(TLSSetupError) {
        self.settings = settings
        context = try settings.makeContext()
    }

    /// Adds the TLS handler at the front of a new connection to `host`. Runs on its event loop.
    public func addHandler(to channel: any Channel, host: String) throws {
        try channel.pipeline.syncOperations.addHandler(settings.makeHandler(context: context, host: host))
    }
}

/// A failed TLS handshake, said for people: "the server's certificate is not trusted", ...
public func describeTLSFailure(_ error: any Error) -> String? {
    if let e = error as? NIOSSLExtraError, e == .failedToValidateHostname {
        return "the server's certificate does not name this host (\(e))"
    }
    guard let e = error as? NIOSSLError else { return nil }
    switch e {
    case .handshakeFailed(let inner):
        let text = "\(inner)"
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "TLS handshake failed: the server's certificate is not issued by a trusted CA (ca_file) (\(text))"
        }
        return "TLS handshake failed: \(text)"
    default: return "TLS: \(e)"
    }
}
