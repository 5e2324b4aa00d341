#!/usr/bin/env python3
"""Check a Custody custody proof as an outside auditor: no Custody code, no archive access, no keys but
the body's public identity file. Written from Docs/LEDGER.md alone; needs PyNaCl for Ed25519.

Inclusion (an item's ingest event is in the log the body signed):

    custody prove ITEM > proof.txt                 # at the archive
    custody log --json > log.json                  # at the archive (or just the one entry)
    python3 verify_proof.py inclusion --identity body.id --proof proof.txt --log log.json

Consistency (the log only grew between an old checkpoint and the current one):

    python3 verify_proof.py consistency --identity body.id --old old-checkpoint.txt --request req.txt

where req.txt is the output of `custody prove --consistency OLD-SIZE`.

Whole log (every entry signed, all of them hashing to the signed root; an item's history listed):

    custody checkpoint > checkpoint.txt
    python3 verify_proof.py log --identity body.id --checkpoint checkpoint.txt --log log.json [--item ID]

Exit 0 when everything checks,
1 when something does not (the reason is printed), 2 on unusable input.
"""

import argparse
import base64
import hashlib
import json
import sys

try:
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey
except ImportError:  # pragma: no cover
    sys.exit("verify_proof.py needs PyNaCl: pip install pynacl")


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def unusable(message):
    print("unusable input: " + message, file=sys.stderr)
    sys.exit(2)


def canonical_signature(part):
    """LEDGER.md section 4: exactly 88 characters, the standard padded base64 of 64 bytes with its unused bits
    zero; None otherwise."""
    try:
        text = part.decode("ascii")
        sig = base64.b64decode(text, validate=True) if len(text) == 88 else None
    except (UnicodeDecodeError, ValueError):
        return None
    return sig if sig is not None and len(sig) == 64 and base64.b64encode(sig).decode("ascii") == text else None


def signed_event(entry, signing_key, index):
    """LEDGER.md section 4: the event of an entry signed by the archive's signing key, or FAIL.

    entry = body 0x0a signature [0x0a member-signature]: split at the first 0x0a; what follows is one canonical
    88-byte signature, or two joined by one 0x0a (177 bytes), nothing else. The archive signature is checked over
    the exact body bytes before the body is parsed; then the member signature line must be present exactly when
    the body has `by`. Which member's key made it, and whether their role allowed the event, is the roster's
    question (LEDGER.md section 18; Docs/examples/verify_roster.py), not this script's."""
    body, newline, tail = entry.partition(b"\n")
    if len(tail) == 88:
        parts = [tail]
    elif len(tail) == 177 and tail[88:89] == b"\n":
        parts = [tail[:88], tail[89:]]
    else:
        parts = []
    sigs = [canonical_signature(p) for p in parts]
    if not newline or not sigs or None in sigs:
        fail("entry %d is not a signed entry: its signature lines are not of the form LEDGER.md section 4 gives" % index)
    try:
        VerifyKey(signing_key).verify(b"custody/event/v1\n" + body, sigs[0])
    except BadSignatureError:
        fail("entry %d is not signed by the body's signing key" % index)
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        fail("entry %d is signed but its body is not JSON" % index)
    if not isinstance(event, dict):
        fail("entry %d is signed but its body is not an event" % index)
    if ("by" in event) != (len(sigs) == 2):
        fail("entry %d has a member signature line exactly when its body has no `by`" % index)
    return event


