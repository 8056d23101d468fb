import ArgumentParser
import CHiredis
import Dispatch
import Foundation
import MeshBench

/// `meshgate-bench redis`: `XADD KEY * d DATA` throughput through hiredis, each producer on its own
/// connection keeping `--depth` commands pipelined (Redis answers in order, so the send times are a
/// queue per connection).
struct RedisLoad: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "redis", abstract: "Load a Redis server with stream appends through hiredis.")

    @Option(help: "Host.") var host = "127.0.0.1"
    @Option(help: "Port.") var port = 6379
    @Option(help: "Stream key.") var key = "bench"
    @OptionGroup var load: LoadOptions

    func run() throws {
        let stats = LoadStats(seconds: load.duration)
        let (host, port, key, depth, size, duration) = (self.host, self.port, self.key, load.depth, load.size, load.duration)
        let contexts: [OpaquePointer] = try (0..<load.producers).map { _ in
            guard let raw = redisConnect(host, Int32(port)) else { throw LoadFailure(description: "redisConnect: out of memory") }
            if raw.pointee.err != 0 {
                let message = withUnsafeBytes(of: raw.pointee.errstr) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                redisFree(raw)
                throw LoadFailure(description: "connect to \(host):\(port): \(message)")
            }
            return OpaquePointer(raw)
        }
        let shared = UnsafeSendable(contexts)
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(duration * 1e9)
        onThreads(contexts.count) { i in
            let c = UnsafeMutablePointer<redisContext>(shared.value[i])
            let data = [UInt8](repeating: 0x78, count: size)
            var sentAt = [UInt64](repeating: 0, count: depth)  // a ring: replies come back in order
            var head = 0, tail = 0, outstanding = 0
            let args: [[UInt8]] = [Array("XADD".utf8), Array(key.utf8), Array("*".utf8), Array("d".utf8), data]
            let lengths = args.map(\.count)
            func append() {
                args[0].withUnsafeBufferPointer { a0 in
                    args[1].withUnsafeBufferPointer { a1 in
                        args[2].withUnsafeBufferPointer { a2 in
                            args[3].withUnsafeBufferPointer { a3 in
                                args[4].withUnsafeBufferPointer { a4 in
                                    var argv: [UnsafePointer<CChar>?] = [a0, a1, a2, a3, a4].map { UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self) }
                                    _ = redisAppendCommandArgv(c, 5, &argv, lengths)
                                }
                            }
                        }
                    }
                }
                sentAt[tail] = DispatchTime.now().uptimeNanoseconds
                tail = (tail + 1) % depth
                outstanding += 1
            }
            let shard = stats.shard()
            func handle(_ reply: UnsafeMutableRawPointer?) {
                let ok = reply.map { $0.assumingMemoryBound(to: redisReply.self).pointee.type != REDIS_REPLY_ERROR } ?? false
                freeReplyObject(reply)
                shard.record(ok, since: sentAt[head])
                head = (head + 1) % depth
                outstanding -= 1
            }
            for _ in 0..<depth { append() }
            while outstanding > 0 {
                // Blocks for one reply, writing every appended command first in one go.
                var reply: UnsafeMutableRawPointer?
                if redisGetReply(c, &reply) != REDIS_OK {
                    // The connection failed: count what was outstanding as failed.
                    while outstanding > 0 { shard.record(false, since: 0); outstanding -= 1 }
                    break
                }
                handle(reply)
                // Every reply already read, without another system call.
                while outstanding > 0 {
                    var more: UnsafeMutableRawPointer?
                    guard redisReaderGetReply(c.pointee.reader, &more) == REDIS_OK, more != nil else { break }
                    handle(more)
                }
                // Refill the window; the commands go out with the next redisGetReply.
                if DispatchTime.now().uptimeNanoseconds < deadline {
                    while outstanding < depth { append() }
                } else {
                    stats.finish()
                }
            }
        }
        stats.finish()
        for c in contexts { redisFree(UnsafeMutablePointer<redisContext>(c)) }
        try load.finish(stats, mode: "XADD → reply latency")
        if stats.failed > 0 { throw ExitCode(1) }
    }
}
