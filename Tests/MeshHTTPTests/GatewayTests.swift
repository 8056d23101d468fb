import Foundation
import MeshGateway
import MeshHTTP
import MeshLog
import MeshTestSupport
import Testing

@Suite struct GatewayConfigTests {
    @Test func flagsBeatEnvironmentWhichBeatsTheFile() throws {
        let dir = ScratchDirectory()
        let file = dir.path + "/meshgate.yaml"
        try "# server settings\nnode: from-file\nhttp: 127.0.0.1:9000\ndata: /var/lib/file\nfsync: none\nmax_event_bytes: 2048\n".write(toFile: file, atomically: true, encoding: .utf8)
        let c = try GatewayConfig.load(flags: ["--http": "127.0.0.1:0"], environment: ["MESHGATE_DATA": "/env/data", "MESHGATE_FSYNC": "interval:50"], configFile: file)
        #expect(c.node == "from-file")
        #expect(c.http == HostPort(host: "127.0.0.1", port: 0))
        #expect(c.dataDirectory == "/env/data")
        #expect(c.fsync == .interval(milliseconds: 50))
        #expect(c.maxEventBytes == 2048)
        #expect(c.tcp == HostPort(host: "127.0.0.1", port: 7070))
        let d = try GatewayConfig.load(environment: [:])
        #expect(d.http.description == "127.0.0.1:8080")
        #expect(d.dataDirectory == "./data" && d.routesDirectory == "./routes" && d.fsync == .always && d.maxEventBytes == 1 << 20)
        #expect(d.webhookThreads == min(2, ProcessInfo.processInfo.activeProcessorCount))
        #expect(try GatewayConfig.load(environment: ["MESHGATE_WEBHOOK_THREADS": "3"]).webhookThreads == 3)
        #expect(throws: ConfigError.self) { try GatewayConfig.load(flags: ["--webhook-threads": "0"], environment: [:]) }
        // The receiving topic of bridged events: `{topic}` (the default) keeps it.
        #expect(d.bridgeTopic == nil)
        #expect(try GatewayConfig.load(flags: ["--bridge-topic": "{topic}"], environment: [:]).bridgeTopic == nil)
        #expect(try GatewayConfig.load(environment: ["MESHGATE_BRIDGE_TOPIC": "from/{peer}/{topic}"]).bridgeTopic?.description == "from/{peer}/{topic}")
        do { _ = try GatewayConfig.load(flags: ["--bridge-topic": "from/{site}/{topic}"], environment: [:]); Issue.record("accepted {site}") } catch {
            #expect(error.message == "--bridge-topic: unknown placeholder {site}; use {topic}, {peer} or {origin}", "\(error.message)")
        }
    }

    @Test func errorsNameTheirSource() throws {
        let dir = ScratchDirectory()
        let file = dir.path + "/meshgate.yaml"
        try "node: a\nhtp: 127.0.0.1:1\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: [:], configFile: file) }
        do { _ = try GatewayConfig.load(environment: [:], configFile: file) } catch {
            #expect(error.message.contains("meshgate.yaml:2:1: unknown setting \"htp\""), "\(error.message)")
        }
        try "fsync: sometimes\n".write(toFile: file, atomically: true, encoding: .utf8)
        do { _ = try GatewayConfig.load(environment: [:], configFile: file) } catch {
            #expect(error.message.contains("meshgate.yaml:1:8: fsync:"), "\(error.message)")
        }
        do { _ = try GatewayConfig.load(flags: ["--http": "nonsense"], environment: [:]) } catch {
            #expect(error.message.hasPrefix("--http: \"nonsense\" is not HOST:PORT"), "\(error.message)")
        }
        do { _ = try GatewayConfig.load(environment: ["MESHGATE_MAX_EVENT_BYTES": "lots"]) } catch {
            #expect(error.message.hasPrefix("MESHGATE_MAX_EVENT_BYTES:"), "\(error.message)")
        }
    }

