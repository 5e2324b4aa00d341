#!/usr/bin/env python3
"""Independent verifier and grantee-side decryptor of Custody share bundles, written from Docs/SHARING.md,
Docs/FORMAT.md and Docs/LEDGER.md. PyNaCl and the standard library only, plus the other example
decrypt_item.py (sealed parts and keys.json).

    python3 verify_bundle.py verify BUNDLE [--granter IDENTITY] [--witness IDENTITY]... [--at RFC3339] [--json]
    CUSTODY_PASSPHRASE=... python3 verify_bundle.py decrypt BUNDLE --archive GRANTEE_ARCHIVE -o DIR [--member NAME]

verify: every check of SHARING.md section 4, in one pass over the file, holding one record at a time (object
bytes are not kept). It prints each problem as "FAIL: <kind>: <detail>" (the problem kinds of section 4), or
"OK: ..."; with --json, a report shaped like `custody bundle verify --json`.
decrypt: verify, then open every item with the grantee's secret key (from its archive's keys.json, or the acting
member's key file, and passphrase) and check every SHA-256 and evidence commitment (SHARING.md section 5), writing each item's
plaintext to DIR/<item id>.
Exit 0 when every check passed, 1 when one failed, 2 for unusable input (not a bundle, a missing file, an
identity file that is not valid).
"""

import argparse
import base64
import binascii
import calendar
import hashlib
import json
import os
import re
import sys
import time
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nacl.exceptions  # noqa: E402
import nacl.signing  # noqa: E402

from decrypt_item import Archive, CheckFailed, aead_open, blake2b_256, check, padme, read_passphrase  # noqa: E402

MAGIC = b"custody-bundle/v1\n"
# SHARING.md section 3: the largest payload of each record type.
LIMITS = {
    b"I": 64 << 10, b"G": 64 << 20, b"P": 64 << 20, b"C": 64 << 10, b"E": 1 << 20, b"O": (256 << 20) + 32, b"Z": 1024,
}
ORDER = b"IGPCEOZ"
MANDATORY = {0, 1, 3, 6}  # I, G, C and Z exactly once; P, E and O any number
MAX_ANCESTORS = 8
MAX_ANCESTOR_BYTES = 128 << 20
MAX_ANNOTATIONS = 4096
MAX_ROSTER_EVENTS = 100_000
ROSTER_TYPES = ("member-add", "member-role", "member-remove", "recovery-split", "recovery")  # LEDGER.md 18.1
# SHARING.md section 2, "Form".
MAX_OBJECT = 256 << 20
MAX_ITEMS = 1_000_000
MAX_RELEASED = 1 << 50
MAX_TERMS = 64 << 10
MAX_NAME = 200
KINDS = ("grant", "submission", "anonymous-submission")
PERMISSIONS = ("content", "metadata")


class Unusable(Exception):
    """Not a bundle at all, or an unusable argument: exit 2."""


class Stop(Exception):
    """A problem that stops the check at once (recorded before raising)."""


# Encodings (FORMAT.md section 1) ---------------------------------------------------------------------------

def b64(text):
    """Standard base64 with padding, nothing else; None when it is not."""
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, binascii.Error, UnicodeEncodeError):
        return None


def signature_of(part):
    """The 64-byte signature of a signed grant or entry (LEDGER.md section 4): exactly its canonical base64, with
    padding and nothing after it; None otherwise."""
    try:
        text = part.decode("ascii")
    except UnicodeDecodeError:
        return None
    sig = b64(text) if len(text) == 88 else None
    return sig if sig is not None and len(sig) == 64 and base64.b64encode(sig).decode("ascii") == text else None


def is_hex(text, length):
    return isinstance(text, str) and len(text) == length and all(c in "0123456789abcdef" for c in text)


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)


def parse_time(text):
    """An RFC 3339 date-time (a Z or +hh:mm offset, an optional fraction, ignored) as Unix seconds, or None."""
    match = _TIME.fullmatch(text) if isinstance(text, str) else None
    if not match:
        return None
    y, mo, d, h, mi, s = (int(g) for g in match.groups()[:6])
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
        return None
    offset = 0
    if match.group(7):
        oh, om = int(match.group(8)), int(match.group(9))
        if oh >= 24 or om >= 60:
            return None
        offset = (oh * 60 + om) * 60 * (1 if match.group(7) == "+" else -1)
    try:
        seconds = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
        if tuple(time.gmtime(seconds)[:3]) != (y, mo, d):  # e.g. February 30
            return None
    except (ValueError, OverflowError):
        return None
    return seconds - offset


def format_time(seconds):
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
    except (ValueError, OverflowError, OSError):
        return str(seconds)


def escape(text):
    """Text from outside made safe for a terminal: controls, separators and format characters as \\u{XXXX}."""
    return "".join("\\u{%X}" % ord(c) if unsafe_character(c) and c != "\n" else c for c in text)


def unsafe_character(c):
    category = unicodedata.category(c)
    return category in ("Cc", "Zl", "Zp", "Cs") or (category == "Cf" and c not in "\u200c\u200d")


def is_display_name(text):
    """SHARING.md section 2: 1-200 bytes of UTF-8 in NFC, no control, separator or format character but ZWNJ/ZWJ."""
    if not isinstance(text, str) or not text:
        return False
    try:
        if len(text.encode("utf-8")) > MAX_NAME:
            return False
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return unicodedata.normalize("NFC", text) == text and not any(unsafe_character(c) for c in text)


def is_origin(text):
    return (
        isinstance(text, str) and 0 < len(text) <= 200
        and all(0x20 < ord(c) < 0x7F and c != "+" for c in text)
    )


def fingerprint(signing, box):
    """FORMAT.md section 6."""
    digest = hashlib.sha256(b"custody/fingerprint/v1\n" + signing + box).hexdigest()[:32]
    return "-".join(digest[i : i + 4] for i in range(0, 32, 4))


