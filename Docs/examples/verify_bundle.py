#!/usr/bin/env python3
"""Independent verifier and grantee-side decryptor of Custody share bundles, written from Docs/SHARING.md,
Docs/FORMAT.md and Docs/LEDGER.md. PyNaCl and the standard library only, plus the two other examples
(decrypt_item.py for sealed parts and keys.json, verify_proof.py for proofs and checkpoints).

    python3 verify_bundle.py verify BUNDLE [--granter IDENTITY] [--at RFC3339]
    CUSTODY_PASSPHRASE=... python3 verify_bundle.py decrypt BUNDLE --archive GRANTEE_ARCHIVE -o DIR

verify: every check of SHARING.md section 4. decrypt: verify, then open every item with the grantee's
secret key (from its archive's keys.json and passphrase) and check every SHA-256 and evidence commitment
(SHARING.md section 5), writing each item's plaintext to DIR/<item id>.
Exit 0 when every check passed, 1 when one failed, 2 for unusable input.
"""

import argparse
import base64
import calendar
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nacl.exceptions  # noqa: E402
import nacl.signing  # noqa: E402

from decrypt_item import Archive, CheckFailed, aead_open, blake2b_256, check, padme  # noqa: E402
from verify_proof import leaf_hash, root_from_inclusion  # noqa: E402

LIMITS = {b"I": 64 << 10, b"G": 64 << 20, b"P": 64 << 20, b"C": 64 << 10, b"E": 1 << 20, b"O": (256 << 20) + 32, b"Z": 1024}
MAGIC = b"custody-bundle/v1\n"


