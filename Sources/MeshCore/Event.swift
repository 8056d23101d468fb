/// One event as the mesh carries it: the CloudEvents 1.0 context attributes, the data bytes, and the
/// mesh's own fields (topic, partition key, W3C trace context, bridge hops).
///
/// `id`, `source` and `type` are required by CloudEvents; an empty string means "not given yet" and
/// `filled(node:ingress:now:)` supplies them at ingest, as SPEC §1 says.
public struct Event: Hashable, Sendable {
    public static let specversion = "1.0"

    public var id: String
    public var source: String
    public var type: String
    public var subject: String?
    public var time: Timestamp?
    public var datacontenttype: String?
    public var dataschema: String?
    /// Extension attributes other than the ones modelled as fields below, kept sorted by name.
    public var extensions: EventExtensions
    public var data: [UInt8]

    public var topic: Topic
    /// The CloudEvents partitioning extension `partitionkey`.
    public var partitionKey: String?
    /// W3C trace context, passed through untouched.
    public var traceparent: String?
    public var tracestate: String?
    /// Bridge hop list: the origin site first, then every site the event crossed.
    public var hops: [String]

    public var specversion: String { Self.specversion }

    public init(
        topic: Topic,
        id: String = "",
        source: String = "",
        type: String = "",
        subject: String? = nil,
        time: Timestamp? = nil,
        datacontenttype: String? = nil,
        dataschema: String? = nil,
        extensions: EventExtensions = [:],
        partitionKey: String? = nil,
        traceparent: String? = nil,
        tracestate: String? = nil,
        hops: [String] = [],
        data: [UInt8] = []
    ) {
        self.topic = topic
        self.id = id
        self.source = source
        self.type = type
        self.subject = subject
        self.time = time
        self.datacontenttype = datacontenttype
        self.dataschema = dataschema
        self.extensions = extensions
        self.partitionKey = partitionKey
        self.traceparent = traceparent
        self.tracestate = tracestate
        self.hops = hops
        self.data = data
    }

    /// The type given to events published without one.
    public static let defaultType = "meshgate.publish"

    /// The source given to events published without one: `meshgate://<node>/<ingress>`.
    public static func defaultSource(node: String, ingress: String) -> String {
        "meshgate://\(node)/\(ingress)"
    }

    /// This event with missing attributes filled as at ingest: a fresh time-ordered `id`, `source`
    /// `meshgate://<node>/<ingress>`, `type` `meshgate.publish`, and `time` = `now`.
    public func filled(
        node: String, ingress: String, now: Timestamp = .now(), ids: EventIDGenerator = .shared
    ) -> Event {
        var event = self
        event.fill(node: node, ingress: ingress, now: now, ids: ids)
        return event
    }

    public mutating func fill(
        node: String, ingress: String, now: Timestamp = .now(), ids: EventIDGenerator = .shared
    ) {
        if id.isEmpty {
            id = ids.next(milliseconds: UInt64(max(0, now.millisecondsSinceEpoch))).description
        }
        if source.isEmpty { source = Self.defaultSource(node: node, ingress: ingress) }
        if type.isEmpty { type = Self.defaultType }
        if time == nil { time = now }
    }

    /// Names CloudEvents or the mesh already use; an extension may not take them.
    public static let reservedAttributeNames: Set<String> = [
        "id", "source", "type", "specversion", "subject", "time", "datacontenttype", "dataschema",
        "data", "data_base64", "topic", "partitionkey", "traceparent", "tracestate",
        "partition", "offset",
    ]

    /// CloudEvents attribute names: lowercase ASCII letters and digits, 1 to 20 characters.
    public static func isValidAttributeName(_ name: String) -> Bool {
        var count = 0
        for b in name.utf8 {
            count += 1
            guard count <= 20,
                  (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
            else { return false }
        }
        return count > 0
    }

    /// Checks what the type system cannot: required attributes present and extension names legal.
    public func validate() throws(EventError) {
        if id.isEmpty { throw EventError(attribute: "id", reason: "is required and may not be empty") }
        if source.isEmpty { throw EventError(attribute: "source", reason: "is required and may not be empty") }
        if type.isEmpty { throw EventError(attribute: "type", reason: "is required and may not be empty") }
        try validateExtensions()
    }

    /// The checks `validate` makes besides the required attributes, which filling always sets.
    public func validateExtensions() throws(EventError) {
        for (name, _) in extensions {
            try Self.validateExtensionName(name)
        }
    }

    public static func validateExtensionName(_ name: String) throws(EventError) {
        guard isValidAttributeName(name) else {
            throw EventError(
                attribute: name,
                reason: "is not a valid attribute name (1 to 20 characters, a-z and 0-9 only)")
        }
        guard !reservedAttributeNames.contains(name) else {
            throw EventError(attribute: name, reason: "is reserved and cannot be an extension")
        }
    }
}

public struct EventError: MeshError, Equatable {
    public let attribute: String
    public let reason: String

    public init(attribute: String, reason: String) {
        self.attribute = attribute
        self.reason = reason
    }

    public var code: String { "event.invalid" }
    public var message: String { "invalid event: attribute \(TopicSyntax.quoted(attribute)) \(reason)" }
}

/// CloudEvents extension attributes, kept sorted by name (byte order) with one value per name, so
/// that iteration and the binary encoding are deterministic.
public struct EventExtensions: Hashable, Sendable, Sequence, ExpressibleByDictionaryLiteral {
    public typealias Element = (name: String, value: String)

    fileprivate struct Pair: Hashable, Sendable {
        var name: String
        var value: String
    }

    private var pairs: [Pair] = []

    public init() {}

    public init(dictionaryLiteral elements: (String, String)...) {
        for (name, value) in elements { self[name] = value }
    }

    public init(_ dictionary: [String: String]) {
        for (name, value) in dictionary { self[name] = value }
    }

    public var count: Int { pairs.count }
    public var isEmpty: Bool { pairs.isEmpty }

    public subscript(name: String) -> String? {
        get {
            let (index, found) = position(of: name)
            return found ? pairs[index].value : nil
        }
        set {
            let (index, found) = position(of: name)
            switch (found, newValue) {
            case (true, let value?): pairs[index].value = value
            case (true, nil): pairs.remove(at: index)
            case (false, let value?): pairs.insert(Pair(name: name, value: value), at: index)
            case (false, nil): break
            }
        }
    }

    public var dictionary: [String: String] {
        Dictionary(uniqueKeysWithValues: pairs.lazy.map { ($0.name, $0.value) })
    }

    public struct Iterator: IteratorProtocol {
        fileprivate var base: IndexingIterator<[Pair]>

        public mutating func next() -> Element? {
            base.next().map { ($0.name, $0.value) }
        }
    }

    public func makeIterator() -> Iterator { Iterator(base: pairs.makeIterator()) }

    /// Appends a pair known to sort after every name already present (the decoder's fast path).
    mutating func appendSorted(name: String, value: String) {
        pairs.append(Pair(name: name, value: value))
    }

    mutating func reserveCapacity(_ n: Int) {
        pairs.reserveCapacity(n)
    }

    /// Binary search by UTF-8 byte order, the order the codec writes.
    private func position(of name: String) -> (Int, Bool) {
        var lo = 0
        var hi = pairs.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if Self.precedes(pairs[mid].name, name) {
                lo = mid + 1
            } else {
                hi = mid
            }
        }
        return (lo, lo < pairs.count && pairs[lo].name.utf8.elementsEqual(name.utf8))
    }

    static func precedes(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }
}
