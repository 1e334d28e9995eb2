import Testing
import Server

@Suite("IP addresses and networks")
struct IPAddressTests {
    @Test(arguments: [
        ("0.0.0.0", "0.0.0.0"), ("127.0.0.1", "127.0.0.1"), ("255.255.255.255", "255.255.255.255"),
        ("::", "::"), ("::1", "::1"), ("2001:DB8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("1:0:0:2:0:0:0:3", "1:0:0:2::3"), ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
        ("fe80::", "fe80::"), ("::ffff:192.168.1.1", "::ffff:192.168.1.1"), ("::ffff:c0a8:101", "::ffff:192.168.1.1"),
        ("64:ff9b::10.0.0.1", "64:ff9b::a00:1"), ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),
        ("1:0:0:1:0:0:1:1", "1::1:0:0:1:1"),
    ])
    func validAddresses(text: String, canonical: String) throws {
        let address = try #require(IPAddress(text))
        #expect(address.description == canonical)
        #expect(IPAddress(canonical) == address)
    }

    @Test(arguments: [
        ("", "empty"), ("1.2.3", "four numbers"), ("1.2.3.4.5", "four numbers"), ("256.1.1.1", "larger than 255"),
        ("01.2.3.4", "leading zero"), ("1.2.3.-4", "not a number"), ("a.b.c.d", "not a number"), ("1.2..4", "not a number"),
        ("1::2::3", "only once"), (":::", "empty group"), (":1::", "empty group"), ("1:2:3:4:5:6:7:8:9", "eight groups"),
        ("1:2:3:4:5:6:7", "eight groups"), ("12345::", "one to four hexadecimal"), ("g::1", "one to four hexadecimal"),
        ("fe80::1%eth0", "zone"), ("[::1]", "brackets"), ("1.2.3.4::", "may only end"), ("::1.2.3.4:5", "may only end"),
        ("1:2:3:4:5:6:7:8::", "at most seven"), (" 1.2.3.4", "not a number"),
    ])
    func invalidAddresses(text: String, reason: String) throws {
        guard case .failure(let error) = IPAddress.parse(text) else {
            Issue.record("\(text) parsed")
            return
        }
        #expect(error.reason.contains(reason), "\(text): \(error.reason)")
    }

    @Test func properties() throws {
        #expect(try #require(IPAddress("0.0.0.0")).isUnspecified)
        #expect(try #require(IPAddress("::")).isUnspecified)
        #expect(try #require(IPAddress("127.8.0.1")).isLoopback)
        #expect(try #require(IPAddress("::1")).isLoopback)
        #expect(try #require(IPAddress("::ffff:127.0.0.1")).isLoopback)
        #expect(try #require(IPAddress("10.0.0.1")).isLoopback == false)
        #expect(try #require(IPAddress("192.168.1.2")).bytes == [192, 168, 1, 2])
        #expect(try #require(IPAddress("2001:db8::ff")).bytes == [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [0xff])
    }

    @Test(arguments: [
        ("10.0.0.0/8", "10.0.0.0/8"), ("0.0.0.0/0", "0.0.0.0/0"), ("192.168.1.7", "192.168.1.7"),
        ("192.168.1.7/32", "192.168.1.7"), ("2001:db8::/32", "2001:db8::/32"), ("::/0", "::/0"), ("fe80::1/128", "fe80::1"),
    ])
    func validNetworks(text: String, canonical: String) throws {
        let network = try #require(IPNetwork(text))
        #expect(network.description == canonical)
    }

    @Test(arguments: [
        ("192.168.1.5/24", "the network is 192.168.1.0/24"), ("10.0.0.0/33", "from 0 to 32"), ("::/129", "from 0 to 128"),
        ("10.0.0.0/", "not a number"), ("10.0.0.0/08", "not a number"), ("10.0.0.0/8/8", "prefix length, like"),
        ("10.0.0.0/-1", "not a number"), ("2001:db8::1/32", "the network is 2001:db8::/32"), ("10.0.0/8", "four numbers"),
    ])
    func invalidNetworks(text: String, reason: String) {
        guard case .failure(let error) = IPNetwork.parse(text) else {
            Issue.record("\(text) parsed")
            return
        }
        #expect(error.reason.contains(reason), "\(text): \(error.reason)")
    }

    @Test func membership() throws {
        let lan = try #require(IPNetwork("192.168.1.0/24"))
        #expect(lan.contains(try #require(IPAddress("192.168.1.200"))))
        #expect(!lan.contains(try #require(IPAddress("192.168.2.1"))))
        #expect(lan.contains(try #require(IPAddress("::ffff:192.168.1.9"))))
        #expect(!lan.contains(try #require(IPAddress("2001:db8::1"))))
        let everything = try #require(IPNetwork("0.0.0.0/0"))
        #expect(everything.contains(try #require(IPAddress("8.8.8.8"))))
        let v6 = try #require(IPNetwork("2001:db8::/32"))
        #expect(v6.contains(try #require(IPAddress("2001:db8:ffff::1"))))
        #expect(!v6.contains(try #require(IPAddress("2001:db9::1"))))
        #expect(!v6.contains(try #require(IPAddress("10.0.0.1"))))
        let mapped = try #require(IPNetwork("::ffff:10.0.0.0/104"))
        #expect(mapped.contains(try #require(IPAddress("10.1.2.3"))))
        let host = try #require(IPNetwork("10.0.0.5"))
        #expect(host.contains(try #require(IPAddress("10.0.0.5"))))
        #expect(!host.contains(try #require(IPAddress("10.0.0.6"))))
    }
}
