/// The compact binary form of an `Event` used by the log and the wire (see docs/event-encoding.md):
///
///     version(1) flags(1) id source type topic [subject] [time] [datacontenttype] [dataschema]
///     [partitionkey] [traceparent] [tracestate] extensions hops data
///
/// Strings and byte blobs are a LEB128 length then the bytes; optional fields are present when their
/// flag bit is set. Every encoding is canonical: one event has exactly one encoding, and the decoder
/// rejects anything else rather than guessing.
public enum EventCodec {
    public static let version: UInt8 = 1

    enum Flag {
        static let subject: UInt8 = 1 << 0
        static let time: UInt8 = 1 << 1
        static let datacontenttype: UInt8 = 1 << 2
        static let dataschema: UInt8 = 1 << 3
        static let partitionKey: UInt8 = 1 << 4
        static let traceparent: UInt8 = 1 << 5
        static let tracestate: UInt8 = 1 << 6
        static let known: UInt8 = 0x7F
    }

    // MARK: Encoding

    public static func encode(_ event: Event) -> [UInt8] {
        encode(event, Header(event))
    }

    /// Appends the encoding to `buffer`, growing it once.
    public static func encode(_ event: Event, into buffer: inout [UInt8]) {
        let size = encodedSize(event)
        let start = buffer.count
        buffer.reserveCapacity(start + size)
        buffer.append(contentsOf: repeatElement(0, count: size))
        buffer.withUnsafeMutableBytes { bytes in
            encode(event, size: size, into: UnsafeMutableRawBufferPointer(rebasing: bytes[start...]))
        }
    }

    /// Writes the encoding at the start of `destination`, which must hold `size` bytes, the
    /// event's `encodedSize`: for a caller that encodes straight into its own buffer.
    public static func encode(_ event: Event, size: Int, into destination: UnsafeMutableRawBufferPointer) {
        precondition(destination.count >= size, "the destination holds fewer bytes than the encoding")
        var writer = Writer(base: UnsafeMutableRawBufferPointer(rebasing: destination[..<size]))
        writer.write(event)
        assert(writer.position == size)
    }

    /// The exact number of bytes `encode` produces for this event.
    public static func encodedSize(_ event: Event) -> Int {
        encodedSize(event, Header(event))
    }

    /// Encodes the event as it is stored on publish — `event.filled(node:ingress:)`, with
    /// `originHop` as its hop list when it has none — without copying it: every attribute the
    /// filling sets is written in place of the event's own. Returns the id the encoding carries.
    public static func encodeFilled(_ event: Event, node: String, ingress: String, originHop: String,
                                    now: Timestamp = .now(), ids: EventIDGenerator = .shared) -> (id: String, bytes: [UInt8]) {
        var header = Header(event)
        if header.id.isEmpty { header.id = ids.next(milliseconds: UInt64(max(0, now.millisecondsSinceEpoch))).description }
        if header.source.isEmpty { header.source = Event.defaultSource(node: node, ingress: ingress) }
        if header.type.isEmpty { header.type = Event.defaultType }
        if header.time == nil { header.time = now }
        if header.hops.isEmpty { header.hops = [originHop] }
        return (header.id, encode(event, header))
    }

    /// The attributes filling may replace; the rest of an encoding always comes from the event.
    struct Header {
        var id: String
        var source: String
        var type: String
        var time: Timestamp?
        var hops: [String]

        init(_ event: Event) {
            id = event.id
            source = event.source
            type = event.type
            time = event.time
            hops = event.hops
        }
    }