def key_id(name, key_type, public_key):
    """C2SP signed-note key id: SHA-256(name || 0x0A || type || key)[0:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([key_type]) + public_key).digest()[:4]


def verify_signature(public_key, message, signature):
    if public_key is None or signature is None or len(public_key) != 32:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
        return True
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError, TypeError):
        return False


# Identity (FORMAT.md section 6) ----------------------------------------------------------------------------

def parse_verifier_key(text):
    """`name+hex(key id)+base64(0x01 || key)`: (name, key), or None when malformed or its key id is wrong."""
    if not isinstance(text, str) or len(text.encode()) > 512:
        return None
    fields = text.split("+", 2)
    if len(fields) != 3 or not fields[0] or any(c.isspace() for c in fields[0]):
        return None
    if not re.fullmatch(r"[0-9a-fA-F]{8}", fields[1]):
        return None
    kid, key = bytes.fromhex(fields[1]), b64(fields[2])
    if len(kid) != 4 or key is None or len(key) != 33 or key[0] != 1:
        return None
    if key_id(fields[0], 1, key[1:]) != kid:
        return None
    return fields[0], key[1:]


def read_identity(data):
    """A valid identity (self-signature, fingerprint, log verifier key named by its origin), or None."""
    try:
        ident = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    text_fields = ("name", "origin", "signing_key", "box_key", "log_verifier_key", "fingerprint", "self_signature")
    if not isinstance(ident, dict) or not is_int(ident.get("version")) or not all(
        isinstance(ident.get(f), str) for f in text_fields
    ):
        return None
    if ident.get("log_origin") is not None and ident["log_origin"] != ident["origin"]:
        return None
    signing, box, signature = b64(ident["signing_key"]), b64(ident["box_key"]), b64(ident["self_signature"])
    if ident["version"] != 1 or signing is None or box is None or signature is None:
        return None
    if ident["fingerprint"] != fingerprint(signing, box):
        return None
    message = "custody/identity/v1\n%d\n%s\n%s\n%s\n%s\n%s\n%s\n" % (
        ident["version"], ident["name"], ident["origin"], ident["signing_key"], ident["box_key"],
        ident["log_verifier_key"], ident["fingerprint"],
    )
    if not verify_signature(signing, message.encode(), signature):
        return None
    log = parse_verifier_key(ident["log_verifier_key"])
    if log is None or log[0] != ident["origin"]:
        return None
    ident["_signing"], ident["_log"] = signing, log[1]
    return ident


def proved_box_keys(ident):
    """LEDGER.md section 19: the identity's own box key and, newest first, those its key transitions replaced --
    each transition a `key-rotation` entry signed by the identity's signing key and proved in a checkpoint signed
    by its log key."""
    steps = []
    transitions = ident.get("transitions") or []
    if not isinstance(transitions, list) or len(transitions) > 8:
        return [ident["box_key"]]
    for t in transitions:
        if not isinstance(t, dict) or t.get("format") != "custody-key-transition/v1":
            continue
        index, proof, note, entry = t.get("index"), t.get("proof"), t.get("checkpoint"), b64(t.get("entry") or "")
        if not is_int(index) or not isinstance(proof, list) or len(proof) > 64 or not isinstance(note, str):
            continue
        hashes = [b64(h) if isinstance(h, str) else None for h in proof]
        checkpoint = checkpoint_of(note, ident)
        if entry is None or len(entry) > 8192 or checkpoint is None or any(h is None or len(h) != 32 for h in hashes):
            continue
        size, root = checkpoint[0], checkpoint[1]
        leaf = hashlib.sha256(b"\x00" + entry).digest()
        if inclusion_root(index, size, leaf, hashes) != root:
            continue
        signed = event_of(entry, ident["_signing"])
        if signed is None:
            continue
        event = signed[0]
        new, old = event.get("box_key"), event.get("previous_box_key")
        if event.get("type") != "key-rotation" or event.get("actor") != ident["origin"]:
            continue
        if not isinstance(new, str) or not isinstance(old, str) or new == old:
            continue
        steps.append((index, old, new))
    keys, current = [ident["box_key"]], ident["box_key"]
    for _, old, new in sorted(steps, reverse=True):
        if new == current:
            keys.append(old)
            current = old
    return keys


def read_identity_file(path, what):
    try:
        with open(path, "rb") as f:
            data = f.read(64 << 10)
    except OSError as error:
        raise Unusable("cannot read the %s identity %s: %s" % (what, path, error.strerror))
    ident = read_identity(data)
    if ident is None or not is_origin(ident["origin"]):
        raise Unusable("%s is not a validly self-signed identity file" % path)
    return ident


# Checkpoints and cosignatures (LEDGER.md sections 9 and 12) -------------------------------------------------

def parse_note(note):
    """A C2SP signed note: (body ending in \\n, [(name, payload bytes)]), or None."""
    if len(note.encode()) > 1 << 20 or "\n\n" not in note:
        return None
    head, rest = note.split("\n\n", 1)
    if not rest.endswith("\n"):
        return None
    signatures = []
    for line in rest[:-1].split("\n"):
        if not line.startswith("\u2014 "):
            return None
        fields = line[2:].split(" ")
        payload = b64(fields[1]) if len(fields) == 2 else None
        if len(fields) != 2 or not fields[0] or payload is None or len(payload) < 4:
            return None
        signatures.append((fields[0], payload))
    return (head + "\n", signatures) if signatures else None


def checkpoint_of(note, identity):
    """(size, root, body, signatures) of a checkpoint of the identity's origin signed by its log key, or None."""
    parsed = parse_note(note)
    if parsed is None:
        return None
    body, signatures = parsed
    lines = body.split("\n")
    if len(lines) != 4 or lines[3] or lines[0] != identity["origin"]:
        return None
    if not re.fullmatch(r"0|[1-9][0-9]{0,18}", lines[1]) or int(lines[1]) >= 1 << 63:
        return None
    root = b64(lines[2])
    if root is None or len(root) != 32 or base64.b64encode(root).decode() != lines[2]:
        return None
    if not any(is_log_signature(name, payload, body, identity) for name, payload in signatures):
        return None
    return int(lines[1]), root, body, signatures


