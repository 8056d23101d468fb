// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "meshgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "meshgate", targets: ["meshgate"]),
        .library(name: "MeshClient", targets: ["MeshClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
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
        // The command line: the only place that bootstraps logging.
        .executableTarget(name: "meshgate", dependencies: [
            "MeshCore", "MeshLog", "MeshBroker", "MeshTCP", "MeshClient",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
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
        // The TCP listener: the MeshWire protocol over NIO sockets, adapted onto the Broker.
        .target(name: "MeshTCP", dependencies: [
            "MeshCore", "MeshLog", "MeshBroker", "MeshWire",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The public Swift client of the TCP protocol (async/await).
        .target(name: "MeshClient", dependencies: [
            "MeshCore", "MeshWire",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "MeshCoreTests", dependencies: ["MeshCore"]),
        .testTarget(name: "MeshLogTests", dependencies: ["MeshLog", "MeshCore"]),
        .testTarget(name: "MeshBrokerTests", dependencies: ["MeshBroker", "MeshLog", "MeshCore"]),
        .testTarget(name: "MeshTCPTests", dependencies: [
            "MeshTCP", "MeshClient", "MeshBroker", "MeshLog", "MeshWire", "MeshCore",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "MeshWireTests", dependencies: [
            "MeshWire", "MeshCore",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
