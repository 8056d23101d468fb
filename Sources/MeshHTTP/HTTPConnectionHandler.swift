import MeshAuth
import MeshBroker
import MeshCore
import MeshNet
import NIOCore
import NIOHTTP1

/// One connection's requests, one at a time. A pipelined request that arrives while an earlier
/// one is being answered waits in `pending` (with the rest of the input after it, in order), and
/// the socket is not read again until every waiting request has been taken up, so a client that
/// pipelines without reading answers costs a bounded amount. This replaces NIO's
/// `HTTPServerPipelineHandler`, which did the same one pipeline hop further out for every part of
/// every request and response (docs/architecture.md). Everything here runs on the connection's
/// event loop; broker completions and reads in tasks come back to it through `respondLater`.
final class HTTPConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Input that came after a request still being answered.
    private enum Pending {
        case part(HTTPServerRequestPart)
        case malformed(HTTPParserError)
    }

    private enum State {
        case idle
        /// Collecting the body of a request that will be answered at its end.
        case collecting(head: HTTPRequestHead, route: Route, query: Substring, body: ByteBuffer?, limit: Int)
        /// Reading past a request that is already decided (answered at its end with `answer`, or
        /// already answered when nil).
        case discarding(answer: Problem?)
        /// Waiting for the broker or a read task to answer.
        case waiting
        /// A Server-Sent Events stream owns the connection until it closes.
        case streaming
        case closed
    }

    private let core: ServerCore
    /// Where publish completions come back to this connection's loop, batched per burst.
    private var inbox: LoopInbox?
    private var state = State.idle
    /// The CloudEvents mode of the publish in progress, found once from its head.
    private var publishMode = CloudEventsHTTP.Mode.plain
    private var keepAlive = true
    private var pending = CircularBuffer<Pending>()
    /// A read asked for while requests were pending: issued once they have all been taken up.
    private var readHeld = false
    /// `takeUpPending` is running (an answer given synchronously inside it must not recurse).
    private var takingUp = false

    /// Told where each request and response ends (the request and idle deadlines).
    private let deadlines: HTTPDeadlines?
    private let stats: ListenerStats?

    init(core: ServerCore, deadlines: HTTPDeadlines? = nil, stats: ListenerStats? = nil) {
        self.core = core
        self.deadlines = deadlines
        self.stats = stats
    }

    func channelInactive(context: ChannelHandlerContext) {
        state = .closed
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if !pending.isEmpty { pending.append(.part(part)); return }
        if case .head = part, !isIdle { pending.append(.part(part)); return }
        handle(part, context: context)
    }

    /// No read while requests wait, nor while the answers already written wait for the client to
    /// take them (the channel is not writable: NIO's outbound buffer is over its high-water mark).
    /// A client that pipelines requests and never reads answers otherwise makes the listener
    /// buffer answers without end.
    func read(context: ChannelHandlerContext) {
        if pending.isEmpty && context.channel.isWritable { context.read() } else { readHeld = true }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { takeUpPending(context: context) }
        context.fireChannelWritabilityChanged()
    }

    private var isIdle: Bool {
        if case .idle = state { return true }
        return false
    }

    /// Whether the state is one in which the next request (or a malformed one) may be taken up.
    private var readyForNext: Bool {
        switch state {
        case .idle: true
        case .collecting, .discarding: true  // only for the parts of the request in progress
        case .waiting, .streaming, .closed: false
        }
    }

    /// Takes up the input that waited, in order, while the connection is free for it and its
    /// answers are being taken; then lets the socket be read again once nothing waits.
    private func takeUpPending(context: ChannelHandlerContext) {
        guard !takingUp else { return }
        takingUp = true
        defer { takingUp = false }
        while let next = pending.first {
            switch next {
            case .part(.head): if !isIdle || !context.channel.isWritable { return }
            case .part, .malformed: if !readyForNext { return }
            }
            pending.removeFirst()
            switch next {
            case .part(let part): handle(part, context: context)
            case .malformed(let error): answerMalformed(error, context: context)
            }
        }
        if readHeld && context.channel.isWritable {
            readHeld = false
            context.read()
        }
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            deadlines?.requestHeadArrived()
            receiveHead(head, context: context)
        case .body(var chunk):
            guard case .collecting(let head, let route, let query, var body, let limit) = state else { return }
            let size = (body?.readableBytes ?? 0) + chunk.readableBytes
            if size > limit {
                // Answer now and close: the rest of the body is never read.
                state = .discarding(answer: nil)
                keepAlive = false
                respond(context: context, problem: .bodyTooLarge(limit: limit))
                return
            }
            // Out of the state first, so the buffer is uniquely held and grows in place.
            state = .waiting
            if body == nil {
                body = chunk
            } else {
                body!.writeBuffer(&chunk)
            }
            state = .collecting(head: head, route: route, query: query, body: body, limit: limit)
        case .end:
            deadlines?.requestEndArrived()
            switch state {
            case .collecting(let head, let route, let query, let body, _):
                state = .waiting
                admit(route, head: head, query: query, body: body, context: context)
            case .discarding(let answer?):
                state = .waiting
                respond(context: context, problem: answer)
            case .discarding(nil):
                state = keepAlive ? .idle : .closed
                if keepAlive { takeUpPending(context: context) }
            default:
                break
            }
        }
    }

    private func receiveHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard case .idle = state else { return }
        keepAlive = head.isKeepAlive
        var headerBytes = 0
        for (name, value) in head.headers { headerBytes += name.utf8.count + value.utf8.count + 4 }
        if headerBytes > core.configuration.maxHeaderBytes {
            keepAlive = false
            state = .discarding(answer: nil)
            respond(context: context, problem: .headersTooLarge(limit: core.configuration.maxHeaderBytes))
            return
        }
        if core.shuttingDown.load(ordering: .relaxed) {
            keepAlive = false
            state = .discarding(answer: .shuttingDown())
            return
        }
        let (path, query) = Router.split(head.uri)
        switch Router.match(head.method, path) {
        case .notFound:
            state = .discarding(answer: .notFound(String(path)))
        case .methodNotAllowed(let allow):
            state = .discarding(answer: .methodNotAllowed(head.method, String(path), allow: allow))
        case .badPath(let why):
            state = .discarding(answer: .invalidRequest(why))
        case .route(let route):
            let limit: Int
            switch route {
            case .publish:
                publishMode = CloudEventsHTTP.mode(of: head.headers)
                switch publishMode {
                case .plain, .binary: limit = core.broker.options.maxEventBytes
                case .structured, .batch: limit = core.configuration.maxStructuredBodyBytes
                }
            case .groupOffsets: limit = 1 << 20
            default: limit = 64 << 10
            }
            if let length = head.headers.first(name: "content-length").flatMap({ Int($0) }), length > limit {
                keepAlive = false
                state = .discarding(answer: nil)
                respond(context: context, problem: .bodyTooLarge(limit: limit))
                return
            }
            state = .collecting(head: head, route: route, query: query, body: nil, limit: limit)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A malformed request (the decoder's errors): answered 400 after the answers to the
        // requests before it, then the connection closes, since the byte stream can no longer be
        // trusted. Any other error (a reset, a TLS failure) leaves no one to answer: close.
        guard let parserError = error as? HTTPParserError else {
            keepAlive = false
            context.close(promise: nil)
            return
        }
        switch state {
        case .streaming, .closed:
            keepAlive = false
            context.close(promise: nil)
        case .waiting:
            // Answered after the request before it, like any pipelined input.
            pending.append(.malformed(parserError))
        case .idle, .collecting, .discarding:
            if pending.isEmpty { answerMalformed(parserError, context: context) } else { pending.append(.malformed(parserError)) }
        }
    }

    private func answerMalformed(_ parserError: HTTPParserError, context: ChannelHandlerContext) {
        keepAlive = false
        switch state {
        case .idle, .collecting, .discarding:
            state = .discarding(answer: nil)
            if parserError == .headerOverflow {
                respond(context: context, problem: .headersTooLarge(limit: core.configuration.maxHeaderBytes))
                return
            }
            respond(context: context, problem: .malformedHTTP("the request is not valid HTTP/1.1 (\(parserError))"))
        default:
            context.close(promise: nil)
        }
    }

    // MARK: Dispatch

    /// Authenticates the request when its route needs it (a JWT is verified off the loop), checks
    /// the admin flag, then dispatches with the identity. docs/security.md.
    private func admit(_ route: Route, head: HTTPRequestHead, query: Substring, body: ByteBuffer?, context: ChannelHandlerContext) {
        let access = core.configuration.access
        let requirement = route.access
        guard access.enabled, requirement != .open else {
            return dispatch(route, identity: .anonymous, credential: "", head: head, query: query, body: body, context: context)
        }
        let credential = HTTPCredential.bearer(head.headers)
        if let decided = access.authenticateNow(credential) {
            return authenticated(decided, credential: credential, route, head: head, query: query, body: body, context: context)
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        Task {
            let result = await access.authenticate(credential)
            bound.eventLoop.execute {
                let (handler, context) = bound.value
                handler.authenticated(result, credential: credential, route, head: head, query: query, body: body, context: context)
            }
        }
    }

    private func authenticated(_ result: Result<Identity, AuthFailure>, credential: String, _ route: Route, head: HTTPRequestHead,
                               query: Substring, body: ByteBuffer?, context: ChannelHandlerContext) {
        switch result {
        case .failure(let failure):
            respond(context: context, problem: .unauthorized(failure))
        case .success(let identity):
            if route.access == .admin, let denied = core.configuration.access.checkAdmin(identity, String(Router.split(head.uri).path)) {
                respond(context: context, problem: .forbidden(denied))
            } else {
                dispatch(route, identity: identity, credential: credential, head: head, query: query, body: body, context: context)
            }
        }
    }

    private func dispatch(_ route: Route, identity: Identity, credential: String, head: HTTPRequestHead, query: Substring,
                          body: ByteBuffer?, context: ChannelHandlerContext) {
        do throws(Problem) {
            switch route {
            case .publish(let topic): try publish(topic: topic, identity: identity, head: head, body: body, context: context)
            case .fetch(let topic): try fetch(topic: topic, identity: identity, query: QueryParameters(query), context: context)
            case .stream(let pattern):
                state = .streaming
                try EventStream.start(pattern: pattern, identity: identity, credential: credential, query: QueryParameters(query),
                                      headers: head.headers, core: core, context: context)
            case .group(let name): try groupView(name, identity: identity, context: context)
            case .groupOffsets(let name): try commitOffsets(name, identity: identity, body: body, context: context)
            case .status: respond(context: context, json: Admin.status(core.status))
            case .topics: respond(context: context, json: Admin.topics(core.broker))
            case .healthz: respond(context: context, json: Array(#"{"status":"ok"}"#.utf8))
            case .readyz:
                if let reason = core.status.notReadyReason {
                    respond(context: context, problem: .notReady(reason))
                } else {
                    respond(context: context, json: Array(#"{"status":"ready"}"#.utf8))
                }
            case .openapi:
                respond(context: context, status: .ok, contentType: "application/yaml", body: core.openAPIBytes)
            case .routes:
                respond(context: context, json: core.configuration.admin?.routes() ?? Array(#"{"generation":0,"loaded":false,"files":[],"routes":[],"last_error":"routing is off: no routes directory"}"#.utf8))
            case .connectors:
                respond(context: context, json: core.configuration.admin?.connectors() ?? Array(#"{"connectors":[],"destinations":[]}"#.utf8))
            case .metrics:
                guard let body = core.configuration.admin?.metrics() else {
                    throw Problem.notFound("/metrics (metrics are off: serve --metrics on)")
                }
                respond(context: context, status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: body)
            case .statusPage:
                respond(context: context, status: .ok, contentType: "text/html; charset=utf-8", body: StatusPage.html)
            case .reloadRoutes:
                guard let admin = core.configuration.admin else {
                    throw Problem.notReady("routing is off: no routes directory")
                }
                respondLater(context: context) { () async throws(Problem) -> [UInt8] in
                    switch await admin.reloadRoutes() {
                    case .success(let body): return body
                    case .failure(let rejected):
                        throw rejected.routingOff ? Problem.notReady(rejected.errors.joined(separator: "; ")) : Problem.routesRejected(rejected.errors)
                    }
                }
            }
        } catch {
            state = .waiting
            respond(context: context, problem: error)
        }
    }

    private func publish(topic name: String, identity: Identity, head: HTTPRequestHead, body: ByteBuffer?,
                         context: ChannelHandlerContext) throws(Problem) {
        let topic: Topic
        do { topic = try Topic(name) } catch { throw .invalidTopic(error) }
        let bytes = body.map { Array($0.readableBytesView) } ?? []
        let events: [Event]
        let batch: Bool
        switch publishMode {
        case .plain:
            events = [CloudEventsHTTP.plainEvent(topic: topic, headers: head.headers, body: bytes)]
            batch = false
        case .binary:
            events = [try CloudEventsHTTP.binaryEvent(topic: topic, headers: head.headers, body: bytes)]
            batch = false
        case .structured:
            events = try CloudEventsHTTP.structuredEvents(topic: topic, body: bytes, batch: false)
            batch = false
        case .batch:
            events = try CloudEventsHTTP.structuredEvents(topic: topic, body: bytes, batch: true)
            batch = true
        }
        let access = core.configuration.access
        if let denied = access.checkPublish(identity, events.lazy.map(\.topic)) { throw .forbidden(denied) }
        if let limited = access.admitPublish(identity, count: events.count) { throw .rateLimited(limited) }
        core.inflight.add(1, ordering: .relaxed)
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let inbox = self.inbox ?? core.inbox(for: context.eventLoop)
        self.inbox = inbox
        // Handed to the loop's batch: the broker gets every publish this loop iteration decodes,
        // from all its connections, at once; the answer still comes back to this connection alone.
        inbox.publish(PublishRequest(events: events) { result in
            inbox.complete(LoopInbox.Answer(to: bound, batch: batch, result: result))
        })
    }

    /// Answers a publish once its events are durable (or failed). On the loop, from `LoopInbox`.
    func answer(_ result: Result<[PublishReceipt], BrokerError>, batch: Bool, context: ChannelHandlerContext) {
        switch result {
        case .success(let receipts):
            var w = JSONWriter(capacity: 96 * receipts.count)
            if batch { w.raw("[") }
            for (i, r) in receipts.enumerated() {
                if i > 0 { w.raw(",") }
                Admin.writeReceipt(r, into: &w)
            }
            if batch { w.raw("]") }
            respond(context: context, json: w.bytes)
        case .failure(let error):
            respond(context: context, problem: Problem(error))
        }
        core.inflight.subtract(1, ordering: .relaxed)
    }

    private func fetch(topic name: String, identity: Identity, query: QueryParameters, context: ChannelHandlerContext) throws(Problem) {
        let topic: Topic
        do { topic = try Topic(name) } catch { throw .invalidTopic(error) }
        if let denied = core.configuration.access.checkRead(identity, [topic]) { throw .forbidden(denied) }
        let partition = try query.int("partition", default: 0, range: 0...Int(Int32.max))
        let max = try query.int("max", default: 100, range: 1...core.configuration.maxFetchEvents)
        let wait = try query.int("wait_ms", default: 0, range: 0...core.configuration.maxFetchWaitMilliseconds)
        var requested: Int64?
        if let text = query["offset"] {
            guard let o = Int64(text), o >= 0 else { throw .invalidRequest("query parameter \"offset\" must be a non-negative integer, got \"\(text)\"") }
            requested = o
        }
        let offset = requested
        let broker = core.broker
        respondLater(context: context) { () async throws(Problem) -> [UInt8] in
            do throws(BrokerError) {
                let start: Int64
                if let offset { start = offset } else {
                    let log = try broker.topicLog(topic)
                    guard log.partitions.indices.contains(partition) else {
                        throw BrokerError(.unknownPartition, "topic \(topic) has no partition \(partition) (it has \(log.partitions.count))")
                    }
                    start = log.partitions[partition].startOffset
                }
                let (deliveries, next) = try await broker.fetch(topic: topic, partition: partition, from: start, max: max, waitMilliseconds: wait)
                var w = JSONWriter(capacity: 256 + deliveries.reduce(0) { $0 + $1.payload.count * 2 })
                w.raw(#"{"events":["#)
                for (i, d) in deliveries.enumerated() {
                    if i > 0 { w.raw(",") }
                    CloudEventsHTTP.writeStructured(try d.decode(), topic: d.topic, partition: d.partition, offset: d.offset, into: &w)
                }
                w.raw(#"],"next_offset":"#)
                w.int(next)
                w.raw("}")
                return w.bytes
            } catch {
                throw Problem(error)
            }
        }
    }

    /// A group's offsets are shown to an identity that may read every topic they name.
    private func groupView(_ name: String, identity: Identity, context: ChannelHandlerContext) throws(Problem) {
        let topics = core.broker.committed(group: name).compactMap { try? Topic($0.topic) }
        if let denied = core.configuration.access.checkRead(identity, topics) { throw .forbidden(denied) }
        respond(context: context, json: Admin.group(name, broker: core.broker))
    }

    private func commitOffsets(_ name: String, identity: Identity, body: ByteBuffer?, context: ChannelHandlerContext) throws(Problem) {
        let offsets = try Admin.parseOffsets(body.map { Array($0.readableBytesView) } ?? [])
        let topics = offsets.compactMap { try? Topic($0.topic) }
        if let denied = core.configuration.access.checkRead(identity, topics) { throw .forbidden(denied) }
        let broker = core.broker
        respondLater(context: context) { () async throws(Problem) -> [UInt8] in
            do throws(BrokerError) { try await broker.commit(group: name, offsets) } catch { throw Problem(error) }
            return Admin.group(name, broker: broker)
        }
    }

    /// Runs `work` in a task, off the event loop, and answers with its JSON or its problem.
    private func respondLater(context: ChannelHandlerContext, _ work: @escaping @Sendable () async throws(Problem) -> [UInt8]) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        Task {
            let result: Result<[UInt8], Problem>
            do throws(Problem) { result = .success(try await work()) } catch { result = .failure(error) }
            bound.eventLoop.execute {
                let (handler, context) = bound.value
                switch result {
                case .success(let json): handler.respond(context: context, json: json)
                case .failure(let problem): handler.respond(context: context, problem: problem)
                }
            }
        }
    }

    // MARK: Responding

    func respond(context: ChannelHandlerContext, json: [UInt8]) {
        // The common answer (a receipt) goes out as one buffer of bytes, its head made once per
        // length on this loop, written below the HTTP encoder (by the deadlines, which sit between
        // it and the socket): one write through the pipeline instead of three, and no head to
        // encode. The encoder holds no state between responses, so skipping it for a whole
        // response leaves it as it was.
        if keepAlive, let inbox, let deadlines, deadlines.attached {
            if case .closed = state { return }
            endKeepAliveAnswer(context: context) {
                deadlines.writeAnswer(inbox.okJSONAnswer(json, allocator: context.channel.allocator))
            }
            return
        }
        respond(context: context, status: .ok, contentType: "application/json", body: json)
    }

    func respond(context: ChannelHandlerContext, problem: Problem) {
        var extra: [(String, String)] = []
        if let s = problem.retryAfterSeconds { extra.append(("retry-after", String(s))) }
        if !problem.allow.isEmpty { extra.append(("allow", problem.allow.map(\.rawValue).joined(separator: ", "))) }
        if let challenge = problem.challenge { extra.append(("www-authenticate", challenge)) }
        respond(context: context, status: problem.status, contentType: "application/problem+json", body: problem.body, extraHeaders: extra)
    }

    func respond(context: ChannelHandlerContext, status: HTTPResponseStatus, contentType: String, body: [UInt8],
                 extraHeaders: [(String, String)] = []) {
        if case .closed = state { return }
        if status == .requestHeaderFieldsTooLarge { stats?.count(.headerBytes) }
        var headers = HTTPHeaders()
        headers.reserveCapacity(4 + extraHeaders.count)
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(body.count))
        for (n, v) in extraHeaders { headers.add(name: n, value: v) }
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: body.count)
        buffer.writeBytes(body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        if keepAlive {
            endKeepAliveAnswer(context: context) { context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil) }
        } else {
            deadlines?.responseEnded()
            state = .closed
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }

    /// The last write of a keep-alive answer (`finish`), with what answering frees: a request
    /// answered before its end was read keeps discarding until its end; otherwise the connection is
    /// idle again, and the next pending request, if any, is taken up once the answer is written.
    private func endKeepAliveAnswer(context: ChannelHandlerContext, _ finish: () -> Void) {
        deadlines?.responseEnded()
        if case .discarding = state {} else { state = .idle }
        finish()
        if !pending.isEmpty { takeUpPending(context: context) }
    }
}
