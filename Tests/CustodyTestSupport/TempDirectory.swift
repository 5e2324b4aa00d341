import CustodyArchive
import CustodyCrypto
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A fresh temporary folder, removed when the value is released.
package final class TempDirectory: @unchecked Sendable {
    // @unchecked: `path` is immutable; the folder is only removed in deinit.
    /// The folder.
    package let path: String

    /// Creates a new empty folder under the system temporary directory.
    package init(_ label: String = "test") {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        path = "\(base)/custody-\(label)-\(Encoding.hex(randomBytes(6)))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Writes `bytes` to `name` inside the folder (creating parent folders) and returns the full path.
    @discardableResult
    package func write(_ name: String, _ bytes: [UInt8]) -> String {
        let full = "\(path)/\(name)"
        try? FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        _ = FileManager.default.createFile(atPath: full, contents: Data(bytes))
        return full
    }

    /// Writes UTF-8 text.
    @discardableResult
    package func write(_ name: String, text: String) -> String { write(name, Array(text.utf8)) }
}

/// Test fixtures for archives.
package enum Fixtures {
    /// The passphrase of every test archive.
    package static let passphrase = "correct horse battery staple"

    /// The passphrase as guarded bytes.
    package static func secret(_ text: String = passphrase) -> SecretBytes {
        // swift-format-ignore: NeverUseForceTry
        try! SecretBytes(copying: Array(text.utf8))
    }

    /// A new archive in `dir/archive` with the insecure-test KDF (fast unlocks).
    package static func archive(in dir: TempDirectory, chunkSize: Int = 1 << 20) async throws -> Archive.Unlocked {
        let archive = try await Archive.create(
            at: dir.path + "/archive",
            name: "Test Body",
            passphrase: secret(),
            kdfPreset: "insecure-test",
            chunkSize: chunkSize
        )
        return archive
    }

    /// Opens the archive in `dir/archive` and unlocks it with the test passphrase.
    package static func reopen(_ dir: TempDirectory, access: Archive.Access = .shared) throws -> Archive.Unlocked {
        try Archive.open(at: dir.path + "/archive", access: access, passphrase: { _ in secret() }).unlock()
    }

    /// Every regular file under `root`, recursively.
    package static func allFiles(under root: String) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: root) else { return [] }
        var files: [String] = []
        while let next = enumerator.nextObject() as? String {
            var isDirectory: ObjCBool = false
            let full = root + "/" + next
            if FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue {
                files.append(full)
            }
        }
        return files.sorted()
    }

    /// The bytes of a file.
    package static func read(_ path: String) -> [UInt8] {
        (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))) ?? []
    }
}

/// Whether `haystack` contains `needle` anywhere.
package func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return false }
    let first = needle[0]
    var i = 0
    while i <= haystack.count - needle.count {
        if haystack[i] == first && Array(haystack[i..<(i + needle.count)]) == needle { return true }
        i += 1
    }
    return false
}
