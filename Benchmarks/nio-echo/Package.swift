// swift-tools-version: 6.1
// A plain SwiftNIO echo server: the reference point for scripts/bench-runtime.
// Separate package (not part of the main build):
//   swift build -c release --package-path Benchmarks/nio-echo --scratch-path .build-nio
import PackageDescription

let package = Package(
    name: "nio-echo",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
    ],
    targets: [
        .executableTarget(
            name: "nio-echo",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
    ]
)
