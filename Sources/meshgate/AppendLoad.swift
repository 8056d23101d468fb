import ArgumentParser
import Foundation
import MeshCore
import MeshLog

/// Appends under load and prints each acknowledged record, for crash tests and the recovery
/// benchmark. An acknowledgement line reads `ack <partition> <offset> <run> <producer> <seq>
/// <crc32c of the payload> <payload length>`; a payload starts with `r<run>:p<producer>:s<seq>:`. Hidden: it is a test tool, not part of the product's interface.
struct AppendLoad: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "append-load", abstract: "Append under load, printing acknowledgements (testing tool).", shouldDisplay: false)

    @Option var data: String
    @Option(help: "Topic to append to.") var topic = "crash/test"
    @Option var partitions = 2
    @Option(help: "always, interval[:ms] or none") var fsync = "always"
    @Option var producers = 8
    @Option(help: "Appends each producer keeps in flight.") var inflight = 16
    @Option(help: "Stop after this many payload bytes (0: run until killed).") var bytes: Int64 = 0
    @Option(help: "Largest payload; payloads are 1..max bytes, derived from the sequence number.") var maxPayload = 2000
    @Option(help: "Segment size in bytes.") var segmentBytes: Int64 = 1 << 20
    @Flag(help: "Print an acknowledgement line per record.") var acks = false
    @Flag(help: "After the byte budget, print \"written\" and wait to be killed, leaving the log open.") var hold = false

    func run() throws {
        guard let durability = Durability(parsing: fsync) else { throw ValidationError("bad --fsync \(fsync)") }
        var options = LogOptions()
        options.segmentBytes = segmentBytes
        let log = try DurableLog(directory: data, options: options)
        let t = try log.createTopic(Topic(topic), config: TopicConfig(partitions: partitions, durability: durability))
        let runner = LoadRunner(topic: t, producers: producers, inflight: inflight, maxPayload: maxPayload,
                                byteBudget: bytes, printAcks: acks, runID: UInt32(truncatingIfNeeded: getpid()))
        runner.start()
        runner.done.wait()
        if hold {
            FileHandle.standardOutput.write("written\n".data(using: .utf8)!)
            while true { sleep(3600) }
        }
        log.close()
        FileHandle.standardOutput.write("done\n".data(using: .utf8)!)
    }
}

/// Expected payload of a record, so a reader can check it independently of the writer.
/// Layout: "r<run>:p<producer>:s<seq>:" followed by filler bytes derived from the same numbers.
func loadPayload(run: UInt32, producer: Int, seq: Int, maxPayload: Int) -> [UInt8] {
    var bytes = Array("r\(run):p\(producer):s\(seq):".utf8)
    var x = UInt64(run) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(producer) << 32 ^ UInt64(seq)
    let length = max(bytes.count, Int((x % UInt64(maxPayload)) + 1))
    while bytes.count < length {
        x = x &* 6364136223846793005 &+ 1442695040888963407
        bytes.append(UInt8(truncatingIfNeeded: x >> 33))
    }
    return bytes
}

final class LoadRunner: @unchecked Sendable {
    let topic: TopicLog
    let producers: Int
    let inflight: Int
    let maxPayload: Int
    let byteBudget: Int64
    let printAcks: Bool
    let runID: UInt32
    let done = DispatchSemaphore(value: 0)
    private let lock = NSRecursiveLock()
    private var seqs: [Int]
    private var written: Int64 = 0
    private var outstanding = 0
    private var stopping = false

    init(topic: TopicLog, producers: Int, inflight: Int, maxPayload: Int, byteBudget: Int64, printAcks: Bool, runID: UInt32) {
        self.topic = topic
        self.producers = producers
        self.inflight = inflight
        self.maxPayload = maxPayload
        self.byteBudget = byteBudget
        self.printAcks = printAcks
        self.runID = runID
        seqs = Array(repeating: 0, count: producers)
    }

    func start() {
        for p in 0..<producers { for _ in 0..<inflight { next(p) } }
    }

    /// Issues the producer's next append. The lock is held across the append call so that a
    /// producer's records are queued in sequence order (appends only enqueue; the lock is recursive
    /// because a failing append completes at once).
    private func next(_ producer: Int) {
        lock.lock()
        defer { lock.unlock() }
        if stopping || (byteBudget > 0 && written >= byteBudget) {
            stopping = true
            if outstanding == 0 { done.signal() }
            return
        }
        let seq = seqs[producer]
        seqs[producer] += 1
        let payload = loadPayload(run: runID, producer: producer, seq: seq, maxPayload: maxPayload)
        written += Int64(payload.count)
        outstanding += 1
        topic.append(payload, key: "producer-\(producer)") { [self] result in
            switch result {
            case .success(let at):
                if printAcks {
                    let crc = payload.withUnsafeBytes { crc32c($0) }
                    let line = "ack \(at.partition) \(at.offset) \(runID) \(producer) \(seq) \(crc) \(payload.count)\n"
                    line.utf8CString.withUnsafeBufferPointer { buf in _ = write(1, buf.baseAddress, buf.count - 1) }
                }
            case .failure(let error):
                let line = "error \(error)\n"
                line.utf8CString.withUnsafeBufferPointer { buf in _ = write(2, buf.baseAddress, buf.count - 1) }
            }
            lock.lock()
            outstanding -= 1
            let finished = stopping && outstanding == 0
            lock.unlock()
            if finished { done.signal() } else { next(producer) }
        }
    }
}
