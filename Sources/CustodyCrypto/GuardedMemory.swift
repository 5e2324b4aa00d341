internal import CSodium

/// Key material in guarded memory (`sodium_malloc`), zeroed by `sodium_free` when released.
///
/// Use it for long-lived secrets (the master secret, signing and box keys, the convergence secret).
/// Short-lived per-item keys live in ordinary arrays that callers ``wipe(_:)`` after use.
/// There is no byte accessor and no `Codable`: the bytes are lent through ``withUnsafeBytes(_:)``.
package final class SecretBytes: @unchecked Sendable {
    // @unchecked: the memory is written only inside `init` and is read-only afterwards.
    private let base: UnsafeMutableRawPointer
    /// The number of secret bytes.
    package let count: Int

    /// Allocates `count` guarded bytes and lets `initializer` fill them.
    ///
    /// - Throws: ``SodiumError/Code/allocationFailed`` when guarded memory is exhausted.
    package init(count: Int, initializer: (UnsafeMutableRawPointer, Int) throws -> Void) throws {
        try Sodium.ensureInitialized()
        guard count > 0, let base = sodium_malloc(count) else {
            throw SodiumError(code: .allocationFailed, function: "sodium_malloc")
        }
        self.base = base
        self.count = count
        do {
            try initializer(base, count)
        } catch {
            sodium_free(base)
            throw error
        }
        sodium_mprotect_readonly(base)
    }

    /// Allocates `count` fresh random bytes.
    package convenience init(randomCount count: Int) throws {
        try self.init(count: count) { pointer, count in randombytes_buf(pointer, count) }
    }

    /// Copies `bytes` into guarded memory. The caller remains responsible for wiping its own copy.
    package convenience init(copying bytes: some ContiguousBytes) throws {
        let count = bytes.withUnsafeBytes { $0.count }
        try self.init(count: count) { pointer, count in
            bytes.withUnsafeBytes { source in
                // `source` holds exactly `count` bytes.
                if let from = source.baseAddress { pointer.copyMemory(from: from, byteCount: count) }
            }
        }
    }

    deinit { sodium_free(base) }

    /// Lends the secret bytes for the duration of `body`; the pointer must not escape.
    package func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }
}

extension SecretBytes: Equatable, CustomStringConvertible {
    package static func == (lhs: SecretBytes, rhs: SecretBytes) -> Bool {
        lhs.count == rhs.count && sodium_memcmp(lhs.base, rhs.base, lhs.count) == 0
    }

    package var description: String { "SecretBytes(\(count) bytes, redacted)" }
}
