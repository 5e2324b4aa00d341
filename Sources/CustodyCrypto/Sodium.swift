internal import CSodium

/// An error reported by libsodium or by the safe wrappers around it.
///
/// The description names the failing function, never the data it was given.
package struct SodiumError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The kind of failure.
    package struct Code: Hashable, Sendable {
        enum Storage: Hashable, Sendable {
            case initializationFailed
            case authenticationFailed
            case allocationFailed
            case invalidInput
            case operationFailed
        }
        let storage: Storage
        /// `sodium_init()` failed; nothing cryptographic can run.
        package static var initializationFailed: Self { .init(storage: .initializationFailed) }
        /// A ciphertext, signature or key commitment failed verification.
        package static var authenticationFailed: Self { .init(storage: .authenticationFailed) }
        /// Guarded memory could not be allocated.
        package static var allocationFailed: Self { .init(storage: .allocationFailed) }
        /// An input had the wrong length or shape.
        package static var invalidInput: Self { .init(storage: .invalidInput) }
        /// A primitive reported failure (for example Argon2id ran out of memory).
        package static var operationFailed: Self { .init(storage: .operationFailed) }
    }

    /// The kind of failure.
    package let code: Code
    /// The libsodium function (or wrapper) that failed.
    package let function: StaticString

    /// Creates an error for `function`.
    package init(code: Code, function: StaticString) {
        self.code = code
        self.function = function
    }

    package var description: String { "\(code.storage) in \(function)" }

    package static func == (lhs: SodiumError, rhs: SodiumError) -> Bool {
        lhs.code == rhs.code && lhs.function.description == rhs.function.description
    }
}

/// Process-wide libsodium initialisation.
package enum Sodium {
    private static let initResult: Int32 = sodium_init()

    /// Runs `sodium_init()` once; later calls are free.
    ///
    /// - Throws: ``SodiumError/Code/initializationFailed`` when libsodium cannot start.
    package static func ensureInitialized() throws(SodiumError) {
        guard initResult >= 0 else { throw SodiumError(code: .initializationFailed, function: "sodium_init") }
    }

    /// The libsodium version string, for diagnostics.
    package static var versionString: String { String(cString: sodium_version_string()) }
}

/// Fills `count` bytes with cryptographically secure random data.
///
/// - Parameter count: The number of bytes to return.
/// - Returns: Fresh random bytes from `randombytes_buf`.
package func randomBytes(_ count: Int) -> [UInt8] {
    try? Sodium.ensureInitialized()
    var out = [UInt8](repeating: 0, count: count)
    out.withUnsafeMutableBytes { buffer in
        // The buffer is valid for `count` bytes for the duration of the closure.
        if let base = buffer.baseAddress { randombytes_buf(base, count) }
    }
    return out
}

/// Compares two byte sequences in constant time (for equal lengths) with `sodium_memcmp`.
///
/// - Returns: `true` when both have the same length and the same bytes.
package func constantTimeEqual(_ lhs: some ContiguousBytes, _ rhs: some ContiguousBytes) -> Bool {
    lhs.withUnsafeBytes { a in
        rhs.withUnsafeBytes { b in
            guard a.count == b.count else { return false }
            guard a.count > 0, let pa = a.baseAddress, let pb = b.baseAddress else { return true }
            return sodium_memcmp(pa, pb, a.count) == 0
        }
    }
}

/// Overwrites the bytes of `buffer` with zeros in a way the optimiser cannot remove.
///
/// - Parameter buffer: The buffer to wipe; its count is unchanged.
package func wipe(_ buffer: inout [UInt8]) {
    buffer.withUnsafeMutableBytes { raw in
        if let base = raw.baseAddress, raw.count > 0 { sodium_memzero(base, raw.count) }
    }
}

/// Overwrites `count` bytes at `pointer` with zeros.
package func wipe(_ pointer: UnsafeMutableRawPointer, count: Int) {
    if count > 0 { sodium_memzero(pointer, count) }
}

/// Byte containers the crypto layer accepts.
package protocol ContiguousBytes {
    /// Lends the bytes for the duration of `body`.
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ContiguousBytes where Element == UInt8 {}
extension ArraySlice: ContiguousBytes where Element == UInt8 {}
extension UnsafeRawBufferPointer: ContiguousBytes {
    package func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(self) }
}
