import Testing
import Server
import Foundation

@Suite("JSON serializer")
struct JSONSerializerTests {
    @Test func referenceFileRoundTripsByteForByte() throws {
        let text = try String(contentsOfFile: TestFiles.referenceConfigPath, encoding: .utf8)
        let value = try JSONValue.parse(text)
        // The example is written with four-space indentation and a final newline.
        #expect(value.serialized() + "\n" == text)
    }

    @Test func embeddedDefaultIsInSerializerLayout() throws {
        let text = Configuration.embeddedDefaultText
        #expect(try JSONValue.parse(text).serialized() == text)
    }

    @Test func prettyLayout() {
        let value: JSONValue = ["a": 1, "b": [true, nil], "c": [:], "d": [], "e": ["f": "g"]]
        #expect(value.serialized() == """
            {
                "a": 1,
                "b": [
                    true,
                    null
                ],
                "c": {},
                "d": [],
                "e": {
                    "f": "g"
                }
            }
            """)
        #expect(value.serialized(pretty: false) == #"{"a":1,"b":[true,null],"c":{},"d":[],"e":{"f":"g"}}"#)
    }

    @Test(arguments: [
        (16.0, "16"), (-3.0, "-3"), (1.5, "1.5"), (0.1, "0.1"), (-0.0, "0"), (1e300, "1e+300"),
        (9_007_199_254_740_992, "9007199254740992"), (Double.infinity, "null"), (Double.nan, "null"),
    ])
    func numbers(value: Double, text: String) {
        #expect(JSONValue.number(value).serialized() == text)
    }

    @Test func stringsAreEscaped() throws {
        let original = "quote \" backslash \\ slash / nl \n cr \r tab \t bell \u{07} nul \u{0} é 😀"
        let text = JSONValue.string(original).serialized()
        #expect(text == #""quote \" backslash \\ slash / nl \n cr \r tab \t bell \u0007 nul \u0000 é 😀""#)
        #expect(try JSONValue.parse(text) == .string(original))
        #expect(JSONValue.quoted("plain") == "\"plain\"")
    }

    @Test func parseSerializeRoundTrip() throws {
        let value: JSONValue = [
            "nested": ["deeper": [[1, 2], ["x": nil]]],
            "numbers": [0, -1, 2.25, 1e-7, 123456789],
            "unicode": "𝄞 \u{1F600}",
            "empty": "",
        ]
        #expect(try JSONValue.parse(value.serialized()) == value)
        #expect(try JSONValue.parse(value.serialized(pretty: false)) == value)
        // Stable: serializing what was parsed gives the same text again.
        let once = value.serialized()
        #expect(try JSONValue.parse(once).serialized() == once)
    }

    @Test func objectMembers() {
        var object = JSONObject()
        object["b"] = 1
        object["a"] = 2
        object["c"] = 3
        #expect(object.keys == ["b", "a", "c"])
        object["a"] = 20
        #expect(object.keys == ["b", "a", "c"])
        #expect(object["a"] == 20)
        object["b"] = nil
        #expect(object.keys == ["a", "c"])
        #expect(object["c"] == 3)
        #expect(object.count == 2)
        #expect(object.contains(key: "a") && !object.contains(key: "b"))
        // Equality ignores member order, as JSON does.
        let reordered: JSONObject = ["c": 3, "a": 20]
        #expect(object == reordered)
        #expect(object != ["c": 3, "a": 21])
        #expect(object != ["c": 3])
    }
}
