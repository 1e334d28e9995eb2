@testable import HTTP
import Testing

@Suite("HTTP/1.1 request head parsing")
struct HTTPParserTests {
    private func parse(_ text: String, limits: HTTPLimits = HTTPLimits()) -> (HTTPHeadParser.Outcome, HTTPRequest) {
        let request = HTTPRequest()
        var parser = HTTPHeadParser()
        let bytes = Array(text.utf8)
        let outcome = bytes.withUnsafeBytes { parser.parse($0, into: request, limits: limits) }
        return (outcome, request)
    }

    @Test("a complete head yields method, target, fields and framing")
    func complete() {
        let (outcome, request) = parse("PUT /b/k?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\nX-Amz-Meta-A:  v  \r\n\r\nbody")
        guard case let .complete(length) = outcome else { Issue.record("not complete: \(outcome)"); return }
        #expect(length == 74)
        #expect(request.method == .put && request.targetString == "/b/k?x=1")
        #expect(request.contentLength == 12 && !request.isChunked && request.keepAlive)
        #expect(request.value("x-amz-meta-a") == "v")
        #expect(request.value("host") == "h")
    }

    @Test("partial heads ask for more; bare LF line ends are accepted")
    func incompleteAndLF() {
        if case .incomplete = parse("GET / HTTP/1.1\r\nHost: h\r\n").0 {} else { Issue.record("expected incomplete") }
        let (outcome, request) = parse("GET /a HTTP/1.0\nConnection: keep-alive\n\n")
        guard case .complete = outcome else { Issue.record("LF head not parsed"); return }
        #expect(!request.isHTTP11 && request.keepAlive)
    }

    @Test("smuggling shapes and malformed lines are refused with the right status")
    func refused() {
        func status(_ text: String, _ limits: HTTPLimits = HTTPLimits()) -> Int? {
            if case let .failure(status, _) = parse(text, limits: limits).0 { return status.code }
            return nil
        }
        #expect(status("GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n") == 400)
        #expect(status("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n") == 400)
        #expect(status("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n") == 400)
        #expect(status("GET / HTTP/1.1\r\nA: b\r\n  folded\r\n\r\n") == 400)
        #expect(status("GET / HTTP/1.1\r\nBad Name: b\r\n\r\n") == 400)
        #expect(status("GET /\u{7F} HTTP/1.1\r\n\r\n") == 400)
        #expect(status("GARBAGE\r\n\r\n") == 400)
        #expect(status("GET / HTTP/2.0\r\n\r\n") == 505)
        #expect(status("GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n") == 501)
        #expect(status("GET / HTTP/1.1\r\nExpect: something\r\n\r\n") == 417)
        var small = HTTPLimits()
        small.maxHeadSize = 64
        #expect(status("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 100), small) == 431)
        small.maxFields = 1
        #expect(status("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", small) == 431)
    }

    @Test("chunk-size lines: hex, extensions, and nothing else")
    func chunkSizes() {
        func size(_ text: String) -> UInt64? { Array(text.utf8).withUnsafeBytes { HTTPConnection.chunkSize($0) } }
        #expect(size("1a") == 26)
        #expect(size("FF;ext=1\r") == 255)
        #expect(size("") == nil && size("xyz") == nil && size("-1") == nil)
        #expect(size("1234567890abcdef") == nil)
    }

    @Test("HTTP dates round-trip")
    func dates() {
        #expect(HTTPDate.format(seconds: 784111777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.format(seconds: 0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(seconds: 1_795_651_200) == "Thu, 26 Nov 2026 00:00:00 GMT")
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777)
        #expect(HTTPDate.parse("yesterday") == nil)
    }
}