def is_log_signature(name, payload, body, identity):
    return (
        name == identity["origin"] and len(payload) == 68
        and payload[:4] == key_id(identity["origin"], 1, identity["_log"])
        and verify_signature(identity["_log"], body.encode(), payload[4:])
    )


def check_cosignatures(body, signatures, identity, witnesses):
    """SHARING.md section 4 step 4: each line other than the log's own, as {witness, status, time?}."""
    checks = []
    for name, payload in signatures:
        if is_log_signature(name, payload, body, identity):
            continue
        key = witnesses.get(name)
        if key is None:
            checks.append({"witness": name, "status": "invalid" if name == identity["origin"] else "unchecked"})
            continue
        valid = len(payload) == 76 and payload[:4] == key_id(name, 4, key)
        timestamp = int.from_bytes(payload[4:12], "big")
        message = ("cosignature/v1\ntime %d\n" % timestamp).encode() + body.encode()
        if valid and verify_signature(key, message, payload[12:]):
            checks.append({"witness": name, "status": "valid", "time": format_time(timestamp)})
        else:
            checks.append({"witness": name, "status": "invalid"})
    return checks


# Merkle inclusion (RFC 9162 section 2.1.3.2, LEDGER.md section 8) -----------------------------------------

def inclusion_root(index, size, leaf, proof):
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


# Grants (SHARING.md section 2) -----------------------------------------------------------------------------

def object_ref(value):
    """{name: 64 hex, size: 0...256 MiB} as (name, size), or None: the bound of every {name, size}."""
    if not isinstance(value, dict) or not is_hex(value.get("name"), 64):
        return None
    size = value.get("size")
    return (value["name"], size) if is_int(size) and 0 <= size <= MAX_OBJECT else None


def grant_shape_fault(grant):
    """What makes the body not a version 1 grant at all (fields and types), or None."""
    if not isinstance(grant, dict):
        return "its body is not a JSON object"
    if grant.get("v") != 1 or not is_int(grant.get("v")):
        return "it is not version 1"
    if grant.get("kind") not in KINDS or grant.get("permission") not in PERMISSIONS:
        return "its kind or permission is unknown"
    for field in ("id", "created", "expires", "terms_grantee", "terms_granter"):
        if not isinstance(grant.get(field), str):
            return "its %s is missing or not a string" % field
    if not isinstance(grant.get("reshare"), bool):
        return "its reshare flag is not a boolean"
    for role in ("granter", "grantee"):
        party = grant.get(role)
        if not isinstance(party, dict) or not all(
            isinstance(party.get(f), str) for f in ("name", "origin", "signing_key", "box_key", "fingerprint")
        ):
            return "its %s is not a party" % role
    parent = grant.get("parent")
    if parent is not None and not (
        isinstance(parent, dict) and isinstance(parent.get("id"), str) and isinstance(parent.get("hash"), str)
    ):
        return "its parent is not a grant reference"
    items = grant.get("items")
    if not isinstance(items, list):
        return "its items are not a list"
    for item in items:
        if not isinstance(item, dict) or not is_hex(item.get("id"), 32):
            return "an item has no item id"
        objects, keys = item.get("objects"), item.get("keys")
        if not isinstance(objects, list) or any(object_ref(o) is None for o in objects):
            return "item %s has an object that is not {name, size} within 0...%d" % (item["id"], MAX_OBJECT)
        if not isinstance(keys, dict) or not isinstance(keys.get("meta"), str):
            return "item %s has no wrapped keys" % item["id"]
        if keys.get("content") is not None and not isinstance(keys["content"], str):
            return "item %s has a content key that is not a string" % item["id"]
    return None


def party_fault(party):
    if not is_display_name(party["name"]) or not is_origin(party["origin"]):
        return "has a name or origin that breaks the naming rules (control or format characters, length)"
    signing, box = b64(party["signing_key"]), b64(party["box_key"])
    if signing is None or len(signing) != 32 or box is None or len(box) != 32:
        return "has malformed keys"
    if party["fingerprint"] != fingerprint(signing, box):
        return "has a fingerprint that is not its keys'"
    return None


def is_wrapped_key(text):
    key = b64(text)
    return key is not None and len(key) == 96


def grant_form_fault(grant):
    """SHARING.md section 2, "Form": what is wrong with a validly signed grant, or None."""
    if not is_hex(grant["id"], 32):
        return "its id is not 32 lowercase hex digits"
    start, end = parse_time(grant["created"]), parse_time(grant["expires"])
    if start is None or end is None or start > end:
        return "its created and expires times are not RFC 3339 times in order"
    for role in ("granter", "grantee"):
        fault = party_fault(grant[role])
        if fault:
            return "its %s %s" % (role, fault)
    parent = grant.get("parent")
    if parent is not None:
        if not is_hex(parent["id"], 32) or not is_hex(parent["hash"], 64):
            return "its parent reference is not a grant id and a SHA-256"
        if parent["id"] == grant["id"]:
            return "it names itself as its parent"
    items = grant["items"]
    if not 1 <= len(items) <= MAX_ITEMS or len({i["id"] for i in items}) != len(items):
        return "it names no item, more than %d, or one item twice" % MAX_ITEMS
    for item in items:
        names = [o["name"] for o in item["objects"]]
        if not names or len(set(names)) != len(names):
            return "item %s releases no object or one object twice" % item["id"]
        content = item["keys"].get("content")
        if not is_wrapped_key(item["keys"]["meta"]) or (content is not None and not is_wrapped_key(content)):
            return "item %s's wrapped keys are not 96 bytes" % item["id"]
        if (content is not None) != (grant["permission"] == "content"):
            return "item %s's content key does not match the permission" % item["id"]
    sizes = {}
    for item in items:
        for o in item["objects"]:
            if sizes.setdefault(o["name"], o["size"]) != o["size"]:
                return "it gives object %s two different sizes" % o["name"]
    total = sum(size for _, size in released_objects(grant))
    if total > MAX_RELEASED:
        return "its objects add up to more than %d bytes" % MAX_RELEASED
    for field in ("terms_grantee", "terms_granter"):
        if len(grant[field].encode()) > MAX_TERMS or b64(grant[field]) is None:
            return "its sealed terms are malformed"
    return None


