// swift-tools-version: 6.1
import PackageDescription

let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
let nioPosix = Target.Dependency.product(name: "NIOPosix", package: "swift-nio")
let nioHTTP1 = Target.Dependency.product(name: "NIOHTTP1", package: "swift-nio")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let lifecycle = Target.Dependency.product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let yams = Target.Dependency.product(name: "Yams", package: "Yams")
let metrics = Target.Dependency.product(name: "CoreMetrics", package: "swift-metrics")
let prometheus = Target.Dependency.product(name: "Prometheus", package: "swift-prometheus")
let nioSSL = Target.Dependency.product(name: "NIOSSL", package: "swift-nio-ssl")
/// The executables allocate through mimalloc (Debian libmimalloc-dev): linked ahead of libc, its
/// malloc and free serve the whole process, Swift, libcurl and libmosquitto alike. docs/architecture.md
/// ("Decisions") has the measurements behind it.
let mimalloc = LinkerSetting.linkedLibrary("mimalloc")

let package = Package(
    name: "meshgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "meshgate", targets: ["meshgate"]),
        .executable(name: "meshgate-bench", targets: ["meshgate-bench"]),
        .library(name: "MeshClient", targets: ["MeshClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // jwt-kit 5 needs swift-crypto 4; the range keeps 3.12.3 acceptable to other dependents.
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.8.0"),
    ],
    targets: [
        // Hardware CRC32C (SSE4.2 / ARMv8 CRC) with a table fallback; no Swift package offers it.
        .target(name: "CMeshSupport"),
        // The event model, topics and patterns, and the event codec. No dependencies.
        .target(name: "MeshCore", dependencies: ["CMeshSupport"]),
        // The built-in durable log: segments, indexes, recovery, retention, consumer offsets.
        .target(name: "MeshLog", dependencies: ["MeshCore", "CMeshSupport", logging, metrics]),
        // The publish/subscribe engine over the log: validation, subscriptions, consumer groups.
        .target(name: "MeshBroker", dependencies: ["MeshCore", "MeshLog", logging, metrics]),
        // Route model, topic trie, CESQL filters, templates and the delivery engine (no YAML).
        .target(name: "MeshRouting", dependencies: ["MeshCore", "MeshLog", logging]),
        // Route files: YAML -> validated route table with file:line:column errors; hot reload.
        .target(name: "MeshConfig", dependencies: ["MeshCore", "MeshLog", "MeshRouting", yams, logging]),
        // Identities, credentials (hashed bearer tokens, JWTs), topic ACLs and per-identity publish rates.
        .target(name: "MeshAuth", dependencies: [
            "MeshCore",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "JWTKit", package: "jwt-kit"),
        ]),
        // The TCP protocol: frames, their codec, and the connection state machines. No sockets.
        .target(name: "MeshWire", dependencies: ["MeshCore", nioCore]),
        // What both listeners and the client share about connections: TLS contexts from PEM files
        // (swift-nio-ssl), connection limits per listener and per peer, refusal counters.
        .target(name: "MeshNet", dependencies: [nioCore, nioSSL, .product(name: "NIOTLS", package: "swift-nio")]),
        // The HTTP listener: a lean NIOHTTP1 pipeline and a hand-written router over the broker.
        .target(name: "MeshHTTP", dependencies: ["MeshAuth", "MeshBroker", "MeshCore", "MeshLog", "MeshNet", nioCore, nioPosix, nioHTTP1, logging]),
        // The TCP listener: the MeshWire protocol over NIO sockets, adapted onto the Broker.
        .target(name: "MeshTCP", dependencies: ["MeshAuth", "MeshCore", "MeshLog", "MeshBroker", "MeshWire", "MeshNet", nioCore, nioPosix, logging]),
        // The public Swift client of the TCP protocol (async/await).
        .target(name: "MeshClient", dependencies: ["MeshCore", "MeshWire", "MeshNet", nioCore, nioPosix]),
        // libmosquitto's headers (Debian libmosquitto-dev); only MeshMQTT imports it. The library
        // itself is opened at run time by CMosquittoLoader, not linked.
        .systemLibrary(name: "CMosquitto", path: "Sources/CMosquitto"),
        // Forwarding stubs that open libmosquitto on first use (see docs/connectors.md).
        .target(name: "CMosquittoLoader", dependencies: ["CMosquitto", "CMeshSupport"]),
        // The MQTT connector: ingress subscriptions into the log, egress destinations, status.
        .target(name: "MeshMQTT", dependencies: ["CMeshSupport", "CMosquitto", "CMosquittoLoader", "MeshCore", "MeshLog", "MeshBroker", "MeshRouting", logging]),
        // The site bridge (`type: meshgate` connectors): forwarding to remote sites over the TCP
        // protocol, and the receiving side's loop check and durable dedupe window.
        .target(name: "MeshBridge", dependencies: ["CMeshSupport", "MeshCore", "MeshLog", "MeshBroker", "MeshRouting", "MeshWire", "MeshTCP", "MeshClient", "MeshNet", logging]),
        // The composition root: configuration; the log, broker, routing and listeners as services.
        .target(name: "MeshGateway", dependencies: [
            "MeshAuth", "MeshHTTP", "MeshTCP", "MeshBroker", "MeshLog", "MeshCore", "MeshRouting", "MeshConfig", "MeshMQTT", "MeshBridge", "MeshWebhook", "MeshNet",
            nioCore, nioPosix, logging, lifecycle, yams, metrics, prometheus,
        ]),
        // libcurl's headers (Debian libcurl4-openssl-dev). Imported only by MeshWebhook. The library is
        // opened at run time by CCurlShims (curl_loader.c), not linked.
        .systemLibrary(name: "CCurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // Typed wrappers of libcurl's variadic calls (Swift cannot call C variadics), the SSRF address
        // check run inside curl's socket callback, HMAC-SHA256 from the libcrypto libcurl brings, and
        // the stubs that open both on first use. Imported only by MeshWebhook.
        .target(name: "CCurlShims", dependencies: ["CCurl", "CMeshSupport"]),
        // The webhook connector: CloudEvents over HTTP POST on libcurl's multi interface, Standard
        // Webhooks signatures, retry classification for the route's delivery policy.
        .target(name: "MeshWebhook", dependencies: [
            "MeshCore", "MeshRouting", "CCurl", "CCurlShims",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The benchmark harness shared by every load generator (counters, HDR latency, the JSON a run
        // writes) and the results model behind `meshgate bench compare`. No dependency on the gateway.
        .target(name: "MeshBench", dependencies: [.product(name: "Histogram", package: "hdrhistogram-swift")]),
        // The NATS and Redis C clients (Debian libnats-dev, libhiredis-dev). Only meshgate-bench links them.
        .systemLibrary(name: "CNats", path: "Sources/CNats"),
        .systemLibrary(name: "CHiredis", path: "Sources/CHiredis"),
        // The peers' load generators: the same harness as `meshgate bench publish`, over each peer's C
        // client. A separate executable so the gateway binary links neither client.
        .executableTarget(name: "meshgate-bench", dependencies: [
            "MeshBench", "CNats", "CHiredis", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], linkerSettings: [mimalloc]),
        // The command line: the only place that bootstraps logging and metrics.
        .executableTarget(name: "meshgate", dependencies: [
            "MeshAuth", "MeshCore", "MeshLog", "MeshRouting", "MeshConfig", "MeshBroker", "MeshHTTP", "MeshGateway", "MeshTCP", "MeshClient", "MeshMQTT", "MeshBridge", "MeshWebhook", "MeshNet",
            "MeshBench",
            nioCore, nioPosix, nioHTTP1, logging, metrics,
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ], linkerSettings: [mimalloc, .unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"])]),

        // Helpers shared by the test targets: child processes that never block the test runner's threads.
        .target(name: "MeshTestSupport", dependencies: ["MeshLog", "MeshCore", "CMeshSupport"], path: "Tests/Support"),
        .testTarget(name: "MeshCoreTests", dependencies: ["MeshCore", "MeshTestSupport"]),
        .testTarget(name: "MeshAuthTests", dependencies: ["MeshAuth", "MeshCore", .product(name: "JWTKit", package: "jwt-kit")]),
        .testTarget(name: "MeshBenchTests", dependencies: ["MeshBench", "MeshTestSupport"]),
        .testTarget(name: "MeshLogTests", dependencies: ["MeshLog", "MeshCore", "MeshTestSupport"]),
        .testTarget(name: "MeshBrokerTests", dependencies: ["MeshBroker", "MeshLog", "MeshCore"]),
        .testTarget(name: "MeshRoutingTests", dependencies: ["MeshRouting", "MeshLog", "MeshCore", "MeshTestSupport"]),
        .testTarget(name: "MeshMQTTTests", dependencies: ["MeshMQTT", "MeshBroker", "MeshConfig", "MeshRouting", "MeshLog", "MeshCore", "MeshTestSupport"]),
        .testTarget(name: "MeshWebhookTests", dependencies: ["MeshWebhook", "MeshConfig", "MeshRouting", "MeshLog", "MeshCore", "MeshTestSupport"]),
        .testTarget(name: "MeshConfigTests", dependencies: ["MeshConfig", "MeshRouting", "MeshLog", "MeshCore", "MeshTestSupport"]),
        .testTarget(name: "MeshWireTests", dependencies: [
            "MeshWire", "MeshCore", "MeshTestSupport", nioCore, .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        .testTarget(name: "MeshTCPTests", dependencies: ["MeshAuth", "MeshTCP", "MeshClient", "MeshBroker", "MeshLog", "MeshWire", "MeshCore", "MeshNet", "MeshTestSupport", nioCore, nioPosix]),
        .testTarget(name: "MeshBridgeTests", dependencies: [
            "MeshAuth", "MeshBridge", "MeshClient", "MeshCore", "MeshWire", "MeshLog", "MeshBroker", "MeshTCP", "MeshTestSupport", "MeshNet",
        ]),
        .testTarget(name: "MeshHTTPTests", dependencies: [
            "MeshAuth", "MeshHTTP", "MeshGateway", "MeshBroker", "MeshLog", "MeshCore", "MeshClient", "MeshTestSupport", "MeshRouting", "MeshConfig", "MeshNet",
            .product(name: "JWTKit", package: "jwt-kit"),
            nioCore, nioPosix, nioHTTP1, nioSSL, logging, lifecycle, metrics, prometheus,
        ], exclude: ["interop"]),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer harnesses (Fuzz/, docs/reliability.md). They exist only when MESHGATE_FUZZ is set, as
// `make fuzz` does with its own scratch path, so ordinary builds neither see nor compile them.
if Context.environment["MESHGATE_FUZZ"] != nil {
    let harnesses: [(name: String, dependencies: [Target.Dependency])] = [
        ("FuzzFrameDecoder", ["MeshWire", "MeshCore", nioCore]),
        ("FuzzCloudEvents", ["MeshHTTP", "MeshCore"]),
        ("FuzzCESQL", ["MeshRouting", "MeshCore"]),
        ("FuzzRouteFile", ["MeshConfig", "MeshRouting"]),
    ]
    package.targets.append(.target(name: "CFuzzDriver", path: "Fuzz/Sources/CFuzzDriver"))
    for h in harnesses {
        package.targets.append(.executableTarget(name: h.name, dependencies: h.dependencies + ["CFuzzDriver"], path: "Fuzz/Sources/\(h.name)"))
        package.products.append(.executable(name: h.name, targets: [h.name]))
    }
}
