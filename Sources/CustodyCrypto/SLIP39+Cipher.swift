internal import CSodium

extension SLIP39 {
    /// Shamir's secret sharing over GF(256) as SLIP-0039 does it: the secret at x = 255, its digest at x = 254.
    enum Shamir {
        /// One share: its x-coordinate and its value, one GF(256) element per byte of the secret.
        struct Point {
            /// The share index.
            var x: UInt8
            /// The value vector `f_k(x)`.
            var y: [UInt8]
        }

        /// The x-coordinate of the digest share.
        static let digestIndex: UInt8 = 254
        /// The x-coordinate of the shared secret.
        static let secretIndex: UInt8 = 255
        /// The length of the digest at the start of the digest share.
        static let digestByteCount = 4

        /// SplitSecret(T, N, S): `count` shares for indices 0 … count − 1, any `threshold` of which give `secret`.
        ///
        /// The caller has checked 1 ≤ threshold ≤ count ≤ 16 and that `secret` has at least 16 bytes.
        static func split(_ secret: [UInt8], threshold: Int, count: Int) -> [[UInt8]] {
            if threshold == 1 { return Array(repeating: secret, count: count) }
            var random = randomBytes(secret.count - digestByteCount)
            var digest = Array(digestOf(secret, key: random[...]).prefix(digestByteCount)) + random
            wipe(&random)
            var base = (0..<(threshold - 2)).map { Point(x: UInt8($0), y: randomBytes(secret.count)) }
            base.append(Point(x: digestIndex, y: digest))
            base.append(Point(x: secretIndex, y: secret))
            wipe(&digest)
            defer { for index in base.indices { wipe(&base[index].y) } }
            return (0..<count).map { index in
                index < threshold - 2 ? base[index].y : interpolate(base, at: UInt8(index))
            }
        }

        /// RecoverSecret(T, points): the secret, or `nil` when the digest share disagrees with it.
        ///
        /// The caller has checked that there are exactly `threshold` points with distinct x and equal lengths.
        static func recover(_ points: [Point], threshold: Int) -> [UInt8]? {
            if threshold == 1 { return points[0].y }
            var secret = interpolate(points, at: secretIndex)
            var digest = interpolate(points, at: digestIndex)
            defer { wipe(&digest) }
            var expected = digestOf(secret, key: digest[digestByteCount...])
            defer { wipe(&expected) }
            guard constantTimeEqual(expected[..<digestByteCount], digest[..<digestByteCount]) else {
                wipe(&secret)
                return nil
            }
            return secret
        }

        /// HMAC-SHA256(key = random part R, msg = secret S), whose first 4 bytes are the digest.
        private static func digestOf(_ secret: [UInt8], key: ArraySlice<UInt8>) -> [UInt8] {
            key.withUnsafeBytes { HMACSHA256.mac(key: $0, secret) }
        }

        /// Lagrange interpolation of every byte position of `points` at `x`.
        ///
        /// The basis coefficients depend only on the public x-coordinates; the secret bytes only meet the
        /// constant-time ``GF256/multiply(_:_:)``.
        static func interpolate(_ points: [Point], at x: UInt8) -> [UInt8] {
            var result = [UInt8](repeating: 0, count: points[0].y.count)
            for (i, point) in points.enumerated() {
                var numerator: UInt8 = 1
                var denominator: UInt8 = 1
                for (j, other) in points.enumerated() where j != i {
                    numerator = GF256.multiply(numerator, x ^ other.x)
                    denominator = GF256.multiply(denominator, point.x ^ other.x)
                }
                let coefficient = GF256.multiply(numerator, GF256.inverse(denominator))
                for k in result.indices { result[k] ^= GF256.multiply(coefficient, point.y[k]) }
            }
            return result
        }
    }

    /// Arithmetic in GF(2^8) modulo the Rijndael polynomial x^8 + x^4 + x^3 + x + 1, without tables or branches.
    enum GF256 {
        /// The product of `a` and `b`, in constant time.
        static func multiply(_ a: UInt8, _ b: UInt8) -> UInt8 {
            var a = a
            var b = b
            var product: UInt8 = 0
            for _ in 0..<8 {
                product ^= a & (0 &- (b & 1))
                a = (a << 1) ^ (0x1B & (0 &- (a >> 7)))
                b >>= 1
            }
            return product
        }

        /// The multiplicative inverse of a non-zero `a` (a^254).
        static func inverse(_ a: UInt8) -> UInt8 {
            var result: UInt8 = 1
            var power = a
            var exponent = 254
            while exponent > 0 {
                if exponent & 1 == 1 { result = multiply(result, power) }
                power = multiply(power, power)
                exponent >>= 1
            }
            return result
        }
    }

