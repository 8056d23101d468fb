import MeshNet
import MeshWire
import NIOCore

/// What the TCP listener enforces per connection below the protocol: TLS and connection limits
/// (docs/operations.md, "TLS" and "Limits"). Frame size, idle timeout and in-flight publishes are
/// protocol limits, in `ServerConnectionStateMachine.Configuration`.
public struct TCPNetworkSettings: Sendable {
    /// TLS (and mutual TLS) for every connection; nil: plain TCP.
    public var tls: ServerTLS?
    /// Admits each connection against the listener's total and per-address limits.
    public var limiter = ConnectionLimiter(listener: "tcp", limits: ConnectionLimits())
    /// How long a refused connection may take to send its HELLO before it is closed unanswered.
    public var refusalTimeout: TimeAmount = .seconds(5)

    public init() {}

    /// Adds TLS and the frame decoder to a new connection's pipeline. Over a connection limit it
    /// also adds the handler that refuses it and returns true; the caller adds nothing more.
    func configureFront(of channel: any Channel, maxFrameLength: UInt32) throws -> Bool {
        let refusal = limiter.admit(channel)
        if let tls { try tls.addHandlers(to: channel, stats: limiter.stats) }
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameLength: maxFrameLength, keepsEncodedEvents: true)))
        guard let refusal else { return false }
        let error = WireError(.overloaded, refusal.message, retryAfterMilliseconds: 1000, isFatal: true)
        try sync.addHandler(TCPRefusingHandler(error: error, timeout: refusalTimeout))
        return true
    }
}

/// Serves a connection refused by a connection limit: answers its first frame (the HELLO) with a
/// fatal ERROR `overloaded` naming the limit, and closes. Waiting for the HELLO rather than
/// writing at once means the client has sent everything it will before the close, so the ERROR
/// reaches it instead of a reset.
final class TCPRefusingHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = ByteBuffer

    private let error: WireError
    private let timeout: TimeAmount
    private var answered = false
    private var timer: Scheduled<Void>?

    init(error: WireError, timeout: TimeAmount) {
        self.error = error
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) { bound.value.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        answered = true
        timer?.cancel()
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(Frame.error(error).encoded(allocator: context.channel.allocator)))
            .whenComplete { _ in bound.value.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
