// swift-tools-version:6.1
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

// Fuzzing (Docs/FUZZING.md, Scripts/fuzz.sh): only with CUSTODY_FUZZ=1 does the package gain the libFuzzer target
// `custody-fuzz` and instrument its own modules for coverage and AddressSanitizer (dependencies stay uninstrumented,
// which keeps the sanitized build cheap). Never set for a normal build: its modules could not link `custody`.
let fuzzing = Context.environment["CUSTODY_FUZZ"] == "1"
let fuzzFlags: [String] = ["-sanitize=fuzzer,address"]
let instrumented: [SwiftSetting] = fuzzing ? [.unsafeFlags(fuzzFlags)] : []

let package = Package(
    name: "Custody",
    products: [
        .executable(name: "custody", targets: ["custody"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .target(name: "CCustodySystem"),
        .target(
            name: "CustodyCrypto",
            dependencies: [
                "CSodium",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings + instrumented
        ),
        // Objects by name, whatever holds them: the async ObjectStore protocol and the filesystem store. Blocking
        // file work runs on NIOThreadPool; the module knows no HTTP.
        .target(
            name: "CustodyStorage",
            dependencies: [
                "CustodyCrypto",
                "CCustodySystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings + instrumented
        ),
        // Objects on S3: the async client (AsyncHTTPClient), SigV4, the store, migration, and the factory that
        // picks an archive's backend from objects.json.
        .target(
            name: "CustodyS3",
            dependencies: [
                "CustodyStorage",
                "CustodyCrypto",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings + instrumented
        ),
        // What a file says about itself (EXIF, XMP, MP4/MOV, PDF Info, C2PA presence): bounded parsers of bytes
        // given to them, no file IO, no dependencies (Docs/FORMAT.md, "The file's claims").
        .target(
            name: "CustodyClaims",
            swiftSettings: strictSettings + instrumented
        ),
        .target(
            name: "CustodyArchive",
            dependencies: [
                "CustodyClaims",
                "CustodyCrypto",
                "CustodyStorage",
                "CCustodySystem",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strictSettings + instrumented
        ),
        .target(
            name: "CustodyNode",
            dependencies: [
                "CustodyArchive",
                "CustodyCrypto",
                "CustodyStorage",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings + instrumented
        ),
        // Benchmarks the CLI runs (`custody bench`), kept out of the core library: they only call its API.
        .target(
            name: "CustodyBenchmarks",
            dependencies: ["CustodyArchive", "CustodyCrypto", "CustodyStorage"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "custody",
            dependencies: [
                "CustodyArchive",
                "CustodyBenchmarks",
                "CustodyClaims",
                "CustodyNode",
                "CustodyCrypto",
                "CustodyStorage",
                "CustodyS3",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "CustodyTestSupport",
            dependencies: ["CustodyArchive", "CustodyClaims", "CustodyCrypto", "CustodyStorage"],
            path: "Tests/CustodyTestSupport",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CustodyCryptoTests",
            dependencies: ["CustodyCrypto"],
            exclude: ["Vectors"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CustodyArchiveTests",
            dependencies: ["CustodyArchive", "CustodyClaims", "CustodyCrypto", "CustodyStorage", "CustodyTestSupport"],
            exclude: ["Vectors"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CustodyStorageTests",
            dependencies: ["CustodyStorage", "CustodyCrypto", .product(name: "NIOPosix", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CustodyS3Tests",
            dependencies: ["CustodyS3", "CustodyStorage", "CustodyCrypto"],
            exclude: ["Vectors"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CustodyNodeTests",
            dependencies: [
                "CustodyNode", "CustodyArchive", "CustodyCrypto", "CustodyStorage", "CustodyTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CustodyCLITests",
            dependencies: [
                "CustodyArchive", "CustodyClaims", "CustodyNode", "CustodyCrypto", "CustodyStorage", "CustodyS3",
                "CustodyTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)

if fuzzing {
    package.products.append(.executable(name: "custody-fuzz", targets: ["CustodyFuzz"]))
    package.targets += [
        // Declares libFuzzer's driver, which custody-fuzz's main calls (SwiftPM links executables with their own main).
        .target(name: "CCustodyFuzz", path: "Fuzz/Sources/CCustodyFuzz"),
        .executableTarget(
            name: "CustodyFuzz",
            dependencies: [
                "CCustodyFuzz", "CustodyArchive", "CustodyClaims", "CustodyNode", "CustodyCrypto", "CustodyTestSupport",
            ],
            path: "Fuzz/Sources/CustodyFuzz",
            swiftSettings: strictSettings + instrumented,
            linkerSettings: [.unsafeFlags(fuzzFlags + ["-use-ld=lld"])]
        ),
    ]
}
