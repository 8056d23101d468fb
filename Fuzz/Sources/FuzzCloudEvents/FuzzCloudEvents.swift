import MeshCore
@testable import MeshHTTP

private let topic = try! Topic("fuzz/events")

/// The CloudEvents JSON reader behind structured and batch publishes (and the JSON reader of the
/// admin API): any bytes give events or a `Problem`, never a trap. An accepted event is written
/// back as structured JSON, which must parse again.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCloudEvents(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? JSONReader.parse(body)
    for batch in [false, true] {
        guard let events = try? CloudEventsHTTP.structuredEvents(topic: topic, body: body, batch: batch) else { continue }
        for event in events {
            var w = JSONWriter()
            CloudEventsHTTP.writeStructured(event, topic: topic.name, partition: 0, offset: 0, into: &w)
            let written = w.bytes
            precondition(CloudEventsHTTP.isValidJSON(written), "an accepted event is written as invalid JSON")
            precondition((try? CloudEventsHTTP.structuredEvents(topic: topic, body: written, batch: false)) != nil,
                         "an accepted event written back is rejected: \(String(decoding: written, as: UTF8.self))")
        }
    }
    return 0
}
