/// Entry points for the fuzz targets (Fuzz/, scripts/fuzz): the security blobs a client sends
/// in SESSION_SETUP before it has authenticated, driven with arbitrary bytes. Not used by the
/// server itself.
public enum SMBFuzzing {
    /// A fixed user (any NT hash) for the AUTHENTICATE check to find.
    private static let user = SMBUser(name: "user", ntHash: [UInt8](repeating: 0x11, count: 16), uid: 1000, gid: 1000)

    /// Parses `bytes` as a SESSION_SETUP security buffer (raw NTLMSSP, negTokenInit or
    /// negTokenResp), then runs whatever NTLMSSP message it carried through the server side of
    /// the exchange: NEGOTIATE gets a CHALLENGE, AUTHENTICATE is checked against one user.
    /// The raw bytes go through both NTLMSSP steps as well, wrapped or not.
    public static func securityBlob(_ bytes: UnsafeRawBufferPointer) {
        let token = Array(bytes)
        var server = NTLMServer(netbiosName: "FUZZ", domain: "WORKGROUP", challenge: [1, 2, 3, 4, 5, 6, 7, 8])
        var messages = [token]
        if let parsed = try? SPNEGO.parse(token), let mech = parsed.mechToken { messages.append(mech) }
        for message in messages {
            if let challenge = try? server.challenge(for: message) {
                _ = SPNEGO.response(.acceptIncomplete, token: challenge, includeMechanism: true)
            }
            _ = try? server.authenticate(message) { $0.lowercased() == user.name ? user : nil }
        }
    }
}
