import ArgumentParser
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// The machine's HTTP ceiling: a bare SwiftNIO HTTP/1.1 server that answers 200 to everything, on
/// NIO's standard server pipeline (`configureHTTPServerPipeline()` with its defaults: codec,
/// pipelining handler, error handler) and nothing else. The gateway's own pipeline differs: no
/// pipelining handler (its API handler keeps pipelined requests in order), the deadlines handler.
/// `scripts/bench-http.sh` compares the gateway's publish path against it. Hidden: a benchmark tool.
struct BareHTTP: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bare-http", abstract: "Bare SwiftNIO HTTP server answering 200 (benchmark ceiling).", shouldDisplay: false)

    @Option var host = "127.0.0.1"
    @Option var port = 8081

    func run() async throws {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(OKHandler())
                }
            }
            .bind(host: host, port: port).get()
        FileHandle.standardOutput.write(Data("listening bare-http=\(host):\(channel.localAddress?.port ?? port)\n".utf8))
        try await channel.closeFuture.get()
    }
}

private final class OKHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        var headers = HTTPHeaders()
        headers.add(name: "content-length", value: "2")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "OK")))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}
