import MeshNet
import NIOCore
import NIOHTTP1

/// What the HTTP listener enforces per connection, below the API: TLS, connection limits and
/// the two timeouts (docs/operations.md, "TLS" and "Limits").
public struct HTTPConnectionSettings: Sendable {
    /// TLS (and mutual TLS) for every connection; nil: plain HTTP.
    public var tls: ServerTLS?
    /// Admits each connection against the listener's total and per-address limits.
    public var limiter = ConnectionLimiter(listener: "http", limits: ConnectionLimits())
    /// A keep-alive connection with no request for this long is closed.
    public var idleTimeout: TimeAmount = .seconds(60)
    /// A request's head and body must arrive within this long of its first byte, else 408 and close.
    public var requestTimeout: TimeAmount = .seconds(30)

    public init() {}
}

extension Problem {
    static func requestTimeout(_ timeout: TimeAmount) -> Problem {
        Problem(code: "request.timeout", status: .requestTimeout, title: "Request timeout",
                detail: "the request did not arrive in full within \(timeout.nanoseconds / 1_000_000) ms")
    }

    static func tooManyConnections(_ message: String) -> Problem {
        Problem(code: "connections.limit", status: .serviceUnavailable, title: "Too many connections", detail: message,
                retryAfterSeconds: 1)
    }
}

extension ServerCore {
    /// The pipeline of one accepted connection: TLS when on, the deadlines, the HTTP codec, and
    /// either the API's handler or, over a connection limit, one that answers 503 and closes.
    func configurePipeline(_ channel: any Channel) throws {
        let settings = configuration.connection
        let refusal = settings.limiter.admit(channel)
        let sync = channel.pipeline.syncOperations
        if let tls = settings.tls { try tls.addHandlers(to: channel, stats: settings.limiter.stats) }
        let deadlines = HTTPDeadlines(idleTimeout: settings.idleTimeout, requestTimeout: settings.requestTimeout,
                                      stats: settings.limiter.stats)
        try sync.addHandler(deadlines)
        // Without NIO's outbound header validator: every response header is written here, from
        // constants, numbers and text made header-safe (`Problem.headerSafe`), so checking each
        // one again on every response is cost without a use.
        // Without NIO's pipelining handler either: `HTTPConnectionHandler` keeps pipelined requests
        // in order itself, and a refused connection answers one request and closes.
        try sync.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false,
                                             withOutboundHeaderValidation: false)
        if let refusal {
            try sync.addHandler(HTTPExchangeTracker(deadlines: deadlines, stats: settings.limiter.stats))
            try sync.addHandler(HTTPRefusingHandler(problem: .tooManyConnections(refusal.message)))
        } else {
            // The API's handler tells the deadlines itself where exchanges end: one handler fewer
            // for every request and response part to pass through.
            try sync.addHandler(HTTPConnectionHandler(core: self, deadlines: deadlines, stats: settings.limiter.stats))
        }
    }
}

