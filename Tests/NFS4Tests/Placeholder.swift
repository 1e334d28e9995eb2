import Testing
@testable import NFS4