def parse_time(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def records(path):
    """Section 3: yields (type, payload); checks the order, limits and the end record."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        check(f.read(len(MAGIC)) == MAGIC, "the file starts with the bundle magic")
        digest.update(MAGIC)
        count = 0
        order = b"IGPCEOZ"
        mandatory = {0, 1, 3, 6}  # I, G, C, Z once each; P, E, O any number
        stage = -1
        while True:
            header = f.read(9)
            check(len(header) == 9, "the bundle is not truncated (a record header is whole)")
            kind, length = header[:1], int.from_bytes(header[1:], "big")
            check(kind in LIMITS, "record type %r is known" % kind)
            check(length <= LIMITS[kind], "record %r is within its size limit" % kind)
            position = order.index(kind)
            if position == stage:
                check(position not in mandatory, "only P, E and O records repeat")
            else:
                check(position > stage, "records are in order I G P* C E* O* Z")
                check(not any(stage < m < position for m in mandatory), "no mandatory record is missing")
            stage = position
            payload = f.read(length)
            check(len(payload) == length, "the bundle is not truncated (a record is whole)")
            if kind == b"Z":
                end = json.loads(payload)
                check(end["records"] == count, "the end record counts the records")
                check(end["sha256"] == digest.hexdigest(), "the end record's SHA-256 covers every byte before it")
                check(f.read(1) == b"", "nothing follows the end record")
                return
            digest.update(header)
            digest.update(payload)
            count += 1
            yield kind, payload


def read_identity(data):
    ident = json.loads(data)
    signing, box = base64.b64decode(ident["signing_key"]), base64.b64decode(ident["box_key"])
    digest = hashlib.sha256(b"custody/fingerprint/v1\n" + signing + box).hexdigest()[:32]
    check(ident["fingerprint"] == "-".join(digest[i : i + 4] for i in range(0, 32, 4)), "identity fingerprint")
    message = "custody/identity/v1\n%d\n%s\n%s\n%s\n%s\n%s\n%s\n" % (
        ident["version"], ident["name"], ident["origin"], ident["signing_key"], ident["box_key"],
        ident["log_verifier_key"], ident["fingerprint"],
    )
    try:
        nacl.signing.VerifyKey(signing).verify(message.encode(), base64.b64decode(ident["self_signature"]))
    except nacl.exceptions.BadSignatureError:
        raise CheckFailed("identity self-signature")
    name, key_id, key = ident["log_verifier_key"].split("+", 2)
    key = base64.b64decode(key)
    check(name == ident["origin"] and key[0] == 1, "log verifier key names the origin")
    check(hashlib.sha256(name.encode() + b"\n\x01" + key[1:]).digest()[:4].hex() == key_id, "log key id")
    ident["_signing"], ident["_log"] = signing, key[1:]
    return ident


def verify_note(note, identity):
    """LEDGER.md section 9: returns (size, root) of a checkpoint signed by the identity's log key."""
    body, _, signatures = note.partition("\n\n")
    lines = (body + "\n").split("\n")
    check(len(lines) == 4 and lines[0] == identity["origin"], "checkpoint of the granter's origin")
    key_id = hashlib.sha256(identity["origin"].encode() + b"\n\x01" + identity["_log"]).digest()[:4]
    for line in signatures.rstrip("\n").split("\n"):
        name, payload = line[2:].split(" ")
        payload = base64.b64decode(payload)
        if name == identity["origin"] and payload[:4] == key_id and len(payload) == 68:
            nacl.signing.VerifyKey(identity["_log"]).verify((body + "\n").encode(), payload[4:])
            return int(lines[1]), base64.b64decode(lines[2])
    raise CheckFailed("checkpoint signed by the granter's log key")


def parse_grant(payload):
    """SHARING.md section 2: the grant, its signature checked with the granter key it names."""
    body, _, signature = payload.partition(b"\n")
    grant = json.loads(body)
    nacl.signing.VerifyKey(base64.b64decode(grant["granter"]["signing_key"])).verify(
        b"custody/grant/v1\n" + body, base64.b64decode(signature)
    )
    return grant


def check_chain(grant, ancestors):
    """SHARING.md section 4, step 3: a re-share's chain, each link never wider or longer than its parent."""
    child = grant
    while child.get("parent"):
        parent = ancestors.get(child["parent"]["hash"])
        check(parent is not None and parent["id"] == child["parent"]["id"], "the parent grant is in the bundle")
        check(parent["reshare"], "the parent allows re-sharing")
        check(parent["grantee"]["signing_key"] == child["granter"]["signing_key"], "the parent was granted to the re-sharer")
        check(parse_time(child["expires"]) <= parse_time(parent["expires"]), "the re-share does not outlast its parent")
        check(parent["permission"] == "content" or child["permission"] == "metadata", "the re-share is not wider")
        check({i["id"] for i in child["items"]} <= {i["id"] for i in parent["items"]}, "the re-share names only the parent's items")
        child = parent


def verify(path, granter_path=None, at=None):
    """Section 4. Returns (identity, grant, events by item, objects by name) for decryption."""
    identity = grant = None
    signed_grant = b""
    size = root = None
    origins, named, objects, ancestors = {}, {}, {}, {}
    grant_logged = False
    last_index = -1
    for kind, payload in records(path):
        if kind == b"I":
            identity = read_identity(payload)
        elif kind == b"P":
            ancestors[hashlib.sha256(payload).hexdigest()] = parse_grant(payload)
        elif kind == b"G":
            grant = parse_grant(payload)
            check(
                grant["granter"]["signing_key"] == identity["signing_key"]
                and grant["granter"]["box_key"] == identity["box_key"],
                "the grant's granter is the bundle's identity",
            )
            signed_grant = payload
        elif kind == b"C":
            size, root = verify_note(payload.decode(), identity)
        elif kind == b"E":
            record = json.loads(payload)
            entry = base64.b64decode(record["entry"])
            check(record["index"] > last_index, "entries by increasing index")
            last_index = record["index"]
            proof = [base64.b64decode(h) for h in record["proof"]]
            check(root_from_inclusion(record["index"], size, leaf_hash(entry), proof) == root,
                  "entry %d is proved in the signed log" % record["index"])
            body, _, signature = entry.partition(b"\n")
            nacl.signing.VerifyKey(identity["_signing"]).verify(b"custody/event/v1\n" + body, base64.b64decode(signature))
            event = json.loads(body)
            ref = {"id": grant["id"], "hash": hashlib.sha256(signed_grant).hexdigest()}
            if event["type"] == "grant" and event.get("grant") == ref:
                grant_logged = True
            elif event["type"] in ("ingest", "import"):
                origins.setdefault(event["item"], event)
            if event.get("annotation") and event["type"] in ("tag", "note"):
                named.setdefault(event["item"], set()).add(event["annotation"]["name"])
        elif kind == b"O":
            name, data = payload[:32].hex(), payload[32:]
            check(blake2b_256(data).hex() == name, "object %s hashes to its name" % name[:16])
            check(name not in objects, "object %s appears once" % name[:16])
            objects[name] = data
    check(grant_logged, "the grant's event is proved in the granter's log")
    check_chain(grant, ancestors)
    released = {}
    for item in grant["items"]:
        for ref in item["objects"]:
            released[ref["name"]] = ref["size"]
    check(set(objects) == set(released), "the bundle holds exactly the released objects")
    check(all(len(objects[n]) == s for n, s in released.items()), "objects have their released sizes")
    for item in grant["items"]:
        event = origins.get(item["id"])
        check(event is not None, "item %s has a proved ingest event" % item["id"])
        o = event["objects"]
        allowed = {o["meta"]["name"]} | named.get(item["id"], set())
        if grant["permission"] == "content":
            allowed |= {o["content"]["name"]} | {c["name"] for c in o.get("chunks", [])}
            if "chunk_list" in o:
                listed = objects[o["chunk_list"]["name"]]
                allowed |= {o["chunk_list"]["name"]} | {listed[i : i + 32].hex() for i in range(0, len(listed), 40)}
        else:
            check("content" not in item["keys"], "a metadata grant carries no content key")
        check({r["name"] for r in item["objects"]} <= allowed, "item %s releases only objects its events name" % item["id"])
    now = at if at is not None else int(time.time())
    check(parse_time(grant["created"]) <= now < parse_time(grant["expires"]), "the grant is valid at the time checked")
    if granter_path:
        with open(granter_path, "rb") as f:
            expected = json.load(f)
        check(expected["signing_key"] == identity["signing_key"] and expected["box_key"] == identity["box_key"],
              "the bundle's granter is the given identity")
    return identity, grant, origins, objects


def decrypt(path, archive_root, passphrase, outdir):
    """Section 5, as the grantee."""
    identity, grant, origins, objects = verify(path)
    grantee = Archive(archive_root)
    grantee.unlock(passphrase)
    check(grant["grantee"]["box_key"] == base64.b64encode(grantee.box_pk).decode(), "the bundle is for this archive")
    os.makedirs(outdir, exist_ok=True)
    for item in grant["items"]:
        item_hex, event = item["id"], origins[item["id"]]
        k_meta = grantee.unwrap(item["keys"]["meta"], bytes.fromhex(item_hex))
        meta = Archive.open_part(objects[event["objects"]["meta"]["name"]], "meta", item_hex, k_meta)
        check(meta["item"] == item_hex, "metadata names its item")
        if grant["permission"] != "content":
            print("%s  %s  (metadata only)" % (item_hex, meta["name"]))
            continue
        k_content = grantee.unwrap(item["keys"]["content"], bytes.fromhex(item_hex))
        content = Archive.open_part(objects[event["objects"]["content"]["name"]], "content", item_hex, k_content)
        check(content["padded_size"] == padme(meta["size"]), "padded size")
        sha, remaining = hashlib.sha256(), meta["size"]
        with open(os.path.join(outdir, item_hex), "wb") as out:
            for chunk in content["chunks"]:
                plaintext = aead_open(objects[chunk["object"]], b"custody/chunk/v1", bytes(24), base64.b64decode(chunk["key"]))
                take = min(len(plaintext), remaining)
                sha.update(plaintext[:take])
                out.write(plaintext[:take])
                remaining -= take
        check(remaining == 0 and sha.hexdigest() == meta["sha256"], "item %s decrypts to its SHA-256" % item_hex)
        r = base64.b64decode(meta["commitment_nonce"])
        commitment = hashlib.sha256(b"custody/commit/v1" + r + sha.digest() + meta["size"].to_bytes(8, "big")).hexdigest()
        check(commitment == event["commitment"], "item %s opens the granter's evidence commitment" % item_hex)
        print("%s  %s  %d bytes  sha256 %s" % (item_hex, meta["name"], meta["size"], meta["sha256"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    v = sub.add_parser("verify")
    v.add_argument("bundle")
    v.add_argument("--granter")
    v.add_argument("--at")
    d = sub.add_parser("decrypt")
    d.add_argument("bundle")
    d.add_argument("--archive", required=True)
    d.add_argument("-o", "--output", required=True)
    d.add_argument("--passphrase-file")
    args = parser.parse_args()
    try:
        if args.mode == "verify":
            _, grant, _, objects = verify(args.bundle, args.granter, parse_time(args.at) if args.at else None)
            print("OK: grant %s, %d items, %d objects" % (grant["id"], len(grant["items"]), len(objects)))
        else:
            if args.passphrase_file:
                with open(args.passphrase_file, "rb") as f:
                    passphrase = f.readline().rstrip(b"\r\n")
            else:
                passphrase = os.environ.get("CUSTODY_PASSPHRASE", "").encode()
            decrypt(args.bundle, args.archive, passphrase, args.output)
            print("OK: every item decrypted and matched its SHA-256 and commitment")
    except (CheckFailed, nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError) as failure:
        print("FAIL: %s" % failure)
        sys.exit(1)
    except (OSError, ValueError, KeyError) as error:
        print("unusable input: %s" % error, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
