// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "meshgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "meshgate", targets: ["meshgate"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // Hardware CRC32C (SSE4.2 / ARMv8 CRC) with a table fallback; no Swift package offers it.
        .target(name: "CMeshSupport"),
        // The event model, topics and patterns, and the event codec. No dependencies.
        .target(name: "MeshCore", dependencies: ["CMeshSupport"]),
        // The built-in durable log: segments, indexes, recovery, retention, consumer offsets.
        .target(name: "MeshLog", dependencies: [
            "MeshCore", "CMeshSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Route model, topic trie, CESQL filters, templates and the delivery engine (no YAML).
        .target(name: "MeshRouting", dependencies: [
            "MeshCore", "MeshLog",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Route files: YAML -> validated route table with file:line:column errors; hot reload.
        .target(name: "MeshConfig", dependencies: [
            "MeshCore", "MeshLog", "MeshRouting",
            .product(name: "Yams", package: "Yams"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // libcurl (Debian libcurl4-openssl-dev). Imported only by MeshWebhook.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // Typed wrappers of libcurl's variadic calls (Swift cannot call C variadics), the SSRF address
        // check run inside curl's socket callback, and HMAC-SHA256 from the libcrypto libcurl already
        // loads. Imported only by MeshWebhook.
        .target(name: "CCurlShims", dependencies: ["CCurl"], linkerSettings: [.linkedLibrary("curl"), .linkedLibrary("crypto")]),
        // The webhook connector: CloudEvents over HTTP POST on libcurl's multi interface, Standard
        // Webhooks signatures, retry classification for the route's delivery policy.
        .target(name: "MeshWebhook", dependencies: [
            "MeshCore", "MeshRouting", "CCurl", "CCurlShims",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The command line: the only place that bootstraps logging.
        .executableTarget(name: "meshgate", dependencies: [
            "MeshCore", "MeshLog", "MeshRouting", "MeshConfig", "MeshWebhook",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The publish/subscribe engine over the log: validation, subscriptions, consumer groups.
        .target(name: "MeshBroker", dependencies: [
            "MeshCore", "MeshLog",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The TCP protocol: frames, their codec, and the connection state machines. No sockets.
        .target(name: "MeshWire", dependencies: [
            "MeshCore",
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .testTarget(name: "MeshCoreTests", dependencies: ["MeshCore"]),
        .testTarget(name: "MeshLogTests", dependencies: ["MeshLog", "MeshCore"]),
        .testTarget(name: "MeshBrokerTests", dependencies: ["MeshBroker", "MeshLog", "MeshCore"]),
        .testTarget(name: "MeshWireTests", dependencies: [
            "MeshWire", "MeshCore",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        .testTarget(name: "MeshRoutingTests", dependencies: ["MeshRouting", "MeshLog", "MeshCore"]),
        .testTarget(name: "MeshWebhookTests", dependencies: ["MeshWebhook", "MeshConfig", "MeshRouting", "MeshLog", "MeshCore"]),
        .testTarget(name: "MeshConfigTests", dependencies: ["MeshConfig", "MeshRouting", "MeshLog", "MeshCore"]),
    ],
    swiftLanguageModes: [.v6]
)
