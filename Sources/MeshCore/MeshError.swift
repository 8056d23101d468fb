/// The convention every meshgate error follows: a struct with a stable, dotted `code` that tools and
/// the HTTP/TCP layers can map to problem types and error frames, plus a message written for people.
///
/// Codes never change once released; messages may be improved at any time.
public protocol MeshError: Error, Sendable, CustomStringConvertible {
    /// Stable machine-readable identifier, e.g. `"topic.invalid"`.
    var code: String { get }
    /// Human-readable explanation, naming the offending input where there is one.
    var message: String { get }
}

extension MeshError {
    public var description: String { message }
}