def released_objects(grant):
    """Every object the grant releases, once, in the grant's order (first appearance): [(name, size)]."""
    seen, out = set(), []
    for item in grant["items"]:
        for o in item["objects"]:
            if o["name"] not in seen:
                seen.add(o["name"])
                out.append((o["name"], o["size"]))
    return out


def split_signed(payload):
    """A signed grant: (body, parsed JSON, signature bytes); the JSON is None when it does not parse."""
    body, newline, signature = payload.partition(b"\n")
    try:
        parsed = json.loads(body) if newline else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        parsed = None
    return body, parsed, signature_of(signature)


def signature_holds(body, grant, signature):
    key = b64(grant["granter"]["signing_key"])
    return key is not None and len(key) == 32 and verify_signature(key, b"custody/grant/v1\n" + body, signature)


def parse_ancestor(payload):
    """An ancestor grant: validly signed by the granter it names and of good form, or None."""
    body, grant, signature = split_signed(payload)
    if grant is None or grant_shape_fault(grant) or not signature_holds(body, grant, signature):
        return None
    return None if grant_form_fault(grant) else grant


# Events (LEDGER.md sections 4, 5) --------------------------------------------------------------------------

def event_of(entry, signing_key):
    """(event, body, member signature or None) of a ledger entry signed by the granter's key, or None (a bad
    signature or not an event)."""
    # LEDGER.md section 4: body, 0x0a, the archive's signature, and — exactly when the body names a member (`by`)
    # — 0x0a and that member's signature; nothing else. The member signature is the roster's to check (section 18).
    body, newline, tail = entry.partition(b"\n")
    if len(tail) == 88:
        parts = [tail]
    elif len(tail) == 177 and tail[88:89] == b"\n":
        parts = [tail[:88], tail[89:]]
    else:
        return None
    sigs = [signature_of(p) for p in parts]
    if None in sigs or not newline or not verify_signature(signing_key, b"custody/event/v1\n" + body, sigs[0]):
        return None
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(event, dict) or ("by" in event) != (len(sigs) == 2):
        return None
    return (event, body, sigs[1] if len(sigs) == 2 else None) if is_event(event) else None


def is_event(event):
    if not isinstance(event, dict) or not is_int(event.get("v")):
        return False
    if not all(isinstance(event.get(f), str) for f in ("type", "time", "actor")):
        return False
    if event.get("item") is not None and not is_hex(event["item"], 32):
        return False
    for field in ("annotation", "sealed"):
        if event.get(field) is not None and object_ref(event[field]) is None:
            return False
    for field in ("commitment", "requester", "served"):
        if event.get(field) is not None and not isinstance(event[field], str):
            return False
    grant = event.get("grant")
    if grant is not None and not (isinstance(grant, dict) and isinstance(grant.get("id"), str)
                                  and isinstance(grant.get("hash"), str)):
        return False
    keys = event.get("keys")
    if keys is not None and not (isinstance(keys, dict) and isinstance(keys.get("meta"), str)
                                 and (keys.get("content") is None or isinstance(keys["content"], str))):
        return False
    objects = event.get("objects")
    if objects is not None:
        if not isinstance(objects, dict) or object_ref(objects.get("meta")) is None:
            return False
        for field in ("content", "chunk_list"):
            if objects.get(field) is not None and object_ref(objects[field]) is None:
                return False
        chunks = objects.get("chunks")
        if chunks is not None and (not isinstance(chunks, list) or any(object_ref(c) is None for c in chunks)):
            return False
    return True


def core_objects(origin, permission):
    """SHARING.md section 4 step 8: the objects of an item's ingest (or import) event its grant releases first."""
    objects = origin["objects"]
    if permission != "content" or objects.get("content") is None:
        return [object_ref(objects["meta"])]
    core = [object_ref(objects["meta"]), object_ref(objects["content"])]
    if objects.get("chunk_list") is not None:
        core.append(object_ref(objects["chunk_list"]))
    seen = {name for name, _ in core}
    for chunk in objects.get("chunks") or []:
        if chunk["name"] not in seen:
            seen.add(chunk["name"])
            core.append(object_ref(chunk))
    return core


def distinct_chunks(chunk_list):
    """The distinct chunk names of a chunk-list object (FORMAT.md section 15) in stream order, or None."""
    if len(chunk_list) % 40:
        return None
    seen, out = set(), []
    for i in range(0, len(chunk_list), 40):
        if chunk_list[i + 32] & 0x80:  # a size that is not a non-negative 64-bit integer
            return None
        name = chunk_list[i : i + 32].hex()
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


# The records (SHARING.md section 3) ------------------------------------------------------------------------