    private static func encode(_ event: Event, _ header: Header) -> [UInt8] {
        let size = encodedSize(event, header)
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var writer = Writer(base: UnsafeMutableRawBufferPointer(buffer))
            writer.write(event, header)
            assert(writer.position == size)
            initialized = size
        }
    }

    static func encodedSize(_ event: Event, _ header: Header) -> Int {
        var size = 2
        size += stringSize(header.id) + stringSize(header.source) + stringSize(header.type)
        size += stringSize(event.topic.name)
        if let s = event.subject { size += stringSize(s) }
        if header.time != nil { size += 8 }
        if let s = event.datacontenttype { size += stringSize(s) }
        if let s = event.dataschema { size += stringSize(s) }
        if let s = event.partitionKey { size += stringSize(s) }
        if let s = event.traceparent { size += stringSize(s) }
        if let s = event.tracestate { size += stringSize(s) }
        size += varintSize(UInt64(event.extensions.count))
        for (name, value) in event.extensions { size += stringSize(name) + stringSize(value) }
        size += varintSize(UInt64(header.hops.count))
        for hop in header.hops { size += stringSize(hop) }
        size += varintSize(UInt64(event.data.count)) + event.data.count
        return size
    }

    @inline(__always)
    static func stringSize(_ s: String) -> Int {
        let n = s.utf8.count
        return varintSize(UInt64(n)) + n
    }

    @inline(__always)
    static func varintSize(_ value: UInt64) -> Int {
        // 7 payload bits per byte; zero still takes one byte.
        let bits = 64 - (value | 1).leadingZeroBitCount
        return (bits + 6) / 7
    }

    struct Writer {
        let base: UnsafeMutableRawBufferPointer
        var position = 0

        mutating func write(_ event: Event) {
            write(event, Header(event))
        }

        mutating func write(_ event: Event, _ header: Header) {
            var flags: UInt8 = 0
            if event.subject != nil { flags |= Flag.subject }
            if header.time != nil { flags |= Flag.time }
            if event.datacontenttype != nil { flags |= Flag.datacontenttype }
            if event.dataschema != nil { flags |= Flag.dataschema }
            if event.partitionKey != nil { flags |= Flag.partitionKey }
            if event.traceparent != nil { flags |= Flag.traceparent }
            if event.tracestate != nil { flags |= Flag.tracestate }
            byte(EventCodec.version)
            byte(flags)
            string(header.id)
            string(header.source)
            string(header.type)
            string(event.topic.name)
            if let s = event.subject { string(s) }
            if let t = header.time {
                base.storeBytes(of: t.microsecondsSinceEpoch.littleEndian, toByteOffset: position, as: Int64.self)
                position += 8
            }
            if let s = event.datacontenttype { string(s) }
            if let s = event.dataschema { string(s) }
            if let s = event.partitionKey { string(s) }
            if let s = event.traceparent { string(s) }
            if let s = event.tracestate { string(s) }
            varint(UInt64(event.extensions.count))
            for (name, value) in event.extensions {
                string(name)
                string(value)
            }
            varint(UInt64(header.hops.count))
            for hop in header.hops { string(hop) }
            varint(UInt64(event.data.count))
            event.data.withUnsafeBytes { bytes($0) }
        }

        @inline(__always)
        mutating func byte(_ b: UInt8) {
            base[position] = b
            position += 1
        }

        @inline(__always)
        mutating func varint(_ value: UInt64) {
            var v = value
            while v >= 0x80 {
                byte(UInt8(truncatingIfNeeded: v) | 0x80)
                v >>= 7
            }
            byte(UInt8(v))
        }

        @inline(__always)
        mutating func bytes(_ raw: UnsafeRawBufferPointer) {
            guard raw.count > 0 else { return }
            (base.baseAddress! + position).copyMemory(from: raw.baseAddress!, byteCount: raw.count)
            position += raw.count
        }

        @inline(__always)
        mutating func string(_ s: String) {
            TopicSyntax.withUTF8(s) { utf8 in
                varint(UInt64(utf8.count))
                bytes(UnsafeRawBufferPointer(utf8))
            }
        }
    }

    // MARK: Re-addressing

    /// An encoded event with its topic replaced by `topic`, every other byte kept: what encoding
    /// the decoded event with that topic would give, without decoding it. Also returns the event's
    /// partition key, which picks its partition. Only the attributes before the key are read;
    /// anything malformed among them throws, like `decode`.
    public static func retopic(_ encoded: UnsafeRawBufferPointer, topic: Topic) throws(EventDecodingError) -> (bytes: [UInt8], partitionKey: String?) {
        let (topicField, key) = try addressing(encoded)
        return (replacingTopic(encoded, topicField, with: topic), key)
    }

    /// `retopic` of a whole array: the same array, not a copy, when its topic already is `topic`.
    public static func retopic(_ encoded: [UInt8], topic: Topic) throws(EventDecodingError) -> (bytes: [UInt8], partitionKey: String?) {
        let result: Result<(bytes: [UInt8]?, partitionKey: String?), EventDecodingError> = encoded.withUnsafeBytes { raw in
            Result { () throws(EventDecodingError) in
                let (topicField, key) = try addressing(raw)
                var reader = Reader(base: raw)
                reader.position = topicField.lowerBound
                let n = try reader.length("topic")
                let current = UnsafeRawBufferPointer(rebasing: raw[reader.position..<(reader.position + n)])
                let same = TopicSyntax.withUTF8(topic.name) { equal(current, UnsafeRawBufferPointer($0)) }
                return (same ? nil : replacingTopic(raw, topicField, with: topic), key)
            }
        }
        let (bytes, key) = try result.get()
        return (bytes ?? encoded, key)
    }

    /// The topic field (with its length) and the partition key: only the attributes before the key
    /// are read; anything malformed among them throws, like `decode`.
    private static func addressing(_ encoded: UnsafeRawBufferPointer) throws(EventDecodingError) -> (topicField: Range<Int>, partitionKey: String?) {
        var reader = Reader(base: encoded)
        let flags = try reader.versionAndFlags()
        for field: StaticString in ["id", "source", "type"] { reader.position += try reader.length(field) }
        let topicStart = reader.position
        reader.position += try reader.length("topic")
        let topicEnd = reader.position
        if flags & Flag.subject != 0 { reader.position += try reader.length("subject") }
        if flags & Flag.time != 0 { _ = try reader.int64("time") }
        if flags & Flag.datacontenttype != 0 { reader.position += try reader.length("datacontenttype") }
        if flags & Flag.dataschema != 0 { reader.position += try reader.length("dataschema") }
        let key = flags & Flag.partitionKey != 0 ? try reader.string("partitionkey") : nil
        return (topicStart..<topicEnd, key)
    }

    private static func replacingTopic(_ encoded: UnsafeRawBufferPointer, _ topicField: Range<Int>, with topic: Topic) -> [UInt8] {
        let size = encoded.count - topicField.count + stringSize(topic.name)
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var writer = Writer(base: UnsafeMutableRawBufferPointer(buffer))
            writer.bytes(UnsafeRawBufferPointer(rebasing: encoded[..<topicField.lowerBound]))
            writer.string(topic.name)
            writer.bytes(UnsafeRawBufferPointer(rebasing: encoded[topicField.upperBound...]))
            initialized = writer.position
        }
    }

    // MARK: Decoding

    public static func decode(_ bytes: [UInt8]) throws(EventDecodingError) -> Event {
        let result: Result<Event, EventDecodingError> = bytes.withUnsafeBytes { raw in
            Result { () throws(EventDecodingError) in try decode(raw) }
        }
        return try result.get()
    }

    /// Decodes exactly one event that fills `buffer`. Never traps: every length is checked against
    /// the bytes that remain before anything is allocated.
    public static func decode(_ buffer: UnsafeRawBufferPointer) throws(EventDecodingError) -> Event {
        var reader = Reader(base: buffer)
        let flags = try reader.versionAndFlags()
        let id = try reader.string("id")
        let source = try reader.string("source")
        let type = try reader.string("type")
        let topicOffset = reader.position
        let topicName = try reader.string("topic")
        let topic: Topic
        do {
            topic = try Topic(topicName)
        } catch {
            throw EventDecodingError(.invalidTopic, at: topicOffset, error.message)
        }
        var event = Event(topic: topic, id: id, source: source, type: type)
        if flags & Flag.subject != 0 { event.subject = try reader.string("subject") }
        if flags & Flag.time != 0 {
            event.time = Timestamp(microsecondsSinceEpoch: try reader.int64("time"))
        }
        if flags & Flag.datacontenttype != 0 { event.datacontenttype = try reader.string("datacontenttype") }
        if flags & Flag.dataschema != 0 { event.dataschema = try reader.string("dataschema") }
        if flags & Flag.partitionKey != 0 { event.partitionKey = try reader.string("partitionkey") }
        if flags & Flag.traceparent != 0 { event.traceparent = try reader.string("traceparent") }
        if flags & Flag.tracestate != 0 { event.tracestate = try reader.string("tracestate") }

        // Each pair takes at least two bytes, each hop at least one: a count beyond that is a lie
        // and must not reach reserveCapacity.
        let extensionCount = try reader.count("extension count", minimumBytesEach: 2)
        if extensionCount > 0 {
            event.extensions.reserveCapacity(extensionCount)
            var previous: String?
            for _ in 0..<extensionCount {
                let nameOffset = reader.position
                let name = try reader.string("extension name")
                if let previous, !EventExtensions.precedes(previous, name) {
                    throw EventDecodingError(.unsortedExtensions, at: nameOffset,
                        "extension \(TopicSyntax.quoted(name)) is out of order or repeated; names must be strictly ascending")
                }
                let value = try reader.string("extension value")
                event.extensions.appendSorted(name: name, value: value)
                previous = name
            }
        }
        let hopCount = try reader.count("hop count", minimumBytesEach: 1)
        if hopCount > 0 {
            event.hops.reserveCapacity(hopCount)
            for _ in 0..<hopCount { event.hops.append(try reader.string("hop")) }
        }
        let dataLength = try reader.length("data")
        event.data = Array(UnsafeRawBufferPointer(rebasing: buffer[reader.position..<(reader.position + dataLength)]))
        reader.position += dataLength
        guard reader.position == buffer.count else {
            throw EventDecodingError(.trailingBytes, at: reader.position,
                "\(buffer.count - reader.position) unexpected bytes after the data")
        }
        return event
    }

    struct Reader {
        let base: UnsafeRawBufferPointer
        var position = 0

        var remaining: Int { base.count - position }

        /// The first two bytes: a known version, then the flags of the optional attributes.
        mutating func versionAndFlags() throws(EventDecodingError) -> UInt8 {
            let version = try byte("version")
            guard version == EventCodec.version else {
                throw EventDecodingError(.unknownVersion, at: 0, "unknown encoding version \(version), expected \(EventCodec.version)")
            }
            let flags = try byte("flags")
            guard flags & ~Flag.known == 0 else {
                throw EventDecodingError(.unknownFlags, at: 1, "unknown flag bits 0x\(String(flags & ~Flag.known, radix: 16)) in the flags byte")
            }
            return flags
        }

        @inline(__always)
        mutating func byte(_ field: StaticString) throws(EventDecodingError) -> UInt8 {
            guard position < base.count else { throw truncated(field, needing: 1) }
            defer { position += 1 }
            return base[position]
        }

        mutating func int64(_ field: StaticString) throws(EventDecodingError) -> Int64 {
            guard remaining >= 8 else { throw truncated(field, needing: 8) }
            defer { position += 8 }
            return Int64(littleEndian: base.loadUnaligned(fromByteOffset: position, as: Int64.self))
        }

        /// LEB128, at most 10 bytes, minimal form only (no trailing zero groups).
        @inline(__always)
        mutating func varint(_ field: StaticString) throws(EventDecodingError) -> UInt64 {
            let start = position
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard position < base.count else {
                    throw EventDecodingError(.truncated, at: position, "truncated at byte \(position): \(field) length is cut off")
                }
                let b = base[position]
                position += 1
                let payload = UInt64(b & 0x7F)
                if shift == 63, payload > 1 {
                    throw EventDecodingError(.invalidVarint, at: start, "\(field) at byte \(start) does not fit in 64 bits")
                }
                value |= payload << shift
                if b & 0x80 == 0 {
                    if b == 0, position - start > 1 {
                        throw EventDecodingError(.invalidVarint, at: start, "\(field) at byte \(start) is not in minimal LEB128 form")
                    }
                    return value
                }
                shift += 7
                if shift > 63 {
                    throw EventDecodingError(.invalidVarint, at: start, "\(field) at byte \(start) is longer than 10 bytes")
                }
            }
        }

        /// A byte length that must fit in what remains.
        @inline(__always)
        mutating func length(_ field: StaticString) throws(EventDecodingError) -> Int {
            let value = try varint(field)
            guard value <= UInt64(remaining) else {
                throw EventDecodingError(.truncated, at: base.count,
                    "truncated at byte \(base.count): \(field) needs \(value) bytes, \(remaining) remain")
            }
            return Int(value)
        }

        mutating func count(_ field: StaticString, minimumBytesEach: Int) throws(EventDecodingError) -> Int {
            let start = position
            let value = try varint(field)
            guard value <= UInt64(remaining / minimumBytesEach) else {
                throw EventDecodingError(.truncated, at: start,
                    "truncated: \(field) at byte \(start) says \(value), but only \(remaining) bytes remain")
            }
            return Int(value)
        }

        @inline(__always)
        mutating func string(_ field: StaticString) throws(EventDecodingError) -> String {
            let n = try length(field)
            let start = position
            position += n
            let raw = UnsafeRawBufferPointer(rebasing: base[start..<(start + n)])
            let bytes = raw.assumingMemoryBound(to: UInt8.self)
            // String(validating:) is twice as slow as String(decoding:) on short strings; pure ASCII
            // is valid UTF-8 already, so only other strings take the validating path.
            if Self.isASCII(raw) { return String(decoding: bytes, as: UTF8.self) }
            guard let s = String(validating: bytes, as: UTF8.self) else {
                throw EventDecodingError(.invalidUTF8, at: start, "\(field) at byte \(start) is not valid UTF-8")
            }
            return s
        }

        @inline(__always)
        static func isASCII(_ raw: UnsafeRawBufferPointer) -> Bool {
            var i = 0
            var high: UInt64 = 0
            while i + 8 <= raw.count {
                high |= raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                i += 8
            }
            while i < raw.count {
                high |= UInt64(raw[i])
                i += 1
            }
            return high & 0x8080_8080_8080_8080 == 0
        }

        func truncated(_ field: StaticString, needing n: Int) -> EventDecodingError {
            EventDecodingError(.truncated, at: base.count,
                "truncated at byte \(base.count): \(field) needs \(n) bytes, \(remaining) remain")
        }
    }
}

public struct EventDecodingError: MeshError, Equatable {
    public enum Kind: String, Sendable {
        case truncated = "event.decode.truncated"
        case unknownVersion = "event.decode.version"
        case unknownFlags = "event.decode.flags"
        case invalidVarint = "event.decode.varint"
        case invalidUTF8 = "event.decode.utf8"
        case invalidTopic = "event.decode.topic"
        case unsortedExtensions = "event.decode.extensions"
        case trailingBytes = "event.decode.trailing"
    }

    public let kind: Kind
    /// Offset in the input where the problem was found.
    public let byteOffset: Int
    public let reason: String

    init(_ kind: Kind, at byteOffset: Int, _ reason: String) {
        self.kind = kind
        self.byteOffset = byteOffset
        self.reason = reason
    }

    public var code: String { kind.rawValue }
    public var message: String { "cannot decode event: \(reason)" }
}
