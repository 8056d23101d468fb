import ArgumentParser
import Dispatch
import Foundation
import MeshBench
#if canImport(Glibc)
import Glibc
#endif

/// `meshgate-bench tcp`: the machine's loopback TCP ceiling — one stream, 1 MiB `write`s from one
/// thread, 1 MiB `read`s on another, for `--duration` seconds.
struct TCPCeiling: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tcp", abstract: "Measure raw loopback TCP throughput (one stream).")

    @Option(help: "Seconds to run.") var duration = 3.0
    @Option(help: "Bytes per write and read.") var chunk = 1 << 20
    @Option(help: "Also write the figures as JSON to this file.") var json: String?

    func run() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw LoadFailure(description: "socket: \(errno)") }
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                guard bind(listener, sa, length) == 0, listen(listener, 1) == 0, getsockname(listener, sa, &length) == 0 else {
                    throw LoadFailure(description: "bind/listen: \(errno)")
                }
            }
        }
        let sender = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(sender) }
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(sender, $0, length) }
        }
        guard connected == 0 else { throw LoadFailure(description: "connect: \(errno)") }
        let receiver = accept(listener, nil, nil)
        guard receiver >= 0 else { throw LoadFailure(description: "accept: \(errno)") }
        let chunk = self.chunk
        let received = Counter64()
        let reader = Thread {
            var buffer = [UInt8](repeating: 0, count: chunk)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(receiver, $0.baseAddress, chunk) }
                if n <= 0 { break }
                received.add(n)
            }
            close(receiver)
        }
        reader.start()
        let data = [UInt8](repeating: 0x78, count: chunk)
        let start = DispatchTime.now().uptimeNanoseconds
        let end = start + UInt64(duration * 1e9)
        var sent = 0
        while DispatchTime.now().uptimeNanoseconds < end {
            let n = data.withUnsafeBytes { write(sender, $0.baseAddress, chunk) }
            if n <= 0 { throw LoadFailure(description: "write: \(errno)") }
            sent += n
        }
        let bytes = received.value
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        shutdown(sender, Int32(SHUT_WR))
        while !reader.isFinished { usleep(1000) }
        let mbps = Double(bytes) / seconds / 1e6
        print(String(format: "loopback TCP, one stream, %d-byte writes: %.0f MB/s over %.1f s", chunk, mbps, seconds))
        if let json {
            let summary = LoadSummary(ok: bytes / chunk, failed: 0, seconds: seconds, perSecond: Double(bytes / chunk) / seconds,
                                      megabytesPerSecond: mbps, samples: 0, p50Micros: 0, p90Micros: 0, p99Micros: 0, p999Micros: 0, maxMicros: 0)
            try summary.write(to: json)
        }
    }
}

final class Counter64: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add(_ k: Int) { lock.lock(); n += k; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
