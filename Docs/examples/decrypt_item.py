#!/usr/bin/env python3
"""Independent decryptor and checker for Custody archives, written from Docs/FORMAT.md and Docs/LEDGER.md.

It shares no code with Custody: only PyNaCl (libsodium) and the Python standard library.
Besides decrypting, it recomputes the keystream padding of every chunk from the convergence secret
(FORMAT.md section 9), which Custody itself never needs to do.

    CUSTODY_PASSPHRASE=... python3 decrypt_item.py ARCHIVE [ITEM] [-o OUTPUT] [--passphrase-file FILE]

ITEM is an item id or a unique prefix of at least 8 hex characters; without it every item is
decrypted and checked (nothing is written). With -o the plaintext of ITEM is written to OUTPUT.
Exit status: 0 when every check passed, 1 when a check failed, 2 for usage errors. A torn journal
tail (LEDGER.md section 3) is a warning, as in custody verify; damage and replayed entries fail.

Section numbers in comments refer to Docs/FORMAT.md.
"""

import argparse
import base64
import hashlib
import json
import os
import sys

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.pwhash
import nacl.signing


class CheckFailed(Exception):
    pass


def check(condition, what):
    if not condition:
        raise CheckFailed(what)


def b64(text):
    return base64.b64decode(text, validate=True)


def blake2b_256(data, key=b""):
    return hashlib.blake2b(data, digest_size=32, key=key).digest()


def padme(n, minimum=512):
    """Section 8."""
    length = max(n, minimum)
    if length < 2:
        return length
    e = length.bit_length() - 1
    s = e.bit_length()
    z = e - s
    if z <= 0:
        return length
    mask = (1 << z) - 1
    return (length + mask) & ~mask


def kdf_derive(master, subkey_id, context):
    """Section 5: libsodium crypto_kdf_derive_from_key (BLAKE2b with salt and personalisation)."""
    assert len(master) == 32 and len(context) == 8
    return hashlib.blake2b(
        b"",
        digest_size=32,
        key=master,
        salt=subkey_id.to_bytes(8, "little") + bytes(8),
        person=context + bytes(8),
    ).digest()


def aead_open(ciphertext, ad, nonce, key):
    try:
        return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, ad, nonce, key)
    except nacl.exceptions.CryptoError:
        raise CheckFailed("XChaCha20-Poly1305 authentication failed")


# XChaCha20 keystream (libsodium crypto_stream_xchacha20), section 9 ------------------------------
# PyNaCl has no raw stream function, so the keystream is built from two pieces that are easy to check:
# bytes 0-63 (block 0) come from the ChaCha20 block function below, in plain Python; bytes 64 on come
# from PyNaCl's XChaCha20-Poly1305 (IETF), which encrypts a message with exactly this keystream from
# block 1 on (block 0 is spent on the Poly1305 key; its 32-bit counter and nonce 0^4 || N[16:24] equal
# the 64-bit counter and nonce N[16:24] below for the first 2^32 blocks, far more than one chunk).
# Encrypting zeros therefore yields the keystream. A self-check compares the Python block function
# with PyNaCl's output for block 1.

_SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"


def _chacha_rounds(state):
    x = list(state)

    def quarter(a, b, c, d):
        x[a] = (x[a] + x[b]) & 0xFFFFFFFF
        x[d] ^= x[a]
        x[d] = ((x[d] << 16) | (x[d] >> 16)) & 0xFFFFFFFF
        x[c] = (x[c] + x[d]) & 0xFFFFFFFF
        x[b] ^= x[c]
        x[b] = ((x[b] << 12) | (x[b] >> 20)) & 0xFFFFFFFF
        x[a] = (x[a] + x[b]) & 0xFFFFFFFF
        x[d] ^= x[a]
        x[d] = ((x[d] << 8) | (x[d] >> 24)) & 0xFFFFFFFF
        x[c] = (x[c] + x[d]) & 0xFFFFFFFF
        x[b] ^= x[c]
        x[b] = ((x[b] << 7) | (x[b] >> 25)) & 0xFFFFFFFF

    for _ in range(10):
        quarter(0, 4, 8, 12)
        quarter(1, 5, 9, 13)
        quarter(2, 6, 10, 14)
        quarter(3, 7, 11, 15)
        quarter(0, 5, 10, 15)
        quarter(1, 6, 11, 12)
        quarter(2, 7, 8, 13)
        quarter(3, 4, 9, 14)
    return x