    @Test func remoteListenersNeedTheExplicitFlag() throws {
        #expect(throws: ConfigError.self) { try GatewayConfig.load(flags: ["--http": "0.0.0.0:8080"], environment: [:]) }
        let ok = try GatewayConfig.load(flags: ["--http": "0.0.0.0:8080", "--allow-insecure-remote": "true"], environment: [:])
        #expect(ok.remoteListeners == ["http=0.0.0.0:8080"])
        #expect(try GatewayConfig.load(flags: ["--http": "[::1]:0"], environment: [:]).http.isLoopback)
    }
}

/// The real `meshgate serve` binary as a child process.
@Suite(.serialized) struct ServeProcessTests {
    /// `meshgate` with `arguments`, standard error collected; MESHGATE_* variables of the test
    /// environment are dropped so only `environment` sets any.
    final class Child: Sendable {
        let child: ChildProcess

        init(_ arguments: [String], environment: [String: String] = [:]) throws {
            try #require(FileManager.default.isExecutableFile(atPath: meshgateBinary), "meshgate is not built at \(meshgateBinary)")
            var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("MESHGATE_") }
            env.merge(environment) { $1 }
            child = try ChildProcess(meshgateBinary, arguments, environment: env, mergeStandardError: true)
        }

        var output: String { child.text }

        /// The port from the `listening http=HOST:PORT` line.
        func httpPort() async throws -> Int {
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                if let r = output.range(of: #"listening http=127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                    return Int(output[r].split(separator: ":").last!)!
                }
                if !child.isRunning { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            throw AdminClient.Failure(description: "no listening line; output:\n\(output)")
        }

        func terminate() async -> Int32 {
            child.signal(SIGTERM)
            return await exit()
        }

        func exit() async -> Int32 {
            _ = try? await child.wait()
            return child.exitCode ?? -1
        }
    }

    @Test func sigtermFlushesAndARestartServesTheData() async throws {
        let dir = ScratchDirectory()
        let first = try Child(["serve", "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--data", dir.path, "--routes", dir.path + "/routes", "--node", "proc"])
        let port = try await first.httpPort()
        let client = AdminClient(host: "127.0.0.1", port: port)
        var ids: [String] = []
        for i in 0..<50 {
            let r = try await client.request(.POST, "/v1/publish/proc/t", headers: [("ce-id", "p\(i)")], body: Array("event \(i)".utf8))
            #expect(r.status == 200)
            ids.append("p\(i)")
        }
        let status = try json(try await client.request(.GET, "/v1/status"))
        #expect(status["node"] as? String == "proc")
        #expect((status["listeners"] as? [[String: Any]])?.first { $0["name"] as? String == "http" }?["port"] as? Int == port)
        #expect(await first.terminate() == 0, "\(first.output)")
        #expect(first.output.contains("flushing and closing the log"))

        let second = try Child(["serve", "--http", "127.0.0.1:0"], environment: ["MESHGATE_DATA": dir.path, "MESHGATE_TCP": "127.0.0.1:0", "MESHGATE_ROUTES": dir.path + "/routes"])
        let port2 = try await second.httpPort()
        let r = try await AdminClient(host: "127.0.0.1", port: port2).request(.GET, "/v1/fetch/proc/t?max=100")
        let events = try #require(try json(r)["events"] as? [[String: Any]])
        #expect(events.map { $0["id"] as? String } == ids)
        #expect(events.last?["data"] as? String == "event 49" || events.last?["data_base64"] != nil)
        #expect(await second.terminate() == 0)
    }