def records(f, report):
    """Yields (type, payload, offset); checks the order, limits and the end record (each failure stops)."""
    digest = hashlib.sha256(MAGIC)
    count, stage, offset = 0, -1, len(MAGIC)
    while True:
        header = f.read(9)
        if not header:
            report.stop("bundle-damaged", "the bundle has no end record (it was cut short)")
        if len(header) < 9:
            report.stop("bundle-damaged", "the bundle is truncated (it ends inside the record at byte %d)" % offset)
        kind, length = header[:1], int.from_bytes(header[1:], "big")
        if kind not in LIMITS:
            report.stop(
                "bundle-damaged", "the bundle holds an unknown record type 0x%02x at byte %d" % (kind[0], offset)
            )
        if length > LIMITS[kind]:
            report.stop(
                "bundle-damaged",
                "a %s record at byte %d claims %d bytes, over its limit" % (kind.decode(), offset, length),
            )
        payload = f.read(length)
        if len(payload) < length:
            report.stop("bundle-damaged", "the bundle is truncated (it ends inside the record at byte %d)" % offset)
        position = ORDER.index(kind)
        if position == stage:
            in_order = position not in MANDATORY
        else:
            in_order = position > stage and not any(stage < m < position for m in MANDATORY)
        if not in_order:
            report.stop(
                "bundle-damaged",
                "the %s record at byte %d is out of order or missing its predecessors" % (kind.decode(), offset),
            )
        if kind == b"Z":
            try:
                end = json.loads(payload)
            except (ValueError, UnicodeDecodeError, RecursionError):
                end = None
            if not isinstance(end, dict) or end.get("records") != count or end.get("sha256") != digest.hexdigest():
                report.stop(
                    "bundle-damaged",
                    "the end record does not match the %d records (bytes were changed, removed or reordered)" % count,
                )
            if f.read(1):
                report.stop("bundle-damaged", "the bundle has bytes after its end record")
            yield kind, payload, offset
            return
        digest.update(header)
        digest.update(payload)
        count += 1
        stage = position
        yield kind, payload, offset
        offset += 9 + length


class Report:
    def __init__(self, at):
        self.problems, self.cosignatures = [], []
        self.checked_at = at
        self.fields = {"grant": None, "granter": None, "grantee": None, "items": 0, "objects": 0,
                       "permission": None, "expires": None}
        self.integrity_ok = self.valid_now = self.granter_trusted = False
        self.granter_given = False

    def problem(self, kind, detail, **where):
        self.problems.append(dict({"kind": kind, "detail": detail}, **where))

    def stop(self, kind, detail, **where):
        self.problem(kind, detail, **where)
        raise Stop()

    @property
    def ok(self):
        return self.integrity_ok and self.valid_now and (self.granter_trusted or not self.granter_given)

    def as_json(self):
        out = {"ok": self.ok, "integrity_ok": self.integrity_ok, "valid_now": self.valid_now,
               "granter_trusted": self.granter_trusted}
        out.update(self.fields)
        out.update({"checked_at": format_time(self.checked_at), "cosignatures": self.cosignatures,
                    "problems": self.problems})
        return out


