import Foundation
import MeshTestSupport
import Testing

/// The status page at `/`, checked as served and in a real headless browser (Debian `chromium`).
@Suite struct StatusPageTests {
    static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test func servedAsOneSelfContainedDocument() async throws {
        let gw = try await TestGateway()
        let r = try await gw.get("/")
        #expect(r.status == 200)
        #expect(r.header("content-type") == "text/html; charset=utf-8")
        for needle in ["<meta name=\"viewport\"", "id=\"events-total\"", "/v1/topics", "/v1/connectors", "setTimeout(loop, 1000)"] {
            #expect(r.text.contains(needle), "missing \(needle)")
        }
        #expect(!r.text.contains("http://") && !r.text.contains("https://"), "the page must not load anything from elsewhere")
        try await gw.stop()
    }

    /// Runs the page in headless Chromium twice while events flow, and checks the live numbers
    /// moved between the two. Leaves a screenshot in the system temporary directory (or at
    /// `MESHGATE_STATUS_SCREENSHOT`).
    @Test(.enabled(if: chromium != nil, "chromium is not installed (scripts/setup.sh installs it)"))
    func liveNumbersChangeInARealBrowser() async throws {
        let gw = try await TestGateway { writeRoutes(auditAndBrokenRoutes, into: &$0) }
        let url = "http://127.0.0.1:\(gw.port)/"
        let traffic = Task {
            var i = 0
            while !Task.isCancelled {
                _ = try? await gw.post("/v1/publish/orders/\(["eu", "us", "apac"][i % 3])", "{\"n\":\(i)}",
                                       headers: [("content-type", "application/json")])
                i += 1
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        defer { traffic.cancel() }
        let profile = gw.dir.path + "/chromium"
        func browse(_ extra: [String]) async throws -> String {
            // Under `timeout`: a headless Chromium that wedges on a loaded machine must not hang the suite.
            let (status, output) = try await ChildProcess.run("/usr/bin/timeout", ["-k", "5", "90", Self.chromium!,
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--user-data-dir=\(profile)", "--virtual-time-budget=2500", "--window-size=1280,1000",
            ] + extra + [url])
            #expect(status == 0, "chromium: \(output.suffix(2000))")
            return output
        }
        func eventsTotal(_ dom: String) throws -> Int {
            let marker = try #require(dom.range(of: #"id="events-total" data-value=""#), "the page never rendered its numbers:\n\(dom.prefix(3000))")
            return Int(dom[marker.upperBound...].prefix { $0.isNumber }) ?? -1
        }
        let first = try eventsTotal(try await browse(["--dump-dom"]))
        try await Task.sleep(for: .milliseconds(600))
        let second = try await browse(["--dump-dom"])
        let later = try eventsTotal(second)
        #expect(first > 0)
        #expect(later > first, "the events total did not move: \(first) then \(later)")
        #expect(second.contains("badge ok\">live"))
        #expect(second.contains("audit") && second.contains("orders/eu"))

        let shot = ProcessInfo.processInfo.environment["MESHGATE_STATUS_SCREENSHOT"] ?? NSTemporaryDirectory() + "meshgate-status-page.png"
        try? FileManager.default.removeItem(atPath: shot)
        _ = try await browse(["--screenshot=\(shot)", "--hide-scrollbars"])
        let png = try #require(FileManager.default.contents(atPath: shot), "no screenshot at \(shot)")
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]))
        traffic.cancel()
        try await gw.stop()
    }
}