def _words(data):
    return [int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4)]


def _pack(words):
    return b"".join(w.to_bytes(4, "little") for w in words)


def hchacha20(key, nonce16):
    x = _chacha_rounds(_SIGMA + tuple(_words(key)) + tuple(_words(nonce16)))
    return _pack(x[0:4] + x[12:16])


def chacha20_block(key, counter, nonce8):
    """One 64-byte block of the original ChaCha20: 64-bit block counter, 64-bit nonce."""
    state = _SIGMA + tuple(_words(key)) + (counter & 0xFFFFFFFF, counter >> 32) + tuple(_words(nonce8))
    x = _chacha_rounds(state)
    return _pack([(a + b) & 0xFFFFFFFF for a, b in zip(x, state)])


def _aead_keystream_from_block_1(key, nonce24, count):
    sealed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(bytes(count), b"", nonce24, key)
    return sealed[:-16]


_stream_checked = False


def xchacha20_keystream(key, nonce24, count):
    """The first `count` bytes of crypto_stream_xchacha20(key, nonce24)."""
    global _stream_checked
    assert len(key) == 32 and len(nonce24) == 24
    subkey = hchacha20(key, nonce24[:16])
    if not _stream_checked:
        check(
            chacha20_block(subkey, 1, nonce24[16:]) == _aead_keystream_from_block_1(key, nonce24, 64),
            "self-check: Python ChaCha20 block agrees with libsodium",
        )
        _stream_checked = True
    head = chacha20_block(subkey, 0, nonce24[16:])
    if count <= 64:
        return head[:count]
    return head + _aead_keystream_from_block_1(key, nonce24, count - 64)


def padding_key(convergence, sha256, size):
    """Section 9: K_pad = BLAKE2b-256(key = convergence secret, "custody/padding/v1\n" || sha256 || BE64(size))."""
    return blake2b_256(b"custody/padding/v1\n" + sha256 + size.to_bytes(8, "big"), key=convergence)


def chunk_padding(k_pad, index, count):
    """Section 9: the padding bytes of chunk `index`: the first `count` bytes of XChaCha20(K_pad, LE64(index) || 0^16)."""
    return xchacha20_keystream(k_pad, index.to_bytes(8, "little") + bytes(16), count)