class Verifier:
    """SHARING.md section 4, one record at a time."""

    def __init__(self, report, witnesses, keep_objects):
        self.r = report
        self.witnesses = witnesses  # origin -> signing key
        self.keep = keep_objects
        self.identity = self.grant = self.signed_grant = None
        self.size = self.root = None
        self.expected_parent = None
        self.ancestors, self.ancestor_bytes = [], 0
        self.granted = set()
        self.origins, self.tails = {}, {}  # item -> its first ingest/import event; item -> [(name, size)]
        self.grant_logged = False
        self.roster_events, self.grant_event = [], None  # [(index, event, body, member signature)]
        self.last_index = -1
        self.released, self.sizes, self.position = [], {}, {}
        self.next_object = 0
        self.seen, self.objects = set(), {}
        self.chunk_checks = None  # chunk-list name -> [(item, released chunk names)], made at the first O
        self.stage = -1

    def record(self, kind, payload, offset):
        position = ORDER.index(kind)
        if position > 2 and self.stage <= 2 and self.expected_parent is not None:
            self.r.stop("parent-missing", "the bundle lacks the parent grant %s" % self.expected_parent["id"])
        self.stage = position
        getattr(self, "on_" + kind.decode())(payload, offset)

    def on_I(self, payload, offset):
        self.identity = read_identity(payload)
        if self.identity is None:
            self.r.stop("identity-invalid", "the granter's identity in the bundle is not validly self-signed")
        self.r.fields["granter"] = "%s (%s)" % (self.identity["name"], self.identity["fingerprint"])

    def on_G(self, payload, offset):
        body, grant, signature = split_signed(payload)
        fault = "it is not a signed body" if grant is None else grant_shape_fault(grant)
        if fault:
            self.r.stop("grant-malformed", "the grant is malformed: " + fault)
        if not signature_holds(body, grant, signature):
            self.r.stop("grant-signature", "the grant's signature does not verify with the granter key it names")
        # A grant made before the granter rotated its box key names a key its identity's transitions retired.
        if grant["granter"]["signing_key"] != self.identity["signing_key"] or (
            grant["granter"]["box_key"] not in proved_box_keys(self.identity)
        ):
            self.r.stop("granter-mismatch", "the grant names another granter than the bundle's identity")
        fault = grant_form_fault(grant)
        if fault:
            self.r.stop("grant-malformed", "the grant is malformed: " + fault)
        self.grant, self.signed_grant = grant, payload
        self.expected_parent = grant.get("parent")
        self.granted = {i["id"] for i in grant["items"]}
        self.released = released_objects(grant)
        self.position = {name: i for i, (name, _) in enumerate(self.released)}
        for item in grant["items"]:
            for o in item["objects"]:
                self.sizes.setdefault(o["name"], set()).add(o["size"])
        self.r.fields.update({
            "grant": grant["id"], "grantee": "%s (%s)" % (grant["grantee"]["name"], grant["grantee"]["fingerprint"]),
            "items": len(grant["items"]), "permission": grant["permission"], "expires": grant["expires"],
        })

    def on_P(self, payload, offset):
        reference = self.expected_parent
        if reference is None:
            self.r.stop(
                "reshare-invalid",
                "the P record at byte %d is not on the grant's parent chain (the chain has ended)" % offset,
            )
        self.ancestor_bytes += len(payload)
        if len(self.ancestors) >= MAX_ANCESTORS or self.ancestor_bytes > MAX_ANCESTOR_BYTES:
            self.r.stop(
                "reshare-invalid",
                "the re-share chain is longer than %d grants or %d MiB" % (MAX_ANCESTORS, MAX_ANCESTOR_BYTES >> 20),
            )
        if hashlib.sha256(payload).hexdigest() != reference["hash"]:
            self.r.stop(
                "parent-missing",
                "the P record at byte %d is not the parent grant %s (its hash differs)" % (offset, reference["id"]),
            )
        parent = parse_ancestor(payload)
        if parent is None or parent["id"] != reference["id"]:
            self.r.stop("grant-signature", "the ancestor grant %s is malformed or not validly signed" % reference["id"])
        self.ancestors.append(parent)
        self.expected_parent = parent.get("parent")

    def on_C(self, payload, offset):
        try:
            note = payload.decode("utf-8")
        except UnicodeDecodeError:
            note = None
        checkpoint = checkpoint_of(note, self.identity) if note is not None else None
        if checkpoint is None:
            self.r.stop("checkpoint-invalid", "the checkpoint is not signed by the granter's log key")
        self.size, self.root, body, signatures = checkpoint
        self.r.cosignatures = check_cosignatures(body, signatures, self.identity, self.witnesses)
        for bad in self.r.cosignatures:
            if bad["status"] == "invalid":
                self.r.problem(
                    "cosignature-invalid",
                    "the checkpoint's cosignature by %s does not verify with that witness's key" % bad["witness"],
                )

    def on_E(self, payload, offset):
        try:
            record = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError):
            record = None
        entry = b64(record.get("entry")) if isinstance(record, dict) else None
        proof = record.get("proof") if isinstance(record, dict) else None
        if entry is None or not is_int(record.get("index")) or not isinstance(proof, list) or len(proof) > 64 \
                or not all(isinstance(p, str) for p in proof):
            return self.r.problem("entry-invalid", "the ledger entry record at byte %d is malformed" % offset)
        index = record["index"]
        if index <= self.last_index:
            return self.r.problem("entry-invalid", "ledger entry %d is out of order or repeated" % index, entry=index)
        self.last_index = index
        hashes = [b64(p) for p in proof]
        leaf = hashlib.sha256(b"\x00" + entry).digest()
        if None in hashes or inclusion_root(index, self.size, leaf, hashes) != self.root:
            return self.r.problem(
                "proof-invalid",
                "ledger entry %d is not proved to be in the granter's signed log of size %d" % (index, self.size),
                entry=index,
            )
        signed = event_of(entry, self.identity["_signing"])
        if signed is None:
            return self.r.problem(
                "entry-invalid", "ledger entry %d is not an event signed by the granter" % index, entry=index
            )
        event = signed[0]
        if event["type"] in ROSTER_TYPES:
            # Step 6: the granter's roster events before the grant, replayed once the grant event is known.
            if len(self.roster_events) >= MAX_ROSTER_EVENTS:
                return self.r.problem("entry-invalid", "the bundle proves more than %d roster events" % MAX_ROSTER_EVENTS)
            self.roster_events.append((index,) + signed)
            return
        reference = (self.grant["id"], hashlib.sha256(self.signed_grant).hexdigest())
        named = event.get("grant")
        if event["type"] == "grant" and isinstance(named, dict) and (named["id"], named["hash"]) == reference:
            self.grant_logged = True
            self.grant_event = (index,) + signed
            return
        item = event.get("item")
        if item not in self.granted:
            return  # only the events of the grant's items are kept: memory stays bounded by the grant
        if event["type"] in ("ingest", "import"):
            self.origins.setdefault(item, event)
        elif event["type"] in ("tag", "note") and event.get("annotation") is not None:
            tail = self.tails.setdefault(item, [])
            if len(tail) >= MAX_ANNOTATIONS:
                return self.r.problem(
                    "entry-invalid",
                    "the bundle proves more than %d annotations of one item" % MAX_ANNOTATIONS,
                    item=item,
                    entry=index,
                )
            tail.append(object_ref(event["annotation"]))

    def on_O(self, payload, offset):
        self.r.fields["objects"] += 1
        if len(payload) < 32:
            return self.r.problem("bundle-damaged", "the object record at byte %d is too short" % offset)
        name, data = payload[:32].hex(), payload[32:]
        if self.chunk_checks is None:
            self.chunk_checks = self.chunk_list_layouts()
        # In the grant's order (section 3): each O is a released object after the one before it.
        position = self.position.get(name)
        if position is not None and position >= self.next_object:
            self.next_object = position + 1
        elif position is not None and name not in self.seen:
            self.r.problem(
                "object-order",
                "the object record at byte %d is not the next object the grant releases" % offset,
                object=name,
            )
        if name not in self.sizes:
            return self.r.problem(
                "object-unreferenced", "the bundle holds an object the grant does not release", object=name
            )
        if name in self.seen:
            return self.r.problem("object-duplicate", "the object appears twice", object=name)
        self.seen.add(name)
        if self.sizes[name] != {len(data)}:
            return self.r.problem(
                "object-corrupt",
                "the object is %d bytes, the grant says %s" % (len(data), sorted(self.sizes[name])),
                object=name,
            )
        if blake2b_256(data).hex() != name:
            return self.r.problem("object-corrupt", "the object's bytes do not hash to its name", object=name)
        for item, chunks in self.chunk_checks.get(name, []):
            if distinct_chunks(data) != chunks:
                self.r.problem(
                    "scope-mismatch",
                    "the item's released chunks are not its chunk list's distinct chunks in order",
                    item=item,
                    object=name,
                )
        if self.keep:
            self.objects[name] = data

    def on_Z(self, payload, offset):
        pass

    def layout(self, item):
        """The item's (core, chunked, tail) by its proved events (section 4 step 8)."""
        origin = self.origins[item["id"]]
        core = core_objects(origin, self.grant["permission"])
        chunked = self.grant["permission"] == "content" and origin["objects"].get("chunk_list") is not None
        return core, chunked, self.tails.get(item["id"], [])

    def chunk_list_layouts(self):
        checks = {}
        for item in self.grant["items"]:
            origin = self.origins.get(item["id"])
            if origin is None or origin.get("objects") is None:
                continue
            core, chunked, tail = self.layout(item)
            objects = item["objects"]
            if chunked and len(objects) >= len(core) + len(tail):
                middle = [o["name"] for o in objects[len(core) : len(objects) - len(tail)]]
                checks.setdefault(origin["objects"]["chunk_list"]["name"], []).append((item["id"], middle))
        return checks

    def check_granting_member(self):
        """Step 6, who granted: when the grant event names a member, replay the roster events before it by the
        rules of LEDGER.md section 18.2 (each must apply, and exactly `roster` of them), then check the grant
        event by rule 3 there."""
        if self.grant_event is None or "by" not in self.grant_event[1]:
            return
        from verify_roster import Refused, Roster  # here: verify_roster imports this module

        index, event, body, member_signature = self.grant_event
        roster = Roster(self.identity["origin"])
        for position, roster_event, roster_body, roster_signature in self.roster_events:
            if position >= index:
                break
            try:
                roster.apply(position, roster_event, roster_body, roster_signature)
            except Refused as refused:
                return self.r.problem(
                    "grant-member-unproven",
                    "the granter's roster event %d does not apply: %s" % (position, refused.detail),
                    entry=position,
                )
        if event.get("roster") != roster.version:
            return self.r.problem(
                "grant-member-unproven",
                "the grant event names roster version %r, but the bundle proves %d roster events before it: the "
                "granting member cannot be checked" % (event.get("roster"), roster.version),
                entry=index,
            )
        try:
            roster.check_event(index, event, body, member_signature)
        except Refused as refused:
            return self.r.problem(refused.kind, "the grant: %s" % refused.detail, entry=index)
        member = roster.current(event["by"])
        self.r.fields["granted_by"] = {"id": member["id"], "name": member["name"], "role": member["role"]}

    def finish(self, time_checked, expected):
        grant = self.grant
        # A re-share's chain: each link never wider or longer, and never substituting.
        child = grant
        for depth, parent in enumerate(self.ancestors):
            faults = []
            if not parent["reshare"]:
                faults.append("the parent does not allow re-sharing")
            if (parent["grantee"]["signing_key"], parent["grantee"]["box_key"]) != (
                child["granter"]["signing_key"], child["granter"]["box_key"]
            ):
                faults.append("the parent was not granted to this granter")
            if parse_time(child["expires"]) > parse_time(parent["expires"]):
                faults.append("it outlasts the parent")
            if parent["permission"] == "metadata" and child["permission"] != "metadata":
                faults.append("it gives content the parent does not")
            allowed = {}
            for item in parent["items"]:
                allowed.setdefault(item["id"], {object_ref(o) for o in item["objects"]})
            if any(item["id"] not in allowed for item in child["items"]):
                faults.append("it names items the parent does not")
            for item in child["items"]:
                if item["id"] not in allowed:
                    continue
                own = set(self.tails.get(item["id"], [])) if depth == 0 else set()
                origin = self.origins.get(item["id"])
                core = set(core_objects(origin, grant["permission"])) if origin and origin.get("objects") else set()
                extra = {object_ref(o) for o in item["objects"]} - allowed[item["id"]] - own
                if extra or not core <= allowed[item["id"]]:
                    faults.append("it releases objects for item %s that the parent did not release" % item["id"])
                    break
            if faults:
                self.r.problem(
                    "reshare-invalid",
                    "grant %s is not a valid re-share of %s: %s" % (child["id"], parent["id"], "; ".join(faults)),
                )
            child = parent
        if not self.grant_logged:
            self.r.problem("grant-unlogged", "the bundle does not prove that the grant is in the granter's log")
        self.check_granting_member()
        for name, _ in sorted(self.released):
            if name not in self.seen:
                self.r.problem("object-missing", "an object the grant releases is not in the bundle", object=name)
        for item in grant["items"]:
            origin = self.origins.get(item["id"])
            if origin is None or origin.get("objects") is None:
                self.r.problem(
                    "item-unproven", "no ingest event of the item is proved in the granter's log", item=item["id"]
                )
                continue
            core, chunked, tail = self.layout(item)
            objects = [object_ref(o) for o in item["objects"]]
            n, c, t = len(objects), len(core), len(tail)
            if n < c + t or objects[:c] != core or objects[n - t :] != tail or (not chunked and n != c + t):
                self.r.problem(
                    "scope-mismatch",
                    "the grant's objects for the item are not its signed events' objects in the documented order",
                    item=item["id"],
                )
        self.r.integrity_ok = not self.r.problems
        self.r.valid_now = parse_time(grant["created"]) <= time_checked < parse_time(grant["expires"])
        if not self.r.valid_now:
            self.r.problem(
                "grant-not-valid",
                "the grant is valid from %s until %s, not at %s"
                % (grant["created"], grant["expires"], format_time(time_checked)),
            )
        if expected is not None:
            self.r.granter_given = True
            keys = ("signing_key", "box_key", "log_verifier_key")
            self.r.granter_trusted = all(expected[k] == self.identity[k] for k in keys)
            if not self.r.granter_trusted:
                self.r.problem(
                    "granter-untrusted",
                    "the bundle's granter (%s) is not the given identity (%s)"
                    % (self.identity["fingerprint"], expected["fingerprint"]),
                )


