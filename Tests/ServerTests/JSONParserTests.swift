import Testing
import Server

@Suite("JSON parser")
struct JSONParserTests {
    func parseError(_ text: String) -> JSONParseError? {
        do {
            _ = try JSONValue.parse(text)
            return nil
        } catch {
            return error
        }
    }

    @Test func scalarsAndContainers() throws {
        #expect(try JSONValue.parse("null") == .null)
        #expect(try JSONValue.parse(" true ") == .bool(true))
        #expect(try JSONValue.parse("false") == .bool(false))
        #expect(try JSONValue.parse("\"hi\"") == .string("hi"))
        #expect(try JSONValue.parse("[]") == .array([]))
        #expect(try JSONValue.parse("{}") == .object(JSONObject()))
        let v = try JSONValue.parse(#"{"a": [1, 2.5, "x", null, {"b": false}], "c": {}}"#)
        #expect(v == ["a": [1, 2.5, "x", nil, ["b": false]], "c": [:]])
        #expect(v["a"]?[1]?.doubleValue == 2.5)
        #expect(v["a"]?[4]?["b"]?.boolValue == false)
        #expect(v["missing"] == nil)
    }

    @Test func objectsKeepKeyOrder() throws {
        let v = try JSONValue.parse(#"{"zeta": 1, "alpha": 2, "mid": 3}"#)
        #expect(v.objectValue?.keys == ["zeta", "alpha", "mid"])
        #expect(v.objectValue?.map(\.key) == ["zeta", "alpha", "mid"])
    }

    @Test(arguments: [
        ("0", 0.0), ("-0", -0.0), ("16", 16), ("-42", -42), ("1.5", 1.5), ("1e3", 1000), ("1E+3", 1000),
        ("2.5e-3", 0.0025), ("123456789012345678", 1.2345678901234568e17), ("0.1", 0.1),
        ("9007199254740993", 9007199254740992),
    ])
    func numbers(text: String, expected: Double) throws {
        #expect(try JSONValue.parse(text) == .number(expected))
    }

    @Test func intAccessorRefusesFractions() throws {
        #expect(try JSONValue.parse("16").intValue == 16)
        #expect(try JSONValue.parse("1.6e1").intValue == 16)
        #expect(try JSONValue.parse("-3").intValue == -3)
        #expect(try JSONValue.parse("1.5").intValue == nil)
        #expect(try JSONValue.parse("1e300").intValue == nil)
        #expect(try JSONValue.parse("9007199254740992").intValue == 9_007_199_254_740_992)
        #expect(try JSONValue.parse("\"3\"").intValue == nil)
        #expect(JSONValue.bool(true).intValue == nil)
    }

    @Test(arguments: [
        ("01", "leading zeros"), ("-01", "leading zeros"), ("-", "digit after '-'"), ("1.", "digit after '.'"),
        (".5", "expected a value"), ("+1", "expected a value"), ("1e", "exponent"), ("1e+", "exponent"),
        ("NaN", "expected a value"), ("Infinity", "expected a value"), ("1e400", "too large"), ("0x10", "after the JSON value"),
    ])
    func invalidNumbers(text: String, message: String) throws {
        let error = try #require(parseError(text))
        #expect(error.message.contains(message), "\(error)")
    }

    @Test func stringEscapes() throws {
        #expect(try JSONValue.parse(#""a\"b\\c\/d\be\ff\ng\rh\ti""#) == .string("a\"b\\c/d\u{08}e\u{0C}f\ng\rh\ti"))
        #expect(try JSONValue.parse(#""caf\u00e9 \u00E9""#) == .string("café é"))
        #expect(try JSONValue.parse(#""\u0000""#) == .string("\u{0}"))
        #expect(try JSONValue.parse(#""\ud83d\ude00!""#) == .string("😀!"))
        #expect(try JSONValue.parse(#""\uD834\uDD1E""#) == .string("𝄞"))
        #expect(try JSONValue.parse("\"raw UTF-8: é 😀 中\"") == .string("raw UTF-8: é 😀 中"))
    }

    @Test(arguments: [
        (#""\ud800""#, "unpaired UTF-16 high surrogate \\uD800"),
        (#""\ud800x""#, "unpaired UTF-16 high surrogate"),
        (#""\ud800\u0041""#, "not a low surrogate"),
        (#""\udc00""#, "unpaired UTF-16 low surrogate \\uDC00"),
        (#""\u12""#, "four hexadecimal digits"),
        (#""\u12g4""#, "four hexadecimal digits"),
        (#""\q""#, "invalid escape '\\q'"),
        ("\"tab\there\"", "a tab (U+0009) inside a string must be escaped"),
        ("\"line\nbreak\"", "a line break (U+000A) inside a string must be escaped"),
        ("\"open", "unterminated string"),
    ])
    func invalidStrings(text: String, message: String) throws {
        let error = try #require(parseError(text))
        #expect(error.message.contains(message), "\(error)")
    }

    @Test func invalidUTF8IsRefused() throws {
        let bytes: [UInt8] = Array(#"{"name": "ab"#.utf8) + [0xFF, 0x41] + Array(#""}"#.utf8)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(bytes: bytes) }
        do {
            _ = try JSONValue.parse(bytes: bytes)
        } catch {
            #expect(error.message.contains("not valid UTF-8"))
            #expect(error.offset == 12)
            #expect(error.keyPath == "name")
        }
        // Outside strings, a non-ASCII byte is just an unexpected character.
        #expect(throws: JSONParseError.self) { try JSONValue.parse(bytes: [0xC3, 0xA9]) }
        // Valid multi-byte UTF-8 passes through the byte API.
        #expect(try JSONValue.parse(bytes: Array("\"é\"".utf8)) == .string("é"))
    }

    @Test func errorsCarryLineColumnAndPath() throws {
        let text = """
            {
                "server": {
                    "a": 1,
                    "b": 2  "c": 3
                }
            }
            """
        let error = try #require(parseError(text))
        #expect(error.line == 4)
        #expect(error.column == 17)
        #expect(error.keyPath == "server")
        #expect(error.description == #"line 4, column 17: expected ',' or '}' after object member, found '"'"#)
    }

    @Test func columnsCountCharactersNotBytes() throws {
        let error = try #require(parseError("{\"é😀\": x}"))
        #expect(error.line == 1)
        #expect(error.column == 8)
        #expect(error.keyPath == #"["é😀"]"#)
    }

    @Test func pathsNameArraysAndOddKeys() throws {
        let error = try #require(parseError(#"{"exports": {"/memfs": {"clients": ["a", 1 2]}}}"#))
        #expect(error.keyPath == #"exports["/memfs"].clients"#)
        let inElement = try #require(parseError(#"{"a": [{"b": [1, tru]}]}"#))
        #expect(inElement.keyPath == "a[0].b[1]")
        #expect(error.message.contains("expected ',' or ']' after array element"))
    }

    @Test func duplicateKeysAreErrorsNamingThePath() throws {
        let text = """
            {
                "mounts": {
                    "memfs": {"module": "memfs"},
                    "memfs": {"module": "linux"}
                }
            }
            """
        let error = try #require(parseError(text))
        #expect(error.keyPath == "mounts.memfs")
        #expect(error.message == #"duplicate key "memfs" (first written at line 3, column 9)"#)
        #expect(error.line == 4 && error.column == 9)

        let nested = try #require(parseError(#"{"a": {"b": 1, "b": 1}}"#))
        #expect(nested.keyPath == "a.b")
    }

    @Test func nestingDepthIsBounded() throws {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(throws: Never.self) { try JSONValue.parse(ok) }
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        let error = try #require(parseError(deep))
        #expect(error.message.contains("more than 64 levels"))
        let hostile = String(repeating: "{\"a\":", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(hostile) }
        #expect(throws: JSONParseError.self) { try JSONValue.parse("[[[1]]]", maximumDepth: 2) }
        #expect(try JSONValue.parse("[[1]]", maximumDepth: 2) == [[1]])
    }

    @Test(arguments: [
        ("", "the document is empty"),
        ("   \n ", "the document is empty"),
        ("{} {}", "expected the end of the document after the JSON value, found '{'"),
        ("[1, 2,]", "JSON does not allow trailing commas"),
        (#"{"a": 1,}"#, "JSON does not allow trailing commas"),
        ("{'a': 1}", "single quote"),
        (#"{"a" 1}"#, "expected ':' after object key \"a\""),
        (#"{"a": 1"#, "expected ',' or '}' after object member, found the end of the input"),
        ("[1", "expected ',' or ']' after array element, found the end of the input"),
        (#"{"a": True}"#, "True (literals are lowercase: write true)"),
        (#"{"a": yes}"#, "yes (strings need double quotes: write \"yes\")"),
        ("{1: 2}", "expected a string key in double quotes, found '1'"),
        ("// comment\n{}", "expected a value"),
    ])
    func syntaxErrors(text: String, message: String) throws {
        let error = try #require(parseError(text))
        #expect(error.message.contains(message), "\(error)")
    }

    @Test func byteOrderMarkIsSkipped() throws {
        #expect(try JSONValue.parse(bytes: [0xEF, 0xBB, 0xBF] + Array("[1]".utf8)) == [1])
    }

    @Test func unsafeBufferEntryPoint() throws {
        let bytes = Array(#"{"x": [true]}"#.utf8)
        let value = try bytes.withUnsafeBufferPointer { buffer throws(JSONParseError) in
            try JSONValue.parse(utf8: buffer)
        }
        #expect(value == ["x": [true]])
    }
}