    /// The encryption of the master secret: a four-round Feistel network with PBKDF2-HMAC-SHA256 as round function.
    enum Cipher {
        /// The number of Feistel rounds.
        static let roundCount = 4
        /// PBKDF2 iterations per round for iteration exponent 0.
        static let baseIterationCount = 2500

        /// EMS = Encrypt(MS, P, e, id, ext).
        static func encrypt(_ secret: [UInt8], passphrase: [UInt8], parameters: Share.Parameters) -> [UInt8] {
            feistel(secret, passphrase: passphrase, parameters: parameters, rounds: Array(0..<roundCount))
        }

        /// MS = Decrypt(EMS, P, e, id, ext): the same network with the rounds in reverse.
        static func decrypt(_ encrypted: [UInt8], passphrase: [UInt8], parameters: Share.Parameters) -> [UInt8] {
            feistel(
                encrypted,
                passphrase: passphrase,
                parameters: parameters,
                rounds: Array((0..<roundCount).reversed())
            )
        }

        /// (L, R) ← (R, L xor F(i, R)) for each round i, then R || L.
        private static func feistel(
            _ input: [UInt8],
            passphrase: [UInt8],
            parameters: Share.Parameters,
            rounds: [Int]
        ) -> [UInt8] {
            let half = input.count / 2
            var left = Array(input[..<half])
            var right = Array(input[half...])
            // Salt = salt_prefix || R; the prefix is "shamir" || id (big-endian) unless the split is extendable.
            var salt: [UInt8] =
                parameters.extendable
                ? []
                : Array("shamir".utf8) + [UInt8(parameters.identifier >> 8), UInt8(parameters.identifier & 0xFF)]
            let prefixCount = salt.count
            var password = [0] + passphrase
            let iterations = baseIterationCount << parameters.iterationExponent
            defer {
                wipe(&left)
                wipe(&right)
                wipe(&salt)
                wipe(&password)
            }
            for round in rounds {
                password[0] = UInt8(round)
                salt.removeSubrange(prefixCount...)
                salt += right
                var mixed = PBKDF2.deriveSHA256(password: password, salt: salt, iterations: iterations, byteCount: half)
                for k in mixed.indices { mixed[k] ^= left[k] }
                wipe(&left)
                left = right
                right = mixed
            }
            return right + left
        }
    }

    /// PBKDF2 with HMAC-SHA256 (RFC 8018), on libsodium's HMAC: the keyed state is computed once and copied for
    /// each iteration, so an iteration costs two SHA-256 compressions.
    enum PBKDF2 {
        /// The first `byteCount` bytes of PBKDF2-HMAC-SHA256(password, salt, iterations).
        static func deriveSHA256(password: [UInt8], salt: [UInt8], iterations: Int, byteCount: Int) -> [UInt8] {
            var keyed = crypto_auth_hmacsha256_state()
            var state = crypto_auth_hmacsha256_state()
            var block = [UInt8](repeating: 0, count: 32)
            var sum = [UInt8](repeating: 0, count: 32)
            defer {
                withUnsafeMutableBytes(of: &keyed) { if let base = $0.baseAddress { wipe(base, count: $0.count) } }
                withUnsafeMutableBytes(of: &state) { if let base = $0.baseAddress { wipe(base, count: $0.count) } }
                wipe(&block)
                wipe(&sum)
            }
            // The arrays are passed as pointers valid for their counts during each call.
            _ = crypto_auth_hmacsha256_init(&keyed, password, password.count)
            var out: [UInt8] = []
            out.reserveCapacity(byteCount)
            var blockIndex: UInt32 = 1
            while out.count < byteCount {
                let counter = [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: blockIndex >> UInt32($0)) }
                state = keyed
                _ = crypto_auth_hmacsha256_update(&state, salt, UInt64(salt.count))
                _ = crypto_auth_hmacsha256_update(&state, counter, UInt64(counter.count))
                _ = crypto_auth_hmacsha256_final(&state, &block)
                sum = block
                block.withUnsafeMutableBufferPointer { u in
                    sum.withUnsafeMutableBufferPointer { t in
                        // `u` and `t` are 32 bytes each for the whole loop.
                        guard let uBase = u.baseAddress else { return }
                        for _ in 1..<max(iterations, 1) {
                            state = keyed
                            _ = crypto_auth_hmacsha256_update(&state, uBase, 32)
                            _ = crypto_auth_hmacsha256_final(&state, uBase)
                            for k in 0..<32 { t[k] ^= u[k] }
                        }
                    }
                }
                out += sum.prefix(byteCount - out.count)
                blockIndex += 1
            }
            return out
        }
    }
}