def verify(path, granter=None, witnesses=None, at=None, keep_objects=False):
    """Section 4. Returns (report, verifier): the verifier holds the grant, events and (kept) objects."""
    at = int(time.time()) if at is None else at
    report = Report(at)
    verifier = Verifier(report, witnesses or {}, keep_objects)
    try:
        f = open(path, "rb")
    except OSError as error:
        raise Unusable("cannot read %s: %s" % (path, error.strerror))
    with f:
        if f.read(len(MAGIC)) != MAGIC:
            raise Unusable('%s is not a Custody bundle (it does not start with "custody-bundle/v1")' % path)
        try:
            for kind, payload, offset in records(f, report):
                verifier.record(kind, payload, offset)
        except Stop:
            return report, verifier
    verifier.finish(at, granter)
    return report, verifier


def decrypt(path, archive_root, passphrase, outdir, member=None):
    """Section 5, as the grantee."""
    report, v = verify(path, keep_objects=True)
    if not report.ok:
        raise CheckFailed(
            "the bundle does not verify: %s" % "; ".join("%s: %s" % (p["kind"], p["detail"]) for p in report.problems)
        )
    grant, origins, objects = v.grant, v.origins, v.objects
    grantee = Archive(archive_root)
    grantee.unlock(passphrase, member)  # keys.json, or the acting member's key file (FORMAT.md section 4.1)
    check(grant["grantee"]["box_key"] == base64.b64encode(grantee.box_pk).decode(), "the bundle is for this archive")
    os.makedirs(outdir, exist_ok=True)
    for item in grant["items"]:
        item_hex, event = item["id"], origins[item["id"]]
        k_meta = grantee.unwrap(item["keys"]["meta"], bytes.fromhex(item_hex))
        meta = Archive.open_part(objects[event["objects"]["meta"]["name"]], "meta", item_hex, k_meta)
        check(meta["item"] == item_hex, "metadata names its item")
        if grant["permission"] != "content":
            print("%s  %s  (metadata only)" % (item_hex, escape(meta["name"])))
            continue
        k_content = grantee.unwrap(item["keys"]["content"], bytes.fromhex(item_hex))
        content = Archive.open_part(objects[event["objects"]["content"]["name"]], "content", item_hex, k_content)
        check(content["padded_size"] == padme(meta["size"]), "padded size")
        sha, remaining = hashlib.sha256(), meta["size"]
        with open(os.path.join(outdir, item_hex), "wb") as out:
            for chunk in content["chunks"]:
                check(chunk["object"] in objects, "chunk %s is released" % chunk["object"][:16])
                plaintext = aead_open(
                    objects[chunk["object"]], b"custody/chunk/v1", bytes(24), base64.b64decode(chunk["key"])
                )
                take = min(len(plaintext), remaining)
                sha.update(plaintext[:take])
                out.write(plaintext[:take])
                remaining -= take
        check(remaining == 0 and sha.hexdigest() == meta["sha256"], "item %s decrypts to its SHA-256" % item_hex)
        r = base64.b64decode(meta["commitment_nonce"])
        opened = b"custody/commit/v1" + r + sha.digest() + meta["size"].to_bytes(8, "big")
        commitment = hashlib.sha256(opened).hexdigest()
        check(commitment == event["commitment"], "item %s opens the granter's evidence commitment" % item_hex)
        print("%s  %s  %d bytes  sha256 %s" % (item_hex, escape(meta["name"]), meta["size"], meta["sha256"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    v = sub.add_parser("verify")
    v.add_argument("bundle")
    v.add_argument("--granter", help="the granter's identity file, obtained independently: a mismatch fails")
    v.add_argument("--witness", action="append", default=[], help="a witness's identity file (repeatable)")
    v.add_argument("--at", help="check validity at this RFC 3339 time instead of now")
    v.add_argument("--json", action="store_true")
    d = sub.add_parser("decrypt")
    d.add_argument("bundle")
    d.add_argument("--archive", required=True)
    d.add_argument("-o", "--output", required=True)
    d.add_argument("--passphrase-file")
    d.add_argument("--member", help="the grantee archive's member who acts (default $CUSTODY_MEMBER, else the only one)")
    args = parser.parse_args()
    try:
        if args.mode == "verify":
            at = None
            if args.at:
                at = parse_time(args.at)
                if at is None:
                    raise Unusable("--at %s is not an RFC 3339 time" % args.at)
            granter = read_identity_file(args.granter, "granter") if args.granter else None
            witnesses = {}
            for path in args.witness:
                ident = read_identity_file(path, "witness")
                witnesses[ident["origin"]] = ident["_signing"]
            report, _ = verify(args.bundle, granter, witnesses, at)
            if args.json:
                print(json.dumps(report.as_json(), indent=2, sort_keys=True))
            else:
                for c in report.cosignatures:
                    when = " at " + c["time"] if "time" in c else ""
                    print(escape("cosigned by %s: %s%s" % (c["witness"], c["status"], when)))
                for p in report.problems:
                    print(escape("FAIL: %s: %s" % (p["kind"], p["detail"])))
                if report.ok:
                    f = report.fields
                    unchecked = "" if granter else " (granter NOT CHECKED: no --granter)"
                    print("OK: grant %s, %d items, %d objects%s" % (f["grant"], f["items"], f["objects"], unchecked))
            sys.exit(0 if report.ok else 1)
        passphrase = read_passphrase(args.passphrase_file)  # FORMAT.md section 4; never waits without a terminal
        member = args.member if args.member else (os.environ.get("CUSTODY_MEMBER") or None)
        decrypt(args.bundle, args.archive, passphrase, args.output, member)
        print("OK: every item decrypted and matched its SHA-256 and commitment")
    except (CheckFailed, nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError) as failure:
        print(escape("FAIL: %s" % failure))
        sys.exit(1)
    except Unusable as error:
        print(escape("unusable input: %s" % error), file=sys.stderr)
        sys.exit(2)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        print(escape("unusable input: %s" % error), file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
