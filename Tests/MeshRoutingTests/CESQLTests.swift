import Foundation
import MeshCore
import Testing
@testable import MeshRouting

private let sample: Event = {
    var e = Event(topic: try! Topic("orders/eu/7"), id: "id-1", source: "shop", type: "order.created",
                  subject: "order 7", partitionKey: "c-1", data: Array(#"{"total": 150, "name": "Ann \"A\"", "ok": true, "items": [{"sku": "x1", "qty": 2}, {"sku": "y2", "qty": -3}], "price": 12.5, "big": 99999999999, "nothing": null, "nested": {"a": {"b": "deep"}}}"#.utf8))
    e.extensions["sequence"] = "42"
    e.extensions["flag"] = "TRUE"
    e.extensions["pct"] = "50%"
    return e
}()

private func eval(_ text: String, _ event: Event = sample) throws -> (CESQLValue, [CESQLEvaluationError]) {
    let expr = try CESQLExpression(text)
    return expr.evaluate(CESQLInput(event))
}

struct CESQLTests {
    @Test(arguments: [
        // literals
        ("'abc'", CESQLValue.string("abc")), ("\"a\\\"b\"", .string("a\"b")), ("'it\\'s'", .string("it's")),
        ("42", .integer(42)), ("-2147483648", .integer(Int32.min)), ("TRUE", .boolean(true)), ("false", .boolean(false)),
        // attributes
        ("id", .string("id-1")), ("specversion", .string("1.0")), ("sequence", .string("42")), ("topic", .string("orders/eu/7")),
        ("partitionkey", .string("c-1")),
        // comparison with implicit casts (left cast to the right's type)
        ("sequence = 42", .boolean(true)), ("42 = '42'", .boolean(true)), ("flag = true", .boolean(true)),
        ("type != 'x'", .boolean(true)), ("type <> 'order.created'", .boolean(false)),
        ("sequence > 41", .boolean(true)), ("sequence >= 42", .boolean(true)), ("sequence < 42", .boolean(false)), ("sequence <= 42", .boolean(true)),
        ("'abc' = 'ABC'", .boolean(false)),
        // arithmetic, truncated division, precedence, unary minus
        ("1 + 2 * 3", .integer(7)), ("(1 + 2) * 3", .integer(9)), ("7 / 2", .integer(3)), ("-7 / 2", .integer(-3)),
        ("-7 % 3", .integer(-1)), ("7 % -3", .integer(1)), ("10 - 2 - 3", .integer(5)), ("- sequence", .integer(-42)), ("--5", .integer(5)),
        // logic, short circuit, XOR
        ("true AND false", .boolean(false)), ("false OR true", .boolean(true)), ("true XOR true", .boolean(false)),
        ("true XOR false", .boolean(true)), ("NOT true", .boolean(false)), ("not false and true", .boolean(true)),
        ("false AND missing = 1", .boolean(false)), ("true OR missing = 1", .boolean(true)),
        // LIKE with escapes
        ("type LIKE 'order.%'", .boolean(true)), ("type LIKE 'order_created'", .boolean(true)), ("type LIKE 'order'", .boolean(false)),
        ("pct LIKE '50\\%'", .boolean(true)), ("'50x' LIKE '50\\%'", .boolean(false)), ("'a_c' LIKE 'a\\_c'", .boolean(true)),
        ("'abc' LIKE 'a\\_c'", .boolean(false)), ("type NOT LIKE '%created'", .boolean(false)), ("'' LIKE '%'", .boolean(true)),
        ("'abcabc' LIKE '%b%c'", .boolean(true)),
        // IN with casting to the left type
        ("sequence IN (1, 42)", .boolean(true)), ("type IN ('a', 'b')", .boolean(false)), ("type NOT IN ('a', 'b')", .boolean(true)),
        ("42 IN ('42', '7')", .boolean(true)),
        // EXISTS
        ("EXISTS id", .boolean(true)), ("EXISTS nothere", .boolean(false)), ("EXISTS sequence", .boolean(true)),
        ("EXISTS data.total", .boolean(true)), ("EXISTS data.nope", .boolean(false)),
        // functions
        ("LENGTH('héllo')", .integer(5)), ("CONCAT('a', 1, true)", .string("a1true")), ("CONCAT()", .string("")),
        ("CONCAT_WS('-', 'a', 'b', 'c')", .string("a-b-c")), ("CONCAT_WS(',')", .string("")),
        ("LOWER('AbC')", .string("abc")), ("UPPER('AbC')", .string("ABC")), ("TRIM('  a b \t')", .string("a b")),
        ("LEFT('abcd', 2)", .string("ab")), ("LEFT('ab', 5)", .string("ab")), ("RIGHT('abcd', 2)", .string("cd")),
        ("SUBSTRING('abcdef', 3)", .string("cdef")), ("SUBSTRING('abcdef', -2)", .string("ef")), ("SUBSTRING('abcdef', 2, 3)", .string("bcd")),
        ("SUBSTRING('abcdef', 0)", .string("")), ("SUBSTRING('abcdef', 5, 10)", .string("ef")),
        ("ABS(-5)", .integer(5)), ("INT('12')", .integer(12)), ("INT(true)", .integer(1)), ("BOOL('TrUe')", .boolean(true)),
        ("BOOL(0)", .boolean(false)), ("STRING(12)", .string("12")), ("STRING(false)", .string("false")),
        ("IS_BOOL('false')", .boolean(true)), ("IS_BOOL('yes')", .boolean(false)), ("IS_INT('-12')", .boolean(true)), ("IS_INT('1.5')", .boolean(false)),
        ("length(type)", .integer(13)),
        // data paths into JSON
        ("data.total", .integer(150)), ("data.total > 100", .boolean(true)), ("data.name", .string("Ann \"A\"")), ("data.ok", .boolean(true)),
        ("data.items[1].sku", .string("y2")), ("data.items[1].qty", .integer(-3)), ("data.nested.a.b", .string("deep")),
        ("data.price", .string("12.5")), ("data.big = '99999999999'", .boolean(true)),
    ] as [(String, CESQLValue)])
    func evaluates(_ text: String, _ expected: CESQLValue) throws {
        let (value, errors) = try eval(text)
        #expect(errors.isEmpty, "\(text): \(errors)")
        #expect(value == expected, "\(text)")
    }

    /// Errors keep the expression total: a value (the zero value where the spec says so) plus errors.
    @Test(arguments: [
        ("missing", CESQLEvaluationError.Kind.missingAttribute, CESQLValue.string("")),
        ("missing = 'x'", .missingAttribute, .boolean(false)),
        ("1 / 0", .math, .integer(0)), ("1 % 0", .math, .integer(0)),
        ("2147483647 + 1", .math, .integer(Int32.min)),
        ("ABS(-2147483648)", .math, .integer(Int32.max)),
        ("type > 3", .cast, .boolean(false)),          // 'order.created' is not an integer: 0 > 3
        ("INT('abc')", .cast, .integer(0)), ("BOOL('maybe')", .cast, .boolean(false)),
        ("LEFT('abc', -1)", .function, .string("abc")), ("RIGHT('abc', -1)", .function, .string("abc")),
        ("SUBSTRING('abc', 5)", .function, .string("")), ("SUBSTRING('abc', -4)", .function, .string("")),
        ("SUBSTRING('abc', 1, -1)", .function, .string("")),
        ("data.nope", .missingAttribute, .string("")), ("data.items", .data, .string("")), ("data.nothing", .missingAttribute, .string("")),
        ("NOT type", .cast, .boolean(true)),
    ] as [(String, CESQLEvaluationError.Kind, CESQLValue)])
    func errorSemantics(_ text: String, _ kind: CESQLEvaluationError.Kind, _ value: CESQLValue) throws {
        let (v, errors) = try eval(text)
        #expect(errors.map(\.kind).contains(kind), "\(text): \(errors)")
        #expect(v == value, "\(text)")
    }

    @Test func aFilterWithAnErrorDoesNotMatch() throws {
        let f = try CESQLExpression("missing = 'x' OR true")
        // OR short-circuits only on a true left side; the missing attribute raised an error.
        guard case .error(let errors) = f.matches(CESQLInput(sample)) else { Issue.record("expected an error"); return }
        #expect(errors.first?.kind == .missingAttribute)
        #expect(errors.first?.offset == 0)
        let g = try CESQLExpression("sequence = 42")
        #expect(g.matches(CESQLInput(sample)) == .matched)
        #expect(try CESQLExpression("sequence = 41").matches(CESQLInput(sample)) == .notMatched(.boolean(false)))
    }

    @Test func invalidJSONIsAnError() throws {
        var e = sample
        e.data = Array("not json".utf8)
        let (_, errors) = try eval("data.total > 1", e)
        #expect(errors.first?.kind == .data)
        #expect(try CESQLExpression("type = 'x'").touchesData == false)
        #expect(try CESQLExpression("data.x = 1").touchesData == true)
    }

    @Test(arguments: [
        ("", 0), ("type =", 6), ("type = 'x", 7), ("(type = 'x'", 11), ("FOO(1)", 0), ("LENGTH('a', 'b')", 0),
        ("SUBSTRING('a')", 0), ("type LIKE 3", 10), ("type IN 'a'", 8), ("Type = 'x'", 0), ("2147483648", 0),
        ("type = 'x' 'y'", 11), ("'abc' + 1", 6), ("1 AND 'maybe'", 2), ("type # 1", 5), ("data. = 1", 5),
        ("EXISTS 3", 7), ("12abc", 2),
    ] as [(String, Int)])
    func parseErrorsHaveOffsets(_ text: String, _ offset: Int) {
        do {
            _ = try CESQLExpression(text)
            Issue.record("\(text) should not parse")
        } catch {
            #expect(error.offset == offset, "\(text): \(error.message)")
        }
    }

    @Test func keywordsAreCaseInsensitiveAndPrecedenceFollowsTheGrammar() throws {
        #expect(try eval("int(sequence) < 100 and int(sequence) > 1").0 == .boolean(true))
        // Unary NOT binds tighter than comparison: (NOT true) = false.
        #expect(try eval("NOT true = false").0 == .boolean(true))
        // `=` binds tighter than `<`… and both tighter than AND.
        #expect(try eval("1 + 1 = 2 AND 3 * 2 = 6").0 == .boolean(true))
        #expect(try CESQLExpression("type").resultType == .string)
        #expect(try CESQLExpression("data.x").resultType == nil)
    }

    /// Found by the CESQL fuzzer: deep nesting overflowed the stack of the recursive parser (and of
    /// type checking and evaluation after it). Too deep is now a parse error with a position.
    @Test(arguments: [
        ("parentheses", 64), ("NOT", 256), ("minus", 64), ("calls", 256), ("a + chain", 3900), ("IN lists", 450),
    ] as [(String, Int)])
    func tooDeepIsAParseError(_ shape: String, _ offsetAtLeast: Int) {
        let text = switch shape {
        case "parentheses": String(repeating: "(", count: 100_000) + "1" + String(repeating: ")", count: 100_000)
        case "NOT": String(repeating: "NOT ", count: 50_000) + "true"
        case "minus": String(repeating: "-", count: 50_000) + "1"
        case "calls": String(repeating: "ABS(", count: 10_000) + "1" + String(repeating: ")", count: 10_000)
        case "a + chain": "1" + String(repeating: " + 1", count: 20_000) + " = 2"
        default: "type IN (" + String(repeating: "type IN (", count: 1000) + "'x'" + String(repeating: ")", count: 1001)
        }
        do {
            _ = try CESQLExpression(text)
            Issue.record("\(shape): an expression \(text.count) characters long should not parse")
        } catch {
            #expect(error.message.contains("levels deep") || error.message.contains("operators deep"), "\(shape): \(error.message)")
            #expect(error.offset >= offsetAtLeast, "\(shape): \(error.offset): \(error.message)")
        }
    }

    @Test func deepButReasonableExpressionsStillParseAndEvaluate() throws {
        let nested = String(repeating: "(", count: 60) + "sequence = 42" + String(repeating: ")", count: 60)
        #expect(try eval(nested).0 == .boolean(true))
        let ors = (0..<900).map { "id = 'x\($0)'" }.joined(separator: " OR ") + " OR id = 'id-1'"
        #expect(try eval(ors).0 == .boolean(true))
        let list = "id IN (" + (0..<5000).map { "'x\($0)'" }.joined(separator: ", ") + ", 'id-1')"
        #expect(try eval(list).0 == .boolean(true))
    }

    /// Every input a fuzzer crashed on (Tests/Fixtures/fuzz/cesql-*) parses or fails cleanly, and what parses evaluates.
    @Test func fuzzerFindingsParseOrFailCleanly() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fixtures/fuzz").standardized
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("cesql-") }
        #expect(!files.isEmpty)
        for name in files {
            let bytes = try [UInt8](Data(contentsOf: dir.appendingPathComponent(name)))
            let nul = bytes.firstIndex(of: 0)
            let text = String(decoding: bytes[..<(nul ?? bytes.count)], as: UTF8.self)
            var event = sample
            if let nul { event.data = Array(bytes[(nul + 1)...]) }
            if let expression = try? CESQLExpression(text) { _ = expression.evaluate(CESQLInput(event)) }
        }
    }
}
