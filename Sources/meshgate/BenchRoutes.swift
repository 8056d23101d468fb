import ArgumentParser
import Foundation
import MeshCore
import MeshRouting

/// `meshgate bench routes`: topic matching against a large route table, and matching plus a CESQL
/// filter reading JSON payloads — one core, no I/O.
struct BenchRoutes: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "routes", abstract: "Benchmark route matching and CESQL filters.")

    @Option(help: "Routes in the table.") var routes = 10_000
    @Option(help: "Seconds per scenario.") var seconds = 3.0

    func run() throws {
        print("meshgate bench routes — \(routes) routes, \(seconds)s per scenario, one core")
        // A table shaped like a real one: mostly literal per-device routes, some `+` and `#` ones.
        var trie = TopicTrie<Int>()
        var rng = SplitMix(seed: 42)
        for i in 0..<routes {
            let site = "site\(i % 50)", dev = "dev\(i)"
            let text: String
            switch i % 10 {
            case 0: text = "\(site)/+/temperature"
            case 1: text = "\(site)/#"
            case 2: text = "+/\(dev)/status"
            default: text = "\(site)/\(dev)/temperature"
            }
            trie.insert(try TopicPattern(text), i)
        }
        let topics: [Topic] = try (0..<4096).map { _ in
            let i = Int(rng.next() % UInt64(routes))
            let kind = ["temperature", "status", "humidity"][Int(rng.next() % 3)]
            return try Topic("site\(i % 50)/dev\(i)/\(kind)")
        }
        // Scenario 1: topic → matching routes.
        var matches = 0
        let (n1, t1) = timeLoop(seconds) { i in
            trie.forEachMatch(topics[i & 4095]) { _ in matches += 1 }
        }
        print(String(format: "match: %.0f topics/s (%.2f routes matched per topic on average)", Double(n1) / t1, Double(matches) / Double(n1)))

        // Scenario 2: match, then a filter reading attributes and JSON data.
        let filter = try CESQLExpression("type = 'order.created' AND data.total > 100 AND data.customer.tier IN ('gold', 'silver')")
        let events: [Event] = try (0..<1024).map { i in
            let data = #"{"id": \#(i), "total": \#(i % 300), "currency": "EUR", "customer": {"name": "c\#(i)", "tier": "\#(["gold", "silver", "bronze"][i % 3])"}, "items": [1, 2, 3]}"#
            return Event(topic: try Topic("orders/eu/shop\(i % 20)"), id: "e\(i)", source: "bench", type: i % 4 == 0 ? "order.updated" : "order.created",
                         data: Array(data.utf8))
        }
        var orderTrie = TopicTrie<Int>()
        orderTrie.insert(try TopicPattern("orders/+/#"), 0)
        for i in 1..<routes { orderTrie.insert(try TopicPattern("other/\(i)/+"), i) }
        var selected = 0
        let (n2, t2) = timeLoop(seconds) { i in
            let event = events[i & 1023]
            orderTrie.forEachMatch(event.topic) { _ in
                if filter.matches(CESQLInput(event)) == .matched { selected += 1 }
            }
        }
        print(String(format: "match + CESQL filter on JSON: %.0f events/s (%.0f%% selected)", Double(n2) / t2, 100 * Double(selected) / Double(n2)))
    }

    private func timeLoop(_ seconds: Double, _ body: (Int) -> Void) -> (Int, Double) {
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = start + UInt64(seconds * 1e9)
        var n = 0
        while true {
            for _ in 0..<4096 { body(n); n += 1 }
            if DispatchTime.now().uptimeNanoseconds >= deadline { break }
        }
        return (n, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
