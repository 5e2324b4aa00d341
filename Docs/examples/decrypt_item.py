#!/usr/bin/env python3
"""Independent decryptor and checker for Custody archives, written from Docs/FORMAT.md and Docs/LEDGER.md.

It shares no code with Custody: only PyNaCl (libsodium) and the Python standard library.
Besides decrypting, it recomputes the keystream padding of every chunk from the convergence secret
(FORMAT.md section 9), which Custody itself never needs to do.

    CUSTODY_PASSPHRASE=... python3 decrypt_item.py ARCHIVE [ITEM] [-o OUTPUT] [--passphrase-file FILE] [--member NAME]

An archive with members (FORMAT.md section 4.1) is opened through the key file of the member named by --member or
$CUSTODY_MEMBER (exact display name), else of the only member; an archive without members through keys.json.
A field-staff member's (depositor) share opens nothing: that is refused with exit 1.

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


def is_hex(text, length):
    return isinstance(text, str) and len(text) == length and all(c in "0123456789abcdef" for c in text)


def member_id(signing_key, box_key):
    """Section 4.1: hex(SHA-256("custody/member/v1\\n" || signing_key || box_key)[0..8]), raw 32-byte keys."""
    return hashlib.sha256(b"custody/member/v1\n" + signing_key + box_key).digest()[:8].hex()


def canonical_signature(part):
    """LEDGER.md section 4: exactly 88 characters of standard base64 of 64 bytes, padded, unused bits zero."""
    try:
        text = part.decode("ascii")
        sig = base64.b64decode(text, validate=True) if len(text) == 88 else None
    except (UnicodeDecodeError, ValueError):
        return None
    return sig if sig is not None and len(sig) == 64 and base64.b64encode(sig).decode("ascii") == text else None


def split_entry(entry):
    """LEDGER.md section 4: (body, archive signature, member signature or None), or None when the entry is not
    of the form of a signed entry. After the first 0x0a: one canonical signature (88 bytes), or two joined by one
    0x0a (177 bytes); nothing else. Whether the second is there iff the body has `by` is checked once the body
    is parsed (after the archive signature): see signed_event."""
    newline = entry.find(b"\n")
    if newline < 0:
        return None
    body, tail = entry[:newline], entry[newline + 1 :]
    if len(tail) == 88:
        parts = [tail]
    elif len(tail) == 177 and tail[88:89] == b"\n":
        parts = [tail[:88], tail[89:]]
    else:
        return None
    sigs = [canonical_signature(p) for p in parts]
    if None in sigs:
        return None
    return body, sigs[0], (sigs[1] if len(sigs) == 2 else None)


def signed_event(entry, verify_key):
    """LEDGER.md section 4: (event, body, member signature or None) of an entry the archive signed, or None: the
    archive signature is checked over the exact body bytes before the JSON is parsed; then the member signature
    line must be there exactly when the body has `by`."""
    parts = split_entry(entry)
    if parts is None:
        return None
    body, signature, member_signature = parts
    try:
        verify_key.verify(b"custody/event/v1\n" + body, signature)
        event = json.loads(body)
    except (nacl.exceptions.BadSignatureError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(event, dict) or ("by" in event) != (member_signature is not None):
        return None
    return event, body, member_signature


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
        self.roles = {}
        self.member = None

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
    def unlock(self, passphrase, member=None):
        """Section 4 (keys.json) or 4.1 (a member's key file): rebuilds the keys the secrets give; returns a line
        saying what was opened. Field staff hold a depositor share, which opens nothing: refused here."""
        if self.has_members():
            return self.unlock_member(passphrase, member)
        check(member is None, "--member %s: this archive has no members (its secrets are in keys.json)" % member)
        kf = self.read_json("keys.json")
        check(kf["format"] == "custody-keys" and kf["version"] == 1, "keys.json format/version")
        sealed = self.open_sealed_file(kf, passphrase, 112, self.keyfile_ad(), "keys.json")
        self.adopt_complete(sealed)
        return "keys.json  opened (Argon2id preset %s); signing, box and log keys match archive.json" % kf["kdf"]["preset"]

    def keyfile_ad(self):
        return ("custody/keyfile/v1\n" + self.config["signing_key"] + "\n" + self.config["box_key"]).encode()

    @staticmethod
    def open_sealed_file(kf, passphrase, length, ad, what):
        """Argon2id, then XChaCha20-Poly1305 (sections 4, 4.1): the sealed secret bytes of a key file."""
        kdf = kf["kdf"]
        check(kdf["alg"] == "argon2id13", "%s uses argon2id13" % what)
        check(isinstance(kdf["opslimit"], int) and 1 <= kdf["opslimit"] <= 64, "%s opslimit is 1 to 64" % what)
        check(isinstance(kdf["memlimit"], int) and 8192 <= kdf["memlimit"] <= 4 << 30, "%s memlimit in range" % what)
        salt = b64(kdf["salt"])
        check(len(salt) == 16, "%s salt is 16 bytes" % what)
        nonce = b64(kf["nonce"])
        sealed = b64(kf["ciphertext"])
        check(len(nonce) == 24 and len(sealed) == length, "%s nonce/ciphertext lengths" % what)
        key = nacl.pwhash.argon2id.kdf(32, passphrase, salt, opslimit=kdf["opslimit"], memlimit=kdf["memlimit"])
        try:
            return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(sealed, ad, nonce, key)
        except nacl.exceptions.CryptoError:
            raise CheckFailed("%s does not open: wrong passphrase, or a key file not of this archive" % what)

    def adopt(self, seed, box_secret, convergence, log_seed):
        """The archive's keys, checked against archive.json (sections 4, 4.1, 5). box_secret and convergence are
        None for a depositor share."""
        signing = nacl.signing.SigningKey(seed)
        check(bytes(signing.verify_key) == self.signing_pk, "Ed25519 key from seed equals archive.json signing_key")
        self.signing = signing
        log = nacl.signing.SigningKey(log_seed)
        check(bytes(log.verify_key) == self.log_pk, "log key equals archive.json log_key")
        self.box = None
        self.retired = []
        if box_secret is not None:
            self.box = nacl.public.PrivateKey(box_secret)
            check(bytes(self.box.public_key) == self.box_pk, "X25519 key equals archive.json box_key")
        self.convergence = convergence

    def adopt_complete(self, secrets):
        master, seed, box_secret = secrets[0:32], secrets[32:64], secrets[64:96]
        self.adopt(seed, box_secret, kdf_derive(master, 1, b"cstdconv"), kdf_derive(master, 2, b"cstdlog_"))

    # Section 4.1 ---------------------------------------------------------------------------------
    def has_members(self):
        folder = os.path.join(self.root, "members")
        return os.path.isdir(folder) and any(n.endswith(".json") and not n.startswith(".") for n in os.listdir(folder))

    def member_files(self):
        """Every key file in members/, each checked for form: anything else there is damage, not skipped."""
        folder = os.path.join(self.root, "members")
        files = []
        for name in sorted(os.listdir(folder)):
            what = "members/" + name
            check(len(name) == 21 and name.endswith(".json") and is_hex(name[:16], 16), "%s is not a <16 hex>.json key file" % what)
            path = os.path.join(folder, name)
            check(os.path.isfile(path) and not os.path.islink(path), "%s is a regular file" % what)
            check(os.path.getsize(path) <= 64 << 10, "%s is at most 64 KiB" % what)
            with open(path, "rb") as f:
                kf = json.loads(f.read())
            check(isinstance(kf, dict) and kf.get("format") == "custody-member" and kf.get("version") == 1, "%s format/version" % what)
            m = kf.get("member")
            check(isinstance(m, dict) and all(isinstance(m.get(k), str) for k in ("box_key", "id", "name", "role", "signing_key")), "%s names its member" % what)
            check(m["id"] == name[:16], "%s: member.id is the file's name" % what)
            signing, box = b64(m["signing_key"]), b64(m["box_key"])
            check(len(signing) == 32 and len(box) == 32, "%s: key lengths" % what)
            check(member_id(signing, box) == m["id"], "%s: member id is the hash of its keys" % what)
            files.append(kf)
        return files

    def open_member_file(self, kf, passphrase):
        """Section 4.1: opens a key file (already checked for form) with its member's passphrase; returns
        (member, kind byte, secrets) and keeps the member's own signing key as self.member_signing."""
        m = kf["member"]
        what = "the key file of member %s (%s)" % (m["name"], m["id"])
        ad = ("custody/member-key/v1\n%s\n%s\n%s\n%s" % (self.config["origin"], m["id"], m["signing_key"], m["box_key"])).encode()
        personal = self.open_sealed_file(kf, passphrase, 80, ad, what)
        seed, box_secret = personal[0:32], personal[32:64]
        own_box = nacl.public.PrivateKey(box_secret)
        self.member_signing = nacl.signing.SigningKey(seed)
        check(bytes(self.member_signing.verify_key) == b64(m["signing_key"]), "%s: its seed gives its signing_key" % what)
        check(bytes(own_box.public_key) == b64(m["box_key"]), "%s: its X25519 secret gives its box_key" % what)
        try:
            share = nacl.public.SealedBox(own_box).decrypt(b64(kf["share"]))
        except nacl.exceptions.CryptoError:
            raise CheckFailed("%s: the share does not open with the member's own key" % what)
        check(len(share) >= 33, "%s: the share is too short" % what)
        check(share[:24] == b"custody/member-share/v1\n" and share[24:32] == bytes.fromhex(m["id"]), "%s: the share names its member" % what)
        return m, share[32:33], share[33:]

    def unlock_member(self, passphrase, name):
        files = self.member_files()
        if name is not None:
            chosen = [kf for kf in files if kf["member"]["name"] == name]
            check(chosen, "no key file in members/ is of a member named %r" % name)
        else:
            chosen = files
            check(len(chosen) == 1, "%d members have key files here: name one with --member NAME or CUSTODY_MEMBER" % len(chosen))
        kf = chosen[0]
        m, kind, secrets = self.open_member_file(kf, passphrase)
        what = "the key file of member %s (%s)" % (m["name"], m["id"])
        if kind == b"\x01":
            check(len(secrets) == 96, "%s: a complete share holds 96 bytes" % what)
            self.adopt_complete(secrets)
            held = "complete"
        elif kind == b"\x02":
            check(len(secrets) == 128, "%s: an opener share holds 128 bytes" % what)
            self.adopt(secrets[0:32], secrets[32:64], secrets[64:96], secrets[96:128])
            held = "opener"
        elif kind in (b"\x04", b"\x05"):
            # Section 4.3: after a key rotation, the share carries the log seed explicitly and the retired X25519
            # secrets (oldest first) after the first 128 bytes.
            check(len(secrets) > 128 and (len(secrets) - 128) % 32 == 0, "%s: a rotated share holds 128 + 32n bytes" % what)
            if kind == b"\x04":
                master, seed, box_secret, log_seed = secrets[0:32], secrets[32:64], secrets[64:96], secrets[96:128]
                self.adopt(seed, box_secret, kdf_derive(master, 1, b"cstdconv"), log_seed)
                held = "complete (rotated)"
            else:
                self.adopt(secrets[0:32], secrets[32:64], secrets[64:96], secrets[96:128])
                held = "opener (rotated)"
            self.retired = [nacl.public.PrivateKey(secrets[i : i + 32]) for i in range(128, len(secrets), 32)]
            retired_pks = [base64.b64encode(bytes(k.public_key)).decode() for k in self.retired]
            check(retired_pks == self.config.get("retired_box_keys"), "retired X25519 keys equal archive.json retired_box_keys")
        elif kind == b"\x03":
            check(len(secrets) == 64, "%s: a depositor share holds 64 bytes" % what)
            self.adopt(secrets[0:32], None, None, secrets[32:64])
            raise CheckFailed(
                "member %s holds a depositor share (field staff): it can add items but holds no key that opens "
                "them; decrypt as an investigator, records officer or administrator (--member NAME)" % m["name"]
            )
        else:
            raise CheckFailed("%s: the share is of an unknown kind %d" % (what, kind[0] if kind else -1))
        self.member = m
        return "member     %s (%s): key file and %s share opened (Argon2id preset %s); keys match archive.json" % (
            m["name"], m["id"], held, kf["kdf"].get("preset"))

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
        stored = data[offset + 8 + length : end]
        if stored == bytes(32):
            return "incomplete", None  # section 3: the hash is written last; an all-zero one is a torn write
        if hashlib.sha256(b"\x00" + entry).digest() != stored:
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
            signed = signed_event(entry, self.verify_key)
            check(signed is not None, "entry %d is not an event signed by the archive (LEDGER.md section 4)" % index)
            event = signed[0]
            self.track_roles(event)
            yield index, event
            offset += len(entry) + 40
            index += 1

    def track_roles(self, event):
        """Who holds which role, from the roster events (LEDGER.md section 18), so that an item added by field staff
        is known to have chunks keyed by that member's own convergence secret (section 4.1). Only for that: the
        roster's rules are Docs/examples/verify_roster.py's to check."""
        subject = event.get("subject")
        if not isinstance(subject, dict) or not isinstance(subject.get("id"), str):
            return
        if event.get("type") in ("member-add", "member-role", "recovery"):
            self.roles[subject["id"]] = subject.get("role")
        elif event.get("type") == "member-remove":
            self.roles.pop(subject["id"], None)

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
        opened = None
        # The box key, else a retired one (keys wrapped before a rotation, section 4.3).
        for key in [self.box] + self.retired[::-1]:
            try:
                opened = nacl.public.SealedBox(key).decrypt(sealed)
                break
            except nacl.exceptions.CryptoError:
                continue
        if opened is None:
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


def decrypt_item(archive, event, output=None, own_convergence=False):
    """Sections 7-16. own_convergence: the item was added by field staff, whose chunk keys and padding come from a
    convergence secret of their own (section 4.1) that no share holds: those two checks cannot be made."""
    item_hex = event["item"]
    item = bytes.fromhex(item_hex)
    objects = event["objects"]
    # The keys as last wrapped (a rewrap after a key rotation), else as the ingest event wrapped them: a holder of
    # only the secrets from before the rotation opens those (LEDGER.md section 19).
    wraps = [event["keys"]] + ([event["ingest_keys"]] if "ingest_keys" in event else [])
    for n, keys in enumerate(wraps):
        try:
            k_meta = archive.unwrap(keys["meta"], item)
            k_content = archive.unwrap(keys["content"], item)
            break
        except CheckFailed:
            if n == len(wraps) - 1:
                raise
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
    k_pad = None if own_convergence else padding_key(archive.convergence, recorded_sha, meta["size"])
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
                own_convergence or blake2b_256(b"custody/chunk-key/v1\n" + plaintext, key=archive.convergence) == key,
                "chunk %d key is the convergent key of its plaintext" % index,
            )
            take = min(len(plaintext), remaining)
            if take < len(plaintext) and k_pad is not None:
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


