#if canImport(Glibc)
import Glibc
#endif
import CMeshSupport
import Foundation
import Synchronization

/// Runs blocking work on a thread of its own and awaits it. Swift Testing runs the whole suite's
/// tests in parallel on the cooperative pool (one thread per core, two here): a test that blocks
/// one of those threads — waiting for a child process, sleeping between kills — stalls every other
/// async test, so process-driving tests do their blocking here instead.
public func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.start()
    }
}

/// The `meshgate` executable built beside the test bundle.
public var meshgateBinary: String {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("meshgate").path
}

/// A child process whose standard output (and optionally standard error) is collected by a
/// reader thread using plain `read(2)` — Foundation's `availableData` traps on EINTR.
public final class ChildProcess: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public let pid: pid_t
    private let output = Mutex<[UInt8]>([])
    private let finished = Mutex<Int32?>(nil)
    private let exited = DispatchSemaphore(value: 0)
    private let drained = DispatchSemaphore(value: 0)

    /// Starts `executable` (a path, or a name looked up on PATH) with `arguments`.
    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                mergeStandardError: Bool = false, stdin: [UInt8]? = nil) throws {
        var outPipe: [Int32] = [0, 0], inPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0, pipe(&inPipe) == 0 else { throw Failure(description: "pipe: \(String(cString: strerror(errno)))") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        if mergeStandardError {
            posix_spawn_file_actions_adddup2(&actions, outPipe[1], 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        }
        for fd in [outPipe[0], outPipe[1], inPipe[0], inPipe[1]] { posix_spawn_file_actions_addclose(&actions, fd) }
        // Nothing else of the test process goes to the child: NIO's accepted sockets are not
        // close-on-exec, and a child holding a copy of one keeps the connection open after the
        // in-process server closed it (its client then waits for an end of stream that comes only
        // when the child exits).
        mesh_spawn_close_from(&actions, 3)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let env = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { env.forEach { free($0) } }
        // The child starts with no blocked signals and default handlers: a thread of the test
        // runner may block SIGTERM (signal sources do), and the mask would be inherited.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        sigemptyset(&defaults)
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var child: pid_t = 0
        let rc = executable.contains("/")
            ? posix_spawn(&child, executable, &actions, &attributes, argv, env)
            : posix_spawnp(&child, executable, &actions, &attributes, argv, env)
        close(outPipe[1])
        close(inPipe[0])
        guard rc == 0 else {
            close(outPipe[0])
            close(inPipe[1])
            throw Failure(description: "cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        pid = child
        if let stdin {
            stdin.withUnsafeBytes { b in
                var done = 0
                while done < b.count {
                    let n = write(inPipe[1], b.baseAddress! + done, b.count - done)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    done += n
                }
            }
        }
        close(inPipe[1])
        let readFD = outPipe[0]
        let reader = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(readFD, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                output.withLock { $0 += buffer[0..<n] }
            }
            close(readFD)
            drained.signal()
        }
        reader.start()
        let spawned = child
        let waiter = Thread { [self] in
            var status: Int32 = 0
            while waitpid(spawned, &status, 0) < 0 && errno == EINTR {}
            finished.withLock { $0 = status }
            exited.signal()
        }
        waiter.start()
    }

    public var text: String { String(decoding: output.withLock { $0 }, as: UTF8.self) }
    public var isRunning: Bool { finished.withLock { $0 } == nil }

    /// True when the child was ended by a signal (SIGKILL in crash tests).
    public var wasSignaled: Bool {
        guard let s = finished.withLock({ $0 }) else { return false }
        return (s & 0x7f) != 0 && (s & 0x7f) != 0x7f
    }

    /// The exit code of a child that exited normally.
    public var exitCode: Int32? {
        guard let s = finished.withLock({ $0 }), (s & 0x7f) == 0 else { return nil }
        return (s >> 8) & 0xff
    }

    /// Waits (without holding a cooperative thread) until the output contains `needle`, the child
    /// exits, or `timeout` passes. Returns whether the needle was seen.
    @discardableResult
    public func waitForOutput(containing needle: String, timeout: Duration = .seconds(20)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if text.contains(needle) { return true }
            if !isRunning { return text.contains(needle) }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return text.contains(needle)
    }

    public func signal(_ sig: Int32) {
        kill(pid, sig)
    }

    /// Waits for the child to exit; returns its output once the reader has drained the pipe.
    @discardableResult
    public func wait() async throws -> String {
        try await onThread { [exited, drained] in
            exited.wait()
            exited.signal()
            // The reader sees end-of-file once every writer is gone (a grandchild could hold the
            // pipe open: don't wait for it forever).
            if drained.wait(timeout: .now() + 5) == .success { drained.signal() }
        }
        return text
    }

    /// Runs a program to completion: exit code and combined output.
    public static func run(_ executable: String, _ arguments: [String], stdin: [UInt8]? = nil) async throws -> (status: Int32, output: String) {
        let child = try ChildProcess(executable, arguments, mergeStandardError: true, stdin: stdin)
        let output = try await child.wait()
        return (child.exitCode ?? -1, output)
    }
}

/// The names the kernel holds for this process's threads (/proc/self/task/*/comm: what `top -H` and
/// `perf` show), at most 15 bytes each.
public func threadNames() -> [String] {
    guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return [] }
    return tasks.compactMap { tid in
        (try? String(contentsOfFile: "/proc/self/task/\(tid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
