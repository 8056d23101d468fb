import MeshTestSupport
import Foundation
import Logging
import MeshCore
import MeshLog
import Synchronization
import Testing

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// Debian's Python, where `python3-paho-mqtt` installs (a pyenv `python3` on PATH may lack it).
let systemPython = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"
let testClient = repositoryRoot + "/scripts/mqtt-test-client.py"

var meshgateBinary: String {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("meshgate").path
}

final class Scratch {
    let path: String
    init(_ name: String = #function) {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        path = NSTemporaryDirectory() + "meshgate-mqtt-\(safe)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ name: String, _ text: String) throws {
        let full = path + "/" + name
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: true, encoding: .utf8)
    }
}

let quietLogger: Logger = {
    var l = Logger(label: "test")
    l.logLevel = .critical
    return l
}()

/// A free loopback TCP port for a broker started later (and restarted on it): `reservablePort`.
func freePort() -> Int { reservablePort() }

func portOpen(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
}

/// A real mosquitto broker, started by the test on a free port with a generated configuration,
/// persistence in the scratch directory, and no per-client queue limit (see docs/connectors.md:
/// the default of 1000 drops messages for a subscriber that falls behind).
final class Mosquitto: @unchecked Sendable {
    // @unchecked: used from one test at a time; `process` changes only in start/stop.
    let port: Int
    let dir: String
    let config: String
    private var process: pid_t?

    init(dir: String, port: Int = freePort(), listener: String? = nil, extra: String = "") throws {
        self.port = port
        self.dir = dir
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        config = dir + "/mosquitto.conf"
        let text = """
        \(listener ?? "listener \(port) 127.0.0.1\nallow_anonymous true")
        user root
        persistence true
        persistence_location \(dir)/
        max_queued_messages 0
        log_dest file \(dir)/mosquitto.log
        log_type all
        \(extra)

        """
        try text.write(toFile: config, atomically: true, encoding: .utf8)
    }

    func start() throws {
        let pid = try spawnWithDefaultSignals("/usr/sbin/mosquitto", ["-c", config])
        process = pid
        let deadline = Date().addingTimeInterval(10)
        while !portOpen(port) {
            if Date() > deadline || waitpid(pid, nil, WNOHANG) != 0 { throw TestFailure("mosquitto did not start on port \(port); see \(dir)/mosquitto.log") }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// A clean stop (SIGTERM): mosquitto saves its persistence database and exits.
    func stop() {
        guard let pid = process else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if Date() > deadline {
                Issue.record("mosquitto ignored SIGTERM for 10 s; killing it")
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                break
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
        process = nil
    }

    deinit { stop() }
}

/// Starts a program with an empty signal mask and default handlers. Foundation's `Process` passes
/// on the spawning thread's mask, and test threads block SIGTERM: a broker started that way ignores
/// `terminate()`, is SIGKILLed, and never saves its persistence database.
func spawnWithDefaultSignals(_ path: String, _ args: [String]) throws -> pid_t {
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attr, &none)
    var all = sigset_t()
    sigfillset(&all)
    posix_spawnattr_setsigdefault(&attr, &all)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
    defer { for a in argv { free(a) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, &attr, argv, environ)
    if rc != 0 { throw TestFailure("cannot start \(path): \(String(cString: strerror(rc)))") }
    return pid
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A child process whose stdout lines are collected as they come.
final class Child: @unchecked Sendable {
    // @unchecked: `lines` is a Mutex; the rest is set in init.
    let process = Process()
    private final class Lines: Sendable { let value = Mutex<[String]>([]) }
    private let lines = Lines()
    private let reader: Thread
    /// Signalled when the reader has seen the end of the output: the process's last line is in.
    private let drained = DispatchSemaphore(value: 0)

    init(_ executable: String, _ args: [String], stdin: FileHandle? = nil) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        if let stdin { process.standardInput = stdin }
        try process.run()
        let handle = out.fileHandleForReading
        let lines = self.lines
        let drained = self.drained
        reader = Thread {
            defer { drained.signal() }
            var buffer = ""
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                buffer += String(decoding: chunk, as: UTF8.self)
                while let nl = buffer.firstIndex(of: "\n") {
                    let line = String(buffer[..<nl])
                    buffer = String(buffer[buffer.index(after: nl)...])
                    lines.value.withLock { $0.append(line) }
                }
            }
        }
        reader.start()
    }

    var output: [String] { lines.value.withLock { $0 } }

    /// Waits until a line satisfies `predicate`; returns it.
    @discardableResult
    func waitFor(_ seconds: Double = 20, _ predicate: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let l = output.last(where: predicate) { return l }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return nil
    }

    func terminate() {
        if process.isRunning { process.terminate() }
        waitForExitAndOutput()
    }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        waitForExitAndOutput()
    }

    func wait() { waitForExitAndOutput() }

    /// The process has exited and its output has been read to the end: reading `output` right
    /// after the exit could miss the last lines, which the reader thread had not yet taken.
    private func waitForExitAndOutput() {
        process.waitUntilExit()
        if drained.wait(timeout: .now() + 10) == .success { drained.signal() }
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// Starts `meshgate mqtt-run` on `data` with `routes`.
func startMeshgate(data: String, routes: String, extra: [String] = []) throws -> Child {
    try Child(meshgateBinary, ["mqtt-run", "--data", data, "--routes", routes] + extra)
}

/// Runs a program to completion; returns its exit status and stdout.
@discardableResult
func run(_ executable: String, _ args: [String], input: String? = nil) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    let inPipe = Pipe()
    if input != nil { p.standardInput = inPipe }
    try p.run()
    if let input {
        let h = inPipe.fileHandleForWriting
        DispatchQueue.global().async {
            h.write(input.data(using: .utf8)!)
            try? h.close()
        }
    }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

func openLog(_ dir: String) throws -> DurableLog {
    var o = LogOptions()
    o.retentionCheckMicros = nil
    return try DurableLog(directory: dir, options: o, logger: quietLogger)
}