/// Times a connection at the byte level, just above TLS: idle between requests (closed quietly
/// after `idleTimeout`) and receiving a request (answered 408 and closed when its head and body
/// have not all arrived `requestTimeout` after its first byte — the slowloris defence). While a
/// request is being answered (a long-poll fetch, an SSE stream) no deadline runs.
///
/// A transition only notes a deadline; one repeated check per connection, every quarter of the
/// shorter timeout, acts on it. So a request costs two clock reads and no timer scheduling, and a
/// timeout fires up to a quarter late.
///
/// `HTTPExchangeTracker`, behind the HTTP codec, tells it where requests and responses end. The
/// 408 is written here, below the codec, because a request head that never finished is one the
/// codec never saw.
final class HTTPDeadlines: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Phase { case idle, receiving, answering, closed }
    private let idleTimeout: TimeAmount
    private let requestTimeout: TimeAmount
    private let stats: ListenerStats
    private var phase = Phase.idle
    private var deadline = NIODeadline.distantFuture
    private var check: RepeatedTask?
    private var context: ChannelHandlerContext?
    /// Bytes received since the last response ended (see `channelReadComplete`).
    private var unanswered = 0
    /// How far reading runs ahead of the answers.
    static let readAheadBytes = 16 << 10

    init(idleTimeout: TimeAmount, requestTimeout: TimeAmount, stats: ListenerStats) {
        self.idleTimeout = idleTimeout
        self.requestTimeout = requestTimeout
        self.stats = stats
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        phase = .closed
        check?.cancel()
        check = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if phase == .idle {
            phase = .receiving
            deadline = .now() + requestTimeout
        }
        unanswered += unwrapInboundIn(data).readableBytes
        context.fireChannelRead(data)
    }

    /// Keeps the socket readable while a request is being answered. The API handler holds back
    /// reads while pipelined requests wait for an answer, and NIO then takes the socket out of the
    /// poller's read set and puts it back once the answer is written: two `epoll_ctl` calls for
    /// every request answered later (a publish waits for the log). Asking for the next read here
    /// leaves the read interest in place. What arrives meanwhile waits in the API handler, as
    /// pipelined requests always do; past `readAheadBytes` unanswered bytes the holding back
    /// applies again, so a client that pipelines without reading answers costs at most about that
    /// much more. Nor is anything read here while the answers wait for the client to take them
    /// (the channel is not writable): the API handler reads again once they drain.
    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
        if phase != .closed && unanswered < Self.readAheadBytes && context.channel.isActive && context.channel.isWritable {
            context.read()
        }
    }

    private func start(_ context: ChannelHandlerContext) {
        guard check == nil, phase != .closed else { return }
        deadline = .now() + idleTimeout
        let every = TimeAmount.nanoseconds(max(min(idleTimeout, requestTimeout).nanoseconds / 4, 5_000_000))
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        check = context.eventLoop.scheduleRepeatedTask(initialDelay: every, delay: every) { _ in bound.value.tick() }
    }

    // MARK: From the tracker behind the codec

    func requestHeadArrived() {
        guard phase == .idle else { return }
        phase = .receiving
        deadline = .now() + requestTimeout
    }

    func requestEndArrived() {
        guard phase != .closed else { return }
        phase = .answering
    }

    /// Whether it is in a pipeline and can write (`writeAnswer`).
    var attached: Bool { context != nil }

    /// Writes and flushes a whole response already encoded (`LoopInbox.okJSONAnswer`), from here
    /// toward the socket: past the HTTP encoder, which holds no state between responses.
    func writeAnswer(_ bytes: ByteBuffer) {
        context?.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
    }

    func responseEnded() {
        unanswered = 0
        guard phase != .closed else { return }
        phase = .idle
        deadline = .now() + idleTimeout
    }

    // MARK: The check

    private func tick() {
        guard let context, phase == .idle || phase == .receiving, NIODeadline.now() >= deadline else { return }
        check?.cancel()
        check = nil
        if phase == .idle {
            phase = .closed
            stats.count(.idleTimeout)
            context.close(promise: nil)
            return
        }
        phase = .closed
        stats.count(.requestTimeout)
        let body = Problem.requestTimeout(requestTimeout).body
        var buffer = context.channel.allocator.buffer(capacity: 160 + body.count)
        buffer.writeString("HTTP/1.1 408 Request Timeout\r\ncontent-type: application/problem+json\r\ncontent-length: \(body.count)\r\nconnection: close\r\n\r\n")
        buffer.writeBytes(body)
        let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in loopContext.value.close(promise: nil) }
    }
}

/// Behind the HTTP codec: tells `HTTPDeadlines` where each request and response ends, and counts
/// 431 answers. Only the refusing handler needs it (it answers one request and closes):
/// `HTTPConnectionHandler` does the same itself.
final class HTTPExchangeTracker: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let deadlines: HTTPDeadlines
    private let stats: ListenerStats

    init(deadlines: HTTPDeadlines, stats: ListenerStats) {
        self.deadlines = deadlines
        self.stats = stats
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: deadlines.requestHeadArrived()
        case .end: deadlines.requestEndArrived()
        case .body: break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status == .requestHeaderFieldsTooLarge:
            stats.count(.headerBytes)
        case .end:
            // Before passing it on: the pipelining handler hands over the next buffered request
            // from inside this write, and that request must find the connection idle.
            deadlines.responseEnded()
        default:
            break
        }
        context.write(data, promise: promise)
    }
}

/// Serves a connection refused by a connection limit: each request is read to its end and
/// answered 503 `connections.limit` with `Retry-After`, then the connection is closed.
final class HTTPRefusingHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let problem: Problem
    private var answered = false

    init(problem: Problem) { self.problem = problem }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data), !answered else { return }
        answered = true
        let body = problem.body
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/problem+json")
        headers.add(name: "content-length", value: String(body.count))
        headers.add(name: "retry-after", value: String(problem.retryAfterSeconds ?? 1))
        headers.add(name: "connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: problem.status, headers: headers))), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: body.count)
        buffer.writeBytes(body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in loopContext.value.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
