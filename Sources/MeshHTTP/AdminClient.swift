import NIOCore
import NIOHTTP1
import NIOPosix

/// A one-request HTTP/1.1 client for the admin API (`meshgate topics`, `meshgate status`, tests).
/// NIO rather than URLSession: it is the stack the server already links, and FoundationNetworking
/// would add libcurl and its TLS stack to the binary for two GET requests.
public struct AdminClient: Sendable {
    public struct Response: Sendable {
        public let status: Int
        public let headers: [(name: String, value: String)]
        public let body: [UInt8]

        public func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }

        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    public let host: String
    public let port: Int
    let group: any EventLoopGroup

    public init(host: String, port: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.host = host
        self.port = port
        self.group = group
    }

    /// Parses `http://HOST:PORT` (a path, if any, is ignored).
    public init(url: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws(Failure) {
        guard url.hasPrefix("http://") else { throw Failure(description: "\(url) is not an http:// URL") }
        var rest = url.dropFirst("http://".count)
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        var host = rest
        var port = 80
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("]") {
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                throw Failure(description: "\(url) has no valid port")
            }
            host = rest[..<colon]
            port = p
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty else { throw Failure(description: "\(url) has no host") }
        self.init(host: String(host), port: port, group: group)
    }

    public func request(_ method: HTTPMethod = .GET, _ path: String, headers: [(String, String)] = [],
                        body: [UInt8]? = nil) async throws -> Response {
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(5))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var h = HTTPHeaders()
            h.add(name: "host", value: "\(host):\(port)")
            for (n, v) in headers { h.add(name: n, value: v) }
            if let body { h.add(name: "content-length", value: String(body.count)) }
            try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: h)))
            if let body { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
            try await outbound.write(.end(nil))
            var status = 0
            var responseHeaders: [(name: String, value: String)] = []
            var collected: [UInt8] = []
            for try await part in inbound {
                switch part {
                case .head(let head):
                    status = Int(head.status.code)
                    responseHeaders = head.headers.map { ($0.name, $0.value) }
                case .body(let buffer):
                    collected += buffer.readableBytesView
                case .end:
                    return Response(status: status, headers: responseHeaders, body: collected)
                }
            }
            throw Failure(description: "the server closed the connection before the response was complete")
        }
    }
}