    /// The route files load before the listeners accept anything. Before, the listeners and the
    /// first route load started together: events published at once created their topic before
    /// the route existed, the route's new cursor then started at the topic's end (`start:
    /// latest`), and those acknowledged events were never routed (8 in a fault-injection run
    /// under load, 350 ms between `listening` and `routes loaded`).
    @Test func eventsPublishedAsSoonAsTheListenerIsUpAreRouted() async throws {
        let dir = ScratchDirectory()
        try FileManager.default.createDirectory(atPath: dir.path + "/routes", withIntermediateDirectories: true)
        try """
            version: 1
            routes:
              - name: copy
                from: "early/#"
                to: [{topic: "copied/{1}"}]
            """.write(toFile: dir.path + "/routes/copy.yaml", atomically: true, encoding: .utf8)
        let gateway = try Child(["serve", "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--data", dir.path + "/data", "--routes", dir.path + "/routes"])
        let port = try await gateway.httpPort()
        let client = AdminClient(host: "127.0.0.1", port: port)
        for i in 0..<20 {
            let r = try await client.request(.POST, "/v1/publish/early/a", headers: [("ce-id", "e\(i)")], body: Array("event \(i)".utf8))
            #expect(r.status == 200)
        }
        let loaded = try #require(gateway.output.range(of: "routes loaded"), "no routes loaded line: \(gateway.output)")
        let listening = try #require(gateway.output.range(of: "listening http="))
        #expect(loaded.lowerBound < listening.lowerBound, "the HTTP listener accepted before the routes loaded: \(gateway.output)")
        var copied: [String] = []
        let deadline = ContinuousClock.now + .seconds(10)
        while copied.count < 20 && ContinuousClock.now < deadline {
            let r = try? await client.request(.GET, "/v1/fetch/copied/a?max=100")
            copied = ((r.flatMap { try? json($0)["events"] as? [[String: Any]] }) ?? []).compactMap { $0["id"] as? String }
            if copied.count < 20 { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(copied == (0..<20).map { "e\($0)" }, "routed: \(copied)")
        #expect(await gateway.terminate() == 0)
    }

    @Test func libcurlAndLibmosquittoAreLoadedOnlyForTheirConnectors() async throws {
        // /proc files report a size of 0, so they are read to their end rather than by their size.
        func mapped(_ child: Child) throws -> String {
            let fd = open("/proc/\(child.child.pid)/maps", O_RDONLY)
            guard fd >= 0 else { throw AdminClient.Failure(description: "cannot open the maps of \(child.child.pid)") }
            defer { close(fd) }
            var bytes: [UInt8] = [], chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = read(fd, &chunk, chunk.count)
                if n <= 0 { break }
                bytes += chunk[..<n]
            }
            return String(decoding: bytes, as: UTF8.self)
        }
        let dir = ScratchDirectory()
        let plain = try Child(["serve", "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--data", dir.path + "/a", "--routes", dir.path + "/none"])
        _ = try await plain.httpPort()
        let idle = try mapped(plain)
        #expect(idle.contains("/libc.so"), "the maps were read")  // mapped in a static build too
        #expect(!idle.contains("libcurl"), "a gateway without webhooks maps libcurl")
        #expect(!idle.contains("libmosquitto"), "a gateway without MQTT connectors maps libmosquitto")
        #expect(!idle.contains("libcrypto"), "nothing else brings OpenSSL's libcrypto")
        #expect(await plain.terminate() == 0)

        try FileManager.default.createDirectory(atPath: dir.path + "/routes", withIntermediateDirectories: true)
        try """
            version: 1
            connectors:
              hook: {type: webhook, url: "http://127.0.0.1:9/hook", timeout: 1s}
            routes:
              - name: to-hook
                from: "jobs/#"
                to: [{connector: hook}]
            """.write(toFile: dir.path + "/routes/hook.yaml", atomically: true, encoding: .utf8)
        let hooked = try Child(["serve", "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--data", dir.path + "/b", "--routes", dir.path + "/routes"])
        let port = try await hooked.httpPort()
        #expect(try await AdminClient(host: "127.0.0.1", port: port).request(.POST, "/v1/publish/jobs/x", body: Array("job".utf8)).status == 200)
        #expect(await eventually { ((try? mapped(hooked)) ?? "").contains("libcurl.so.4") }, "the webhook connector loaded libcurl")
        #expect(await hooked.terminate() == 0)
    }

    @Test func everyAllocationGoesThroughMimalloc() async throws {
        // The dynamic linker reports where each symbol reference binds. mimalloc serves the process
        // only if it comes before libc in the search order: then libc's own calls bind to it too.
        let run = try Child(["--version"], environment: ["LD_DEBUG": "bindings"])
        #expect(await run.exit() == 0)
        let bindings = run.output.split(separator: "\n").filter { $0.contains("normal symbol `malloc'") || $0.contains("normal symbol `free'") }
        #expect(!bindings.isEmpty, "LD_DEBUG reported no bindings:\n\(run.output.prefix(2000))")
        // "binding file <from> [0] to <to> [0]: normal symbol `malloc' …"
        func parts(_ line: Substring) -> (from: Substring, to: Substring)? {
            guard let f = line.range(of: "binding file "), let t = line.range(of: " to ", range: f.upperBound..<line.endIndex) else { return nil }
            return (line[f.upperBound..<t.lowerBound], line[t.upperBound...])
        }
        let elsewhere = bindings.filter { parts($0).map { !$0.to.contains("libmimalloc.so") } ?? true }
        #expect(elsewhere.isEmpty, "malloc or free bound outside mimalloc:\n\(elsewhere.joined(separator: "\n"))")
        #expect(bindings.contains { parts($0)?.from.contains("libc.so") == true }, "libc's own allocations go through mimalloc")
    }

    /// Every setting has its `serve` flag (docs/operations.md lists them all): a flag the command
    /// does not declare is refused as an unknown option, and one it declares but does not pass on
    /// lets a bad value through. So each flag, given a value its setting refuses, must be refused
    /// by name; the one switch, `--allow-insecure-remote`, must start the server.
    @Test func serveTakesEverySettingsFlag() async throws {
        let dir = ScratchDirectory()
        let anyText: Set<String> = ["data", "routes", "tls_cert", "tls_key", "tls_client_ca"]
        for setting in GatewayConfig.settings {
            var arguments = ["serve", setting.flag]
            if setting.key != "allow_insecure_remote" { arguments.append(anyText.contains(setting.key) ? "" : "{bad value}") }
            for (flag, value) in [("--http", "127.0.0.1:0"), ("--tcp", "127.0.0.1:0"), ("--data", dir.path + "/data")] where flag != setting.flag {
                arguments += [flag, value]
            }
            let run = try Child(arguments)
            if setting.key == "allow_insecure_remote" {
                _ = try await run.httpPort()
                #expect(await run.terminate() == 0)
                continue
            }
            guard await eventually(20, { !run.child.isRunning }) else {
                _ = await run.terminate()
                Issue.record("\(setting.flag) with a bad value started the server")
                continue
            }
            #expect(await run.exit() == 2, "\(setting.flag)")
            #expect(run.output.contains("\(setting.flag): "), "\(setting.flag) was not refused by name: \(run.output.prefix(300))")
        }
    }

    @Test func usageAndConfigurationErrorsExitWith2() async throws {
        let bad = try Child(["serve", "--http", "nowhere"])
        #expect(await bad.exit() == 2)
        #expect(bad.output.contains("--http: \"nowhere\" is not HOST:PORT"), "\(bad.output)")
        let remote = try Child(["serve", "--http", "0.0.0.0:0"])
        #expect(await remote.exit() == 2)
        #expect(remote.output.contains("--allow-insecure-remote"), "\(remote.output)")
        let unknown = try Child(["serve", "--no-such-flag"])
        #expect(await unknown.exit() == 2)
        let env = try Child(["serve"], environment: ["MESHGATE_FSYNC": "maybe"])
        #expect(await env.exit() == 2)
        #expect(env.output.contains("MESHGATE_FSYNC"), "\(env.output)")
    }

    @Test func topicsAndStatusCommandsPrintTables() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        _ = try await gw.post("/v1/publish/cli/a", "x")
        _ = try await gw.post("/v1/publish/cli/a", "y")
        let topics = try Child(["topics", "--server", "http://127.0.0.1:\(gw.port)"])
        #expect(await topics.exit() == 0)
        let status = try Child(["status", "--server", "http://127.0.0.1:\(gw.port)"])
        #expect(await status.exit() == 0)
        // Run again capturing standard output alone.
        let out = try await ChildProcess.run(meshgateBinary, ["topics", "--server", "http://127.0.0.1:\(gw.port)"])
        #expect(out.output.contains("TOPIC"))
        #expect(out.output.contains("cli/a") && out.output.contains("0..2"), "\(out.output)")
        let st = try await ChildProcess.run(meshgateBinary, ["status", "--server", "http://127.0.0.1:\(gw.port)"])
        #expect(st.output.contains("listener http") && st.output.contains("127.0.0.1:\(gw.port)"), "\(st.output)")
        let down = try await ChildProcess.run(meshgateBinary, ["status", "--server", "http://127.0.0.1:1"])
        #expect(down.status == 1)
    }
}
