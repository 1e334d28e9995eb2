/// Connection-oriented DCE/RPC (C706 §12, MS-RPCE §2.2.2) over a named pipe, enough for one
/// interface: BIND / ALTER_CONTEXT with the NDR transfer syntax, REQUEST → RESPONSE (split in
/// fragments the client can take), FAULT for anything else. No authentication (srvsvc's share
/// list is served on the already authenticated SMB session).
final class DCERPCServer {
    enum PacketType: UInt8 {
        case request = 0, response = 2, fault = 3, bind = 11, bindAck = 12, bindNak = 13, alterContext = 14, alterContextResponse = 15
    }

    static let ndrSyntax: [UInt8] = [0x04, 0x5D, 0x88, 0x8A, 0xEB, 0x1C, 0xC9, 0x11, 0x9F, 0xE8, 0x08, 0x00, 0x2B, 0x10, 0x48, 0x60]
    static let ndrVersion: UInt32 = 2
    /// nca_s_op_rng_error, nca_s_proto_error, nca_s_unspec_reject.
    static let faultOperationRange: UInt32 = 0x1C01_0002
    static let faultProtocol: UInt32 = 0x1C01_000B

    let service: SRVSVC
    private var maxTransmit = 4280
    private var boundContext: UInt16?

    init(service: SRVSVC) {
        self.service = service
    }

    private func u16(_ pdu: [UInt8], _ at: Int) -> UInt16? {
        guard at >= 0, at + 2 <= pdu.count else { return nil }
        return UInt16(pdu[at]) | UInt16(pdu[at + 1]) << 8
    }

    private func u32(_ pdu: [UInt8], _ at: Int) -> UInt32? {
        guard at >= 0, at + 4 <= pdu.count else { return nil }
        return UInt32(pdu[at]) | UInt32(pdu[at + 1]) << 8 | UInt32(pdu[at + 2]) << 16 | UInt32(pdu[at + 3]) << 24
    }

    /// Answers one PDU (never throws: a malformed PDU gets a FAULT).
    func handle(_ pdu: [UInt8], connection: SMBConnection) -> [UInt8] {
        guard pdu.count >= 16, pdu[0] == 5, pdu[4] == 0x10, let callID = u32(pdu, 12), let type = PacketType(rawValue: pdu[2]) else {
            return fault(callID: u32(pdu, 12) ?? 0, status: Self.faultProtocol)
        }
        switch type {
        case .bind, .alterContext:
            return bind(pdu, callID: callID, alter: type == .alterContext)
        case .request:
            guard pdu[3] & 0x3 == 0x3, let context = u16(pdu, 20), let opnum = u16(pdu, 22), pdu.count >= 24 else {
                return fault(callID: callID, status: Self.faultProtocol)
            }
            guard boundContext == context else { return fault(callID: callID, status: Self.faultProtocol) }
            let stub = Array(pdu[24...])
            guard let result = service.call(opnum: opnum, stub: stub) else { return fault(callID: callID, status: Self.faultOperationRange) }
            return response(callID: callID, context: context, stub: result)
        default:
            return fault(callID: callID, status: Self.faultProtocol)
        }
    }

    private func header(_ type: PacketType, flags: UInt8 = 0x3, callID: UInt32, length: Int) -> [UInt8] {
        [5, 0, type.rawValue, flags, 0x10, 0, 0, 0] + Bytes.le16(UInt16(length)) + [0, 0] + Bytes.le32(callID)
    }

    private func bind(_ pdu: [UInt8], callID: UInt32, alter: Bool) -> [UInt8] {
        guard let maxXmit = u16(pdu, 16), let maxRecv = u16(pdu, 18), pdu.count >= 28 else {
            return fault(callID: callID, status: Self.faultProtocol)
        }
        maxTransmit = max(1024, min(Int(maxRecv), 65535))
        let count = Int(pdu[24])
        var position = 28
        var results: [UInt8] = []
        for _ in 0..<min(count, 16) {
            guard let context = u16(pdu, position), position + 24 <= pdu.count else { return fault(callID: callID, status: Self.faultProtocol) }
            let transfers = Int(pdu[position + 2])
            let abstract = Array(pdu[(position + 4)..<(position + 20)])
            let abstractVersion = u32(pdu, position + 20) ?? 0
            position += 24
            var accepted = false
            for _ in 0..<transfers {
                guard position + 20 <= pdu.count else { return fault(callID: callID, status: Self.faultProtocol) }
                let syntax = Array(pdu[position..<(position + 16)])
                let version = u32(pdu, position + 16) ?? 0
                position += 20
                if !accepted && abstract == SRVSVC.interfaceID && abstractVersion & 0xFFFF == 3
                    && syntax == Self.ndrSyntax && version == Self.ndrVersion {
                    accepted = true
                }
            }
            if accepted {
                boundContext = context
                results += [0, 0, 0, 0] + Self.ndrSyntax + Bytes.le32(Self.ndrVersion)
            } else {
                // Provider rejection: proposed transfer syntaxes (or abstract syntax) not supported.
                results += Bytes.le16(2) + Bytes.le16(abstract == SRVSVC.interfaceID ? 2 : 1) + [UInt8](repeating: 0, count: 20)
            }
        }
        var body = Bytes.le16(UInt16(min(Int(maxXmit), 65535))) + Bytes.le16(UInt16(min(Int(maxRecv), 65535))) + Bytes.le32(0x53F0)
        if alter {
            body += Bytes.le16(0)
        } else {
            let port = Array("\\PIPE\\srvsvc".utf8) + [0]
            body += Bytes.le16(UInt16(port.count)) + port
        }
        while (16 + body.count) % 4 != 0 { body.append(0) }
        body += [UInt8(min(count, 16)), 0, 0, 0] + results
        return header(alter ? .alterContextResponse : .bindAck, callID: callID, length: 16 + body.count) + body
    }

    /// A RESPONSE, in as many fragments as the client's receive size needs.
    private func response(callID: UInt32, context: UInt16, stub: [UInt8]) -> [UInt8] {
        let perFragment = max(8, (maxTransmit - 24) & ~7)
        var out: [UInt8] = []
        var offset = 0
        repeat {
            let chunk = min(perFragment, stub.count - offset)
            var flags: UInt8 = 0
            if offset == 0 { flags |= 0x1 }
            if offset + chunk == stub.count { flags |= 0x2 }
            out += header(.response, flags: flags, callID: callID, length: 24 + chunk)
            out += Bytes.le32(UInt32(stub.count - offset)) + Bytes.le16(context) + [0, 0]
            out += stub[offset..<(offset + chunk)]
            offset += chunk
        } while offset < stub.count
        return out
    }

    private func fault(callID: UInt32, status: UInt32) -> [UInt8] {
        let body = Bytes.le32(0) + Bytes.le16(0) + [0, 0] + Bytes.le32(status) + Bytes.le32(0)
        return header(.fault, callID: callID, length: 16 + body.count) + body
    }
}