def leaf_hash(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def read_identity(path):
    with open(path, "rb") as f:
        identity = json.load(f)
    name, key_id, key = identity["log_verifier_key"].split("+", 2)
    key = base64.b64decode(key, validate=True)
    if key[0] != 0x01 or len(key) != 33:
        unusable("the identity's log_verifier_key is not an Ed25519 verifier key")
    if hashlib.sha256(name.encode() + b"\n\x01" + key[1:]).digest()[:4].hex() != key_id:
        unusable("the identity's log_verifier_key has a wrong key id")
    return {
        "origin": name,
        "log_key": key[1:],
        "signing_key": base64.b64decode(identity["signing_key"], validate=True),
    }


def verify_checkpoint(note, identity):
    """Checks the log's signature on a checkpoint note; returns (size, root)."""
    body, sep, signatures = note.partition("\n\n")
    if not sep:
        fail("the checkpoint is not a signed note")
    body += "\n"
    lines = body.split("\n")
    if len(lines) != 4 or lines[0] != identity["origin"]:
        fail("the checkpoint is not for the log %s" % identity["origin"])
    size, root = int(lines[1]), base64.b64decode(lines[2], validate=True)
    key_id = hashlib.sha256(identity["origin"].encode() + b"\n\x01" + identity["log_key"]).digest()[:4]
    for line in signatures.rstrip("\n").split("\n"):
        if not line.startswith("\u2014 "):
            fail("malformed signature line")
        name, payload = line[2:].split(" ")
        payload = base64.b64decode(payload, validate=True)
        if name == identity["origin"] and payload[:4] == key_id and len(payload) == 68:
            try:
                VerifyKey(identity["log_key"]).verify(body.encode(), payload[4:])
                return size, root
            except BadSignatureError:
                fail("the checkpoint's signature does not verify")
    fail("the checkpoint carries no signature by the log key of %s" % identity["origin"])


def root_from_inclusion(index, size, leaf, proof):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        fail("index %d is outside a tree of %d" % (index, size))
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            fail("the proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        fail("the proof is too short")
    return r


def consistent(first, second, first_root, second_root, proof):
    """RFC 9162 section 2.1.4.2."""
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if first > second:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    if not path:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


def split_proof(text, first_line_prefix):
    """Header lines, proof hashes, then the checkpoint note after the first blank line."""
    head, sep, note = text.partition("\n\n")
    if not sep:
        unusable("the proof has no checkpoint")
    lines = head.split("\n")
    hashes = []
    for line in lines[first_line_prefix:]:
        h = base64.b64decode(line, validate=True)
        if len(h) != 32:
            unusable("a proof hash is not 32 bytes")
        hashes.append(h)
    return lines[:first_line_prefix], hashes, note


def inclusion(args):
    identity = read_identity(args.identity)
    with open(args.proof, encoding="utf-8") as f:
        header, proof, note = split_proof(f.read(), 2)
    if header[0] != "c2sp.org/tlog-proof@v1" or not header[1].startswith("index "):
        unusable("not a c2sp.org/tlog-proof@v1 proof")
    index = int(header[1][len("index "):])
    size, root = verify_checkpoint(note, identity)
    with open(args.log, encoding="utf-8") as f:
        entries = {e["index"]: e["entry"] for e in json.load(f)["entries"]}
    entry = base64.b64decode(entries[index], validate=True)
    # The entry is a signed event: body, newline, base64 Ed25519 signature over "custody/event/v1\n" + body,
    # and, when the body names a member (`by`), a second line: that member's signature.
    event = signed_event(entry, identity["signing_key"], index)
    if root_from_inclusion(index, size, leaf_hash(entry), proof) != root:
        fail("entry %d is not in the tree the log signed" % index)
    print(
        "OK: entry %d (%s of item %s at %s, by %s) is in %s's log of %d entries, whose checkpoint is signed"
        % (index, event["type"], event.get("item", "-"), event["time"], event["actor"], identity["origin"], size)
    )


def consistency(args):
    identity = read_identity(args.identity)
    with open(args.old, encoding="utf-8") as f:
        old_size, old_root = verify_checkpoint(f.read(), identity)
    with open(args.request, encoding="utf-8") as f:
        header, proof, note = split_proof(f.read(), 1)
    if not header[0].startswith("old ") or int(header[0][4:]) != old_size:
        fail("the request proves from %s, not from the old checkpoint's size %d" % (header[0], old_size))
    size, root = verify_checkpoint(note, identity)
    if not consistent(old_size, size, old_root, root, proof):
        fail("the log of size %d does not extend the one of size %d: history was rewritten or forked" % (size, old_size))
    print("OK: %s's log of %d entries extends its log of %d entries" % (identity["origin"], size, old_size))


def merkle_root(leaves):
    """RFC 9162 MTH over a list of leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def whole_log(args):
    identity = read_identity(args.identity)
    with open(args.checkpoint, encoding="utf-8") as f:
        size, root = verify_checkpoint(f.read(), identity)
    with open(args.log, encoding="utf-8") as f:
        entries = json.load(f)["entries"]
    if [e["index"] for e in entries[:size]] != list(range(size)) or len(entries) < size:
        fail("the log listing does not hold entries 0..%d in order" % (size - 1))
    leaves = []
    for e in entries[:size]:
        entry = base64.b64decode(e["entry"], validate=True)
        event = signed_event(entry, identity["signing_key"], e["index"])
        leaves.append(leaf_hash(entry))
        if args.item and event.get("item") == args.item:
            member = " (member %s)" % event["by"] if "by" in event else ""
            print("  #%d  %s  %s  by %s%s" % (e["index"], event["time"], event["type"], event["actor"], member))
    if merkle_root(leaves) != root:
        fail("the %d entries do not hash to the root the log signed" % size)
    print("OK: all %d entries are signed by %s and hash to its signed checkpoint" % (size, identity["origin"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("inclusion")
    p.add_argument("--identity", required=True)
    p.add_argument("--proof", required=True)
    p.add_argument("--log", required=True)
    p.set_defaults(run=inclusion)
    c = sub.add_parser("consistency")
    c.add_argument("--identity", required=True)
    c.add_argument("--old", required=True)
    c.add_argument("--request", required=True)
    c.set_defaults(run=consistency)
    w = sub.add_parser("log")
    w.add_argument("--identity", required=True)
    w.add_argument("--checkpoint", required=True)
    w.add_argument("--log", required=True)
    w.add_argument("--item")
    w.set_defaults(run=whole_log)
    args = parser.parse_args()
    try:
        args.run(args)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
        unusable(str(error))


if __name__ == "__main__":
    main()
