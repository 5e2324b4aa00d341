import CustodyCrypto
import Testing

@Suite struct XChaCha20Poly1305Tests {
    let key = randomBytes(32)
    let nonce = randomBytes(24)
    let ad = Array("custody/test".utf8)

    @Test func roundTrip() throws {
        let message = Array("the detainees were moved at night".utf8)
        let sealed = XChaCha20Poly1305.seal(message, key: key, nonce: nonce, associatedData: ad)
        #expect(sealed.count == message.count + 16)
        #expect(sealed.prefix(message.count) != message[...])
        #expect(try XChaCha20Poly1305.open(sealed, key: key, nonce: nonce, associatedData: ad) == message)
    }

    @Test("Any flipped byte is rejected", arguments: [0, 5, 32, 48])
    func tamperedByteIsRejected(at index: Int) {
        var sealed = XChaCha20Poly1305.seal(Array(repeating: 7, count: 33), key: key, nonce: nonce, associatedData: ad)
        sealed[index] ^= 0x01
        let error = #expect(throws: SodiumError.self) {
            try XChaCha20Poly1305.open(sealed, key: key, nonce: nonce, associatedData: ad)
        }
        #expect(error?.code == .authenticationFailed)
    }

    @Test func wrongAssociatedDataIsRejected() {
        let sealed = XChaCha20Poly1305.seal([1, 2, 3], key: key, nonce: nonce, associatedData: ad)
        #expect(throws: SodiumError.self) {
            try XChaCha20Poly1305.open(sealed, key: key, nonce: nonce, associatedData: Array("other".utf8))
        }
    }

    @Test func emptyPlaintextRoundTrips() throws {
        let sealed = XChaCha20Poly1305.seal([], key: key, nonce: nonce, associatedData: [])
        #expect(sealed.count == 16)
        #expect(try XChaCha20Poly1305.open(sealed, key: key, nonce: nonce, associatedData: []) == [])
    }

    @Test func truncatedCiphertextIsInvalidInput() {
        let error = #expect(throws: SodiumError.self) {
            try XChaCha20Poly1305.open([1, 2, 3], key: key, nonce: nonce, associatedData: ad)
        }
        #expect(error?.code == .invalidInput)
    }
}

@Suite struct HashTests {
    @Test func sha256KnownAnswer() {
        #expect(
            Encoding.hex(SHA256Hasher.hash(Array("abc".utf8)))
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        )
    }

    @Test func swiftCryptoAndLibsodiumAgree() {
        for count in [0, 1, 63, 64, 65, 1000, 1 << 16] {
            let data = randomBytes(count)
            let sodium = data.withUnsafeBytes { SHA256Hasher.sodiumHash($0) }
            #expect(SHA256Hasher.hash(data) == sodium)
        }
    }

    @Test func streamingEqualsOneShot() {
        let data = randomBytes(10_000)
        var hasher = SHA256Hasher()
        hasher.update(Array(data[0..<3333]))
        hasher.update(Array(data[3333...]))
        #expect(hasher.finalize() == SHA256Hasher.hash(data))
    }

    @Test func blake2b256KnownAnswer() {
        // BLAKE2b-256 of the empty string (RFC 7693 parameters, 32-byte output).
        #expect(Encoding.hex(BLAKE2b.hash([])) == "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8")
    }

    @Test func keyedHashDependsOnKeyTagAndData() throws {
        let key1 = try SecretBytes(randomCount: 32)
        let key2 = try SecretBytes(randomCount: 32)
        let data = randomBytes(100)
        let a = data.withUnsafeBytes { BLAKE2b.keyedHash(tag: [1], data: $0, key: key1) }
        let b = data.withUnsafeBytes { BLAKE2b.keyedHash(tag: [1], data: $0, key: key2) }
        let c = data.withUnsafeBytes { BLAKE2b.keyedHash(tag: [2], data: $0, key: key1) }
        let again = data.withUnsafeBytes { BLAKE2b.keyedHash(tag: [1], data: $0, key: key1) }
        #expect(a != b)
        #expect(a != c)
        #expect(a == again)
    }
}

@Suite struct SigningTests {
    /// Seed and public key of the C2SP signed-note vector in shared/vectors/signed-note.json.
    let seed = (0..<32).map { UInt8($0) }

