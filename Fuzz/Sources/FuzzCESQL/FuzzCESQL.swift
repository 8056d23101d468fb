import MeshCore
import MeshRouting

private let sample: Event = {
    var e = Event(topic: try! Topic("orders/eu/7"), id: "id-1", source: "shop", type: "order.created",
                  subject: "order 7", partitionKey: "c-1")
    e.extensions["sequence"] = "42"
    e.extensions["flag"] = "TRUE"
    return e
}()
private let defaultData = Array(#"{"total": 150, "name": "Ann", "ok": true, "items": [{"sku": "x1", "qty": 2}], "price": 12.5, "nothing": null}"#.utf8)

/// The CESQL parser and evaluator: the input up to its first NUL byte is the expression, what
/// follows is the event's JSON payload (a fixed sample when there is no NUL). Parsing throws a
/// `CESQLParseError` or gives an expression whose evaluation is total — never a trap.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCESQL(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let nul = bytes.firstIndex(of: 0)
    let text = String(decoding: bytes[..<(nul ?? size)], as: UTF8.self)
    guard let expression = try? CESQLExpression(text) else { return 0 }
    var event = sample
    event.data = nul.map { Array(bytes[($0 + 1)...]) } ?? defaultData
    _ = expression.evaluate(CESQLInput(event))
    _ = expression.matches(CESQLInput(event))
    _ = expression.resultType
    return 0
}