def read_passphrase(path):
    """FORMAT.md section 4: --passphrase-file, else CUSTODY_PASSPHRASE, else the terminal — only when there is one
    (standard input a tty): with none, fail rather than wait."""
    if path is not None:
        st = os.stat(path)
        check(st.st_mode & 0o077 == 0, "%s must not be readable by group or others (chmod 600)" % path)
        check(st.st_size <= 64 << 10, "%s is larger than 64 KiB" % path)
        with open(path, "rb") as f:
            raw = f.read(64 << 10).split(b"\n", 1)[0]
    elif "CUSTODY_PASSPHRASE" in os.environ:
        raw = os.environb[b"CUSTODY_PASSPHRASE"]
    elif sys.stdin.isatty():
        import getpass

        raw = getpass.getpass("Passphrase: ").encode()
    else:
        raise CheckFailed("no passphrase: set CUSTODY_PASSPHRASE or pass --passphrase-file (no terminal to ask)")
    passphrase = raw[:-1] if raw.endswith(b"\r") else raw
    check(0 < len(passphrase) <= 4096, "the passphrase must be 1 to 4096 bytes")
    return passphrase


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive")
    parser.add_argument("item", nargs="?", help="item id or unique prefix (>= 8 hex); default: every item")
    parser.add_argument("-o", "--output", help="write the plaintext of ITEM here (must not exist)")
    parser.add_argument("--passphrase-file", help="read the passphrase from the first line of this file")
    parser.add_argument("--member", help="act as this member (exact display name; default $CUSTODY_MEMBER, else the only one)")
    args = parser.parse_args()

    member = args.member if args.member else (os.environ.get("CUSTODY_MEMBER") or None)
    if args.output and not args.item:
        parser.error("-o needs an ITEM")
    if args.output and os.path.lexists(args.output):
        parser.error("%s already exists" % args.output)
    prefix = (args.item or "").lower()
    if args.item and not (8 <= len(prefix) <= 32 and all(c in "0123456789abcdef" for c in prefix)):
        parser.error("ITEM must be 8 to 32 hex characters")

    try:
        passphrase = read_passphrase(args.passphrase_file)
        archive = Archive(args.archive)
        print("identity   fingerprint %s: self-signature, fingerprint and log verifier key OK" % archive.check_identity())
        print(archive.unlock(passphrase, member))
        ingests = []
        entries = 0
        seen = set()
        rewraps = {}
        last_rotation = -1
        for index, event in archive.events():
            entries += 1
            check(event.get("v") == 1, "event %d version" % index)
            # LEDGER.md section 19: after a key rotation each item's keys are wrapped anew in a rewrap event, and
            # items ingested before it were keyed by an earlier convergence secret, which no share holds any more.
            if event["type"] == "key-rotation":
                last_rotation = index
            if event["type"] == "rewrap" and event.get("item") in seen and isinstance(event.get("keys"), dict):
                rewraps[event["item"]] = event["keys"]
            if event["type"] == "ingest":
                check(event["item"] not in seen, "entry %d is not a replayed ingest of item %s" % (index, event["item"]))
                seen.add(event["item"])
                if event["item"].startswith(prefix):
                    ingests.append((index, event, archive.roles.get(event.get("by")) == "field-staff"))
        print("journal    %d entries: frames, leaf hashes and signatures OK" % entries)
        if archive.torn:
            print("warning    the journal ends with %d bytes of an interrupted append at byte %d" % archive.torn[::-1])
        if args.item:
            check(len(ingests) == 1, "exactly one item matches %s (found %d)" % (prefix, len(ingests)))
        for index, event, own in ingests:
            if event["item"] in rewraps:
                event = dict(event, keys=rewraps[event["item"]], ingest_keys=event["keys"])
            own = own or index < last_rotation
            meta = decrypt_item(archive, event, args.output, own_convergence=own)
            checked = "parts, chunks, SHA-256 and commitment OK (added by field staff or before a key rotation: " \
                "chunk keys and padding use a convergence secret not held, not checked)" if own else "parts, chunks, padding, SHA-256 and commitment OK"
            print("item       %s  %s  %d B  sha256 %s: %s" % (event["item"], meta["name"], meta["size"], meta["sha256"], checked))
        if args.output:
            print("wrote      %s" % args.output)
        print("OK")
        return 0
    except CheckFailed as failure:
        print("FAILED: %s" % failure, file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError, TypeError) as error:
        print("FAILED: unusable input: %s" % error, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
