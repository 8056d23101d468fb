import MeshConfig
import MeshRouting

/// The route-file loader (YAML → validated `RouteTable`): any text gives a table or `ConfigErrors`
/// with positions, never a trap.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRouteFile(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        _ = try RouteLoader.load(sources: [(file: "fuzz.routes.yaml", text: text)], environment: ["FUZZ_HOST": "localhost"])
    } catch {
        precondition(!error.errors.isEmpty, "a rejected route file reports no error")
    }
    return 0
}
