// swift-tools-version: 6.1
import PackageDescription

/// libFuzzer targets for the parsers that read untrusted bytes (issue 10). Built and run by
/// scripts/fuzz with `--sanitize=fuzzer --sanitize=address`; each target defines
/// LLVMFuzzerTestOneInput and gets its main from libFuzzer.
let package = Package(
    name: "dmanoel-NAS-fuzz",
    dependencies: [
        .package(name: "dmanoel-NAS", path: ".."),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
    ],
    targets: [
        .executableTarget(name: "fuzz-http-request", dependencies: [.product(name: "FuzzSurface", package: "dmanoel-NAS")],
                          path: "Sources/fuzz-http-request"),
        .executableTarget(name: "fuzz-s3-xml", dependencies: [.product(name: "FuzzSurface", package: "dmanoel-NAS")],
                          path: "Sources/fuzz-s3-xml"),
        .executableTarget(name: "fuzz-s3-chunked", dependencies: [.product(name: "FuzzSurface", package: "dmanoel-NAS")],
                          path: "Sources/fuzz-s3-chunked"),
        .executableTarget(name: "fuzz-s3-request-parts", dependencies: [.product(name: "FuzzSurface", package: "dmanoel-NAS")],
                          path: "Sources/fuzz-s3-request-parts"),
        .executableTarget(name: "fuzz-s3-post-form", dependencies: [.product(name: "FuzzSurface", package: "dmanoel-NAS")],
                          path: "Sources/fuzz-s3-post-form"),
        .executableTarget(name: "fuzz-config", dependencies: [.product(name: "FuzzSurface", package: "dmanoel-NAS")],
                          path: "Sources/fuzz-config"),
        .executableTarget(name: "fuzz-xdr", dependencies: [.product(name: "FuzzSurface", package: "dmanoel-NAS")],
                          path: "Sources/fuzz-xdr"),
        // The whole server in-process, fed over loopback TCP (NFS port, SMB port).
        .target(name: "FuzzWire", dependencies: [.product(name: "FuzzSurface", package: "dmanoel-NAS"),
                                                 .product(name: "Logging", package: "swift-log")],
                path: "Sources/FuzzWire"),
        .executableTarget(name: "fuzz-nfs-rpc", dependencies: ["FuzzWire"], path: "Sources/fuzz-nfs-rpc"),
        .executableTarget(name: "fuzz-smb", dependencies: ["FuzzWire"], path: "Sources/fuzz-smb"),
        .executableTarget(name: "fuzz-nfs4-compound", dependencies: ["FuzzWire", .product(name: "FuzzSurface", package: "dmanoel-NAS")],
                          path: "Sources/fuzz-nfs4-compound"),
        .executableTarget(name: "fuzz-smb-auth", dependencies: [.product(name: "FuzzSurface", package: "dmanoel-NAS")],
                          path: "Sources/fuzz-smb-auth"),
    ]
)
