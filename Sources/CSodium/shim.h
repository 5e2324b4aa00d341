#ifndef CSODIUM_SHIM_H
#define CSODIUM_SHIM_H
#include <sodium.h>

/* `void *` wrappers so Swift never rebinds memory; each returns libsodium's result code. */

static inline int CSodium_xchacha_seal(void *c, const void *m, size_t mlen, const void *ad, size_t adlen,
                                       const void *n, const void *k) {
    return crypto_aead_xchacha20poly1305_ietf_encrypt(c, NULL, m, mlen, ad, adlen, NULL, n, k);
}

static inline int CSodium_xchacha_open(void *m, const void *c, size_t clen, const void *ad, size_t adlen,
                                       const void *n, const void *k) {
    return crypto_aead_xchacha20poly1305_ietf_decrypt(m, NULL, NULL, c, clen, ad, adlen, n, k);
}

static inline int CSodium_generichash(void *out, size_t outlen, const void *in, size_t inlen,
                                      const void *key, size_t keylen) {
    return crypto_generichash(out, outlen, in, inlen, key, keylen);
}

/* Keyed BLAKE2b over two concatenated parts (domain tag, then data); the state is wiped. */
static inline int CSodium_generichash_keyed2(void *out, size_t outlen, const void *key, size_t keylen,
                                             const void *a, size_t alen, const void *b, size_t blen) {
    crypto_generichash_state state;
    int rc = crypto_generichash_init(&state, key, keylen, outlen);
    if (rc == 0) rc = crypto_generichash_update(&state, a, alen);
    if (rc == 0) rc = crypto_generichash_update(&state, b, blen);
    if (rc == 0) rc = crypto_generichash_final(&state, out, outlen);
    sodium_memzero(&state, sizeof state);
    return rc;
}

static inline int CSodium_sha256(void *out, const void *in, size_t inlen) {
    return crypto_hash_sha256(out, in, inlen);
}

static inline int CSodium_sign_seed_keypair(void *pk, void *sk, const void *seed) {
    return crypto_sign_seed_keypair(pk, sk, seed);
}

static inline int CSodium_sign_detached(void *sig, const void *m, size_t mlen, const void *sk) {
    return crypto_sign_detached(sig, NULL, m, mlen, sk);
}

static inline int CSodium_sign_verify_detached(const void *sig, const void *m, size_t mlen, const void *pk) {
    return crypto_sign_verify_detached(sig, m, mlen, pk);
}

static inline int CSodium_scalarmult_base(void *q, const void *n) {
    return crypto_scalarmult_base(q, n);
}

static inline int CSodium_box_seal(void *c, const void *m, size_t mlen, const void *pk) {
    return crypto_box_seal(c, m, mlen, pk);
}

static inline int CSodium_box_seal_open(void *m, const void *c, size_t clen, const void *pk, const void *sk) {
    return crypto_box_seal_open(m, c, clen, pk, sk);
}

static inline int CSodium_pwhash_argon2id(void *out, size_t outlen, const void *pw, size_t pwlen,
                                          const void *salt, unsigned long long ops, size_t mem) {
    return crypto_pwhash(out, outlen, pw, pwlen, salt, ops, mem, crypto_pwhash_ALG_ARGON2ID13);
}

static inline int CSodium_kdf_derive(void *out, size_t outlen, unsigned long long id, const void *ctx,
                                     const void *key) {
    return crypto_kdf_derive_from_key(out, outlen, id, ctx, key);
}

static inline int CSodium_stream_xchacha20(void *out, size_t outlen, const void *n, const void *k) {
    return crypto_stream_xchacha20(out, outlen, n, k);
}

#endif