class Archive:
    def __init__(self, root):
        self.root = root
        self.config = self.read_json("archive.json")  # section 3
        c = self.config
        check(c.get("format") == "custody-archive" and c.get("version") == 1, "archive.json format/version")
        check(4096 <= c["chunk_size"] <= 16 << 20, "archive.json chunk_size in range")
        self.signing_pk = b64(c["signing_key"])
        self.box_pk = b64(c["box_key"])
        self.log_pk = b64(c["log_key"])
        check(len(self.signing_pk) == 32 and len(self.box_pk) == 32 and len(self.log_pk) == 32, "public key lengths")
        self.verify_key = nacl.signing.VerifyKey(self.signing_pk)

    def read_json(self, name):
        with open(os.path.join(self.root, name), "rb") as f:
            return json.loads(f.read())

    # Section 6 -----------------------------------------------------------------------------------
    def check_identity(self):
        ident = self.read_json("identity.json")
        check(ident["version"] == 1, "identity version is 1")
        signing = b64(ident["signing_key"])
        box = b64(ident["box_key"])
        digest = hashlib.sha256(b"custody/fingerprint/v1\n" + signing + box).hexdigest()[:32]
        fingerprint = "-".join(digest[i : i + 4] for i in range(0, 32, 4))
        check(ident["fingerprint"] == fingerprint, "identity fingerprint recomputes")
        origin = ident["origin"].encode()
        key_id = hashlib.sha256(origin + b"\n" + b"\x01" + self.log_pk).digest()[:4]
        verifier = "%s+%s+%s" % (ident["origin"], key_id.hex(), base64.b64encode(b"\x01" + self.log_pk).decode())
        check(ident["log_verifier_key"] == verifier, "identity log_verifier_key matches archive.json log_key")
        message = "custody/identity/v1\n%d\n%s\n%s\n%s\n%s\n%s\n%s\n" % (
            ident["version"],
            ident["name"],
            ident["origin"],
            ident["signing_key"],
            ident["box_key"],
            ident["log_verifier_key"],
            ident["fingerprint"],
        )
        try:
            nacl.signing.VerifyKey(signing).verify(message.encode(), b64(ident["self_signature"]))
        except nacl.exceptions.BadSignatureError:
            raise CheckFailed("identity self-signature")
        check(
            ident["signing_key"] == self.config["signing_key"] and ident["box_key"] == self.config["box_key"],
            "identity keys equal archive.json keys",
        )
        check(ident["origin"] == self.config["origin"], "identity origin equals archive.json origin")
        return fingerprint

    # Section 4 -----------------------------------------------------------------------------------
    def unlock(self, passphrase):
        kf = self.read_json("keys.json")
        check(kf["format"] == "custody-keys" and kf["version"] == 1, "keys.json format/version")
        kdf = kf["kdf"]
        check(kdf["alg"] == "argon2id13", "keys.json uses argon2id13")
        salt = b64(kdf["salt"])
        check(len(salt) == 16, "salt is 16 bytes")
        k_file = nacl.pwhash.argon2id.kdf(32, passphrase, salt, opslimit=kdf["opslimit"], memlimit=kdf["memlimit"])
        ad = ("custody/keyfile/v1\n" + self.config["signing_key"] + "\n" + self.config["box_key"]).encode()
        nonce = b64(kf["nonce"])
        sealed = b64(kf["ciphertext"])
        check(len(nonce) == 24 and len(sealed) == 112, "keys.json nonce/ciphertext lengths")
        try:
            secrets = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(sealed, ad, nonce, k_file)
        except nacl.exceptions.CryptoError:
            raise CheckFailed("keys.json does not open: wrong passphrase, or keys.json not of this archive.json")
        master, seed, box_secret = secrets[0:32], secrets[32:64], secrets[64:96]
        signing = nacl.signing.SigningKey(seed)
        check(bytes(signing.verify_key) == self.signing_pk, "Ed25519 key from seed equals archive.json signing_key")
        self.box = nacl.public.PrivateKey(box_secret)
        check(bytes(self.box.public_key) == self.box_pk, "X25519 key equals archive.json box_key")
        # Section 5.
        self.convergence = kdf_derive(master, 1, b"cstdconv")
        log = nacl.signing.SigningKey(kdf_derive(master, 2, b"cstdlog_"))
        check(bytes(log.verify_key) == self.log_pk, "log key derived from master equals archive.json log_key")
        return kdf["preset"]

    # LEDGER.md: frames and events ----------------------------------------------------------------
    @staticmethod
    def read_frame(data, offset):
        """LEDGER.md section 2: ("valid", entry), ("incomplete", None) or ("invalid", None)."""
        remaining = len(data) - offset
        if remaining < 8:
            return "incomplete", None
        if data[offset:] == bytes(remaining):
            return "incomplete", None  # an all-zero tail
        if data[offset : offset + 4] != b"CJ1\n":
            return "invalid", None
        length = int.from_bytes(data[offset + 4 : offset + 8], "big")
        if length > 1 << 20:
            return "invalid", None
        end = offset + 8 + length + 32
        if end > len(data):
            return "incomplete", None
        entry = data[offset + 8 : offset + 8 + length]
        if hashlib.sha256(b"\x00" + entry).digest() != data[offset + 8 + length : end]:
            return "invalid", None
        return "valid", entry

    def events(self):
        """Yields (index, event) for every valid frame; sets self.torn when the journal ends in a torn tail."""
        path = os.path.join(self.root, "journal", "entries")
        data = open(path, "rb").read() if os.path.exists(path) else b""
        self.torn = None
        offset = 0
        index = 0
        while offset < len(data):
            kind, entry = self.read_frame(data, offset)
            if kind == "incomplete":
                # LEDGER.md section 3: torn only when no valid frame starts at any later byte offset.
                later = offset + 1
                while True:
                    later = data.find(b"CJ1\n", later)
                    if later < 0:
                        break
                    check(self.read_frame(data, later)[0] != "valid", "journal damaged at byte %d (a valid frame follows)" % offset)
                    later += 1
                self.torn = (offset, len(data) - offset)
                return
            check(kind == "valid", "journal damaged at byte %d (a complete frame that is not valid: magic, length or leaf hash)" % offset)
            newline = entry.index(b"\n")
            body, signature = entry[:newline], b64(entry[newline + 1 :].decode())
            try:
                self.verify_key.verify(b"custody/event/v1\n" + body, signature)
            except nacl.exceptions.BadSignatureError:
                raise CheckFailed("signature of entry %d" % index)
            yield index, json.loads(body)
            offset += len(entry) + 40
            index += 1

    # Section 7 -----------------------------------------------------------------------------------
    def read_object(self, name, expected_size=None):
        check(len(name) == 64 and all(c in "0123456789abcdef" for c in name), "object name is 64 lowercase hex")
        with open(os.path.join(self.root, "objects", name[:2], name), "rb") as f:
            data = f.read()
        check(blake2b_256(data).hex() == name, "object %s hashes to its name" % name[:16])
        if expected_size is not None:
            check(len(data) == expected_size, "object %s has its recorded size" % name[:16])
        return data

    # Section 14 ----------------------------------------------------------------------------------
    def unwrap(self, wrapped, item):
        sealed = b64(wrapped)
        check(len(sealed) == 96, "wrapped key is 96 bytes")
        try:
            opened = nacl.public.SealedBox(self.box).decrypt(sealed)
        except nacl.exceptions.CryptoError:
            raise CheckFailed("wrapped key does not open")
        check(len(opened) == 48 and opened[:16] == item, "wrapped key is bound to its item id")
        return opened[16:]

    # Section 11 ----------------------------------------------------------------------------------
    @staticmethod
    def open_part(stored, kind, item_hex, key):
        check(len(stored) >= 76, "%s part long enough" % kind)
        commitment = blake2b_256(b"custody/key-commitment/v1", key=key)
        check(stored[24:56] == commitment, "%s part commits to its key" % kind)
        ad = ("custody/part/v1\n%s\n%s" % (kind, item_hex)).encode()
        padded = aead_open(stored[56:], ad, stored[0:24], key)
        n = int.from_bytes(padded[0:4], "big")
        check(n <= len(padded) - 4, "%s part length field" % kind)
        check(len(padded) == padme(4 + n), "%s part padded to padme(4 + length)" % kind)
        check(padded[4 + n :] == bytes(len(padded) - 4 - n), "%s part padding is zeros" % kind)
        return json.loads(padded[4 : 4 + n])