    @Test func signAndVerify() throws {
        let key = try SigningKey(seed: SecretBytes(copying: seed))
        let message = Array("custody/event/v1\n{}".utf8)
        let signature = key.signature(for: message)
        #expect(SigningKey.isValidSignature(signature, for: message, publicKey: key.publicKey))
        var tampered = signature
        tampered[10] ^= 1
        #expect(!SigningKey.isValidSignature(tampered, for: message, publicKey: key.publicKey))
        #expect(!SigningKey.isValidSignature(signature, for: message + [0], publicKey: key.publicKey))
    }

    @Test func knownAnswerFromSignedNoteVector() throws {
        // shared/vectors/signed-note.json: the checkpoint signature line carries key id (4 bytes) || signature.
        let key = try SigningKey(seed: SecretBytes(copying: seed))
        let body = Array("example.org/custody/log\n5\nANIYKaVQMUU0irz3ElE+rPKidCEa2D6XAgK7W22AsoY=\n".utf8)
        let line = "25geP99JnnZogJiRuguC8MtIF8cgcLtG2Gpttrr6FcNtzyxVRZofdVarKRVC7zaBNbozOKLwT2JQW83GQKNTHtWl5Q8="
        let expected = try #require(Encoding.bytes(base64: line))
        #expect(Array(expected.dropFirst(4)) == key.signature(for: body))
        #expect(Encoding.base64([0x01] + key.publicKey) == "AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4")
    }
}

@Suite struct BoxTests {
    @Test func sealedBoxRoundTripAndWrongKey() throws {
        let alice = try BoxKey(secretKey: SecretBytes(randomCount: 32))
        let mallory = try BoxKey(secretKey: SecretBytes(randomCount: 32))
        let sealed = try BoxKey.seal([9, 8, 7], to: alice.publicKey)
        #expect(sealed.count == 3 + BoxKey.sealOverhead)
        #expect(try alice.open(sealed) == [9, 8, 7])
        #expect(throws: SodiumError.self) { try mallory.open(sealed) }
    }
}

@Suite struct KeyDerivationTests {
    @Test func argon2idIsDeterministicAndSaltSensitive() throws {
        let passphrase = try SecretBytes(copying: Array("passphrase".utf8))
        let salt = [UInt8](repeating: 1, count: 16)
        let a = try PasswordHash.deriveKey(passphrase: passphrase, salt: salt, parameters: .insecureTest)
        let b = try PasswordHash.deriveKey(passphrase: passphrase, salt: salt, parameters: .insecureTest)
        let c = try PasswordHash.deriveKey(
            passphrase: passphrase,
            salt: [UInt8](repeating: 2, count: 16),
            parameters: .insecureTest
        )
        #expect(a == b)
        #expect(a != c)
    }

    @Test func absurdParametersAreRefused() throws {
        let passphrase = try SecretBytes(copying: Array("p".utf8))
        #expect(throws: SodiumError.self) {
            try PasswordHash.deriveKey(
                passphrase: passphrase,
                salt: [UInt8](repeating: 0, count: 16),
                parameters: .init(opsLimit: 1, memLimit: 1 << 40)
            )
        }
        #expect(throws: SodiumError.self) {
            try PasswordHash.deriveKey(passphrase: passphrase, salt: [1, 2], parameters: .insecureTest)
        }
    }

    @Test func subkeysDifferByIDAndContext() throws {
        let master = try SecretBytes(randomCount: 32)
        let a = try SubkeyDerivation.derive(from: master, id: 1, context: "cstdconv")
        let b = try SubkeyDerivation.derive(from: master, id: 2, context: "cstdconv")
        let c = try SubkeyDerivation.derive(from: master, id: 1, context: "cstdlog_")
        #expect(a != b)
        #expect(a != c)
        #expect(a == (try SubkeyDerivation.derive(from: master, id: 1, context: "cstdconv")))
    }

    @Test func secretBytesNeverPrintTheirContent() throws {
        let secret = try SecretBytes(copying: Array("hunter2".utf8))
        #expect(secret.description == "SecretBytes(7 bytes, redacted)")
        #expect(!"\(secret)".contains("hunter2"))
    }

    @Test func constantTimeEqualityChecksLengthAndBytes() {
        #expect(constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!constantTimeEqual([1, 2, 3], [1, 2]))
    }

    @Test func wipeZeroes() {
        var buffer: [UInt8] = [1, 2, 3, 4]
        wipe(&buffer)
        #expect(buffer == [0, 0, 0, 0])
    }
}