def chunk_list(archive, ref):
    """Section 15."""
    data = archive.read_object(ref["name"], ref["size"])
    check(len(data) % 40 == 0, "chunk list is a multiple of 40 bytes")
    return [
        {"name": data[i : i + 32].hex(), "size": int.from_bytes(data[i + 32 : i + 40], "big")}
        for i in range(0, len(data), 40)
    ]


def decrypt_item(archive, event, output=None):
    item_hex = event["item"]
    item = bytes.fromhex(item_hex)
    objects = event["objects"]
    k_meta = archive.unwrap(event["keys"]["meta"], item)
    k_content = archive.unwrap(event["keys"]["content"], item)
    meta = archive.open_part(archive.read_object(objects["meta"]["name"], objects["meta"]["size"]), "meta", item_hex, k_meta)
    content = archive.open_part(
        archive.read_object(objects["content"]["name"], objects["content"]["size"]), "content", item_hex, k_content
    )
    check(meta["v"] == 1 and content["v"] == 1, "part versions")
    check(meta["item"] == item_hex, "metadata names its item")
    check(content["size"] == meta["size"], "content and metadata sizes agree")
    check(content["padded_size"] == padme(meta["size"]), "padded_size = padme(size)")

    # The chunks the event names (inline or via the chunk list) equal the content part's chunks.
    named = objects["chunks"] if "chunks" in objects else chunk_list(archive, objects["chunk_list"])
    check(
        [(c["name"], c["size"]) for c in named] == [(c["object"], c["size"]) for c in content["chunks"]],
        "event chunk names equal content part chunk names",
    )
    chunk_size = content["chunk_size"]
    padded = content["padded_size"]
    check(len(content["chunks"]) == -(-padded // chunk_size), "chunk count = ceil(padded_size / chunk_size)")

    # Sections 9, 10, 13. The padding key comes from the recorded sha256 and size; the SHA-256 of the
    # plaintext is checked against that record below, so a wrong record cannot pass.
    recorded_sha = bytes.fromhex(meta["sha256"])
    check(len(recorded_sha) == 32, "metadata sha256 is 32 bytes")
    k_pad = padding_key(archive.convergence, recorded_sha, meta["size"])
    sha = hashlib.sha256()
    remaining = meta["size"]
    position = 0
    out = open(output + ".partial", "wb") if output else None
    try:
        for index, chunk in enumerate(content["chunks"]):
            key = b64(chunk["key"])
            check(len(key) == 32, "chunk key is 32 bytes")
            stored = archive.read_object(chunk["object"], chunk["size"])
            plaintext = aead_open(stored, b"custody/chunk/v1", bytes(24), key)
            check(len(plaintext) == min(chunk_size, padded - position), "chunk %d has its stream length" % index)
            check(
                blake2b_256(b"custody/chunk-key/v1\n" + plaintext, key=archive.convergence) == key,
                "chunk %d key is the convergent key of its plaintext" % index,
            )
            take = min(len(plaintext), remaining)
            if take < len(plaintext):
                check(
                    plaintext[take:] == chunk_padding(k_pad, index, len(plaintext) - take),
                    "chunk %d padding is the keystream of K_pad and nonce LE64(%d) || 0^16" % (index, index),
                )
            sha.update(plaintext[:take])
            if out:
                out.write(plaintext[:take])
            remaining -= take
            position += len(plaintext)
        check(remaining == 0 and position == padded, "chunks cover exactly padded_size bytes")
        digest = sha.digest()
        check(digest.hex() == meta["sha256"], "SHA-256 of the plaintext equals the metadata sha256")
        if out:
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        if out:
            out.close()
            os.unlink(output + ".partial")
        raise
    if out:
        out.close()
        os.rename(output + ".partial", output)

    # Section 16.
    r = b64(meta["commitment_nonce"])
    check(len(r) == 32, "commitment nonce is 32 bytes")
    commitment = hashlib.sha256(b"custody/commit/v1" + r + digest + meta["size"].to_bytes(8, "big")).hexdigest()
    check(commitment == event["commitment"], "evidence commitment opens")
    return meta


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive")
    parser.add_argument("item", nargs="?", help="item id or unique prefix (>= 8 hex); default: every item")
    parser.add_argument("-o", "--output", help="write the plaintext of ITEM here (must not exist)")
    parser.add_argument("--passphrase-file", help="read the passphrase from the first line of this file")
    args = parser.parse_args()

    if args.passphrase_file:
        raw = open(args.passphrase_file, "rb").read().split(b"\n", 1)[0]
        passphrase = raw[:-1] if raw.endswith(b"\r") else raw
    elif "CUSTODY_PASSPHRASE" in os.environ:
        passphrase = os.environb[b"CUSTODY_PASSPHRASE"]
    else:
        parser.error("set CUSTODY_PASSPHRASE or pass --passphrase-file")
    if args.output and not args.item:
        parser.error("-o needs an ITEM")
    if args.output and os.path.lexists(args.output):
        parser.error("%s already exists" % args.output)
    prefix = (args.item or "").lower()
    if args.item and not (8 <= len(prefix) <= 32 and all(c in "0123456789abcdef" for c in prefix)):
        parser.error("ITEM must be 8 to 32 hex characters")

    try:
        archive = Archive(args.archive)
        print("identity   fingerprint %s: self-signature, fingerprint and log verifier key OK" % archive.check_identity())
        preset = archive.unlock(passphrase)
        print("keys.json  opened (Argon2id preset %s); signing, box and log keys match archive.json" % preset)
        ingests = []
        entries = 0
        seen = set()
        for index, event in archive.events():
            entries += 1
            check(event.get("v") == 1, "event %d version" % index)
            if event["type"] == "ingest":
                check(event["item"] not in seen, "entry %d is not a replayed ingest of item %s" % (index, event["item"]))
                seen.add(event["item"])
                if event["item"].startswith(prefix):
                    ingests.append((index, event))
        print("journal    %d entries: frames, leaf hashes and signatures OK" % entries)
        if archive.torn:
            print("warning    the journal ends with %d bytes of an interrupted append at byte %d" % archive.torn[::-1])
        if args.item:
            check(len(ingests) == 1, "exactly one item matches %s (found %d)" % (prefix, len(ingests)))
        for index, event in ingests:
            meta = decrypt_item(archive, event, args.output)
            print(
                "item       %s  %s  %d B  sha256 %s: parts, chunks, padding, SHA-256 and commitment OK"
                % (event["item"], meta["name"], meta["size"], meta["sha256"])
            )
        if args.output:
            print("wrote      %s" % args.output)
        print("OK")
        return 0
    except CheckFailed as failure:
        print("FAILED: %s" % failure, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
