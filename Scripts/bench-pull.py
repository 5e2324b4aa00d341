#!/usr/bin/env python3
"""Benchmark and load-test the share protocol over loopback (not part of the test suite).

Issue 5's target: pulling a 1 GiB grant runs at no less than 60% of the archive's own ingest. One release
`custody serve` node holds --mib MiB of evidence in --files files granted to --clients grantee archives;
each runs `custody pull` (all at once when --clients > 1: the load test). Reported: ingest MB/s (the
peer), pull MB/s per client, each pull's peak RSS (os.wait4) and the server's (VmHWM), and the server's
rate for small requests (GET /v1/log/checkpoint) from 16 parallel connections. Standard library only.

--latency-during-export (issue 12's target: while a 768 MiB bundle is being exported and served to one client,
no small signed request from another client waits more than 100 ms, worst case, not a percentile): the node
holds --mib MiB (768 unless given) granted to one grantee archive A, and a second requester B — a key pair
made here with PyNaCl (`python3 -m pip install pynacl`), written as a self-signed identity file (FORMAT.md
section 6) and made known to the node with `custody witness add` — sends signed `GET /v1/grants` requests
(PROTOCOL.md section 2: RFC 9421, Ed25519) back to back on --requesters keep-alive connections while A runs
`custody pull`, which makes the node export the grant's bundle head and serve its objects. Each request's
wait is timed from the moment it is sent to its whole response; only requests sent after A's pull started
and before it ended count, and every one must be answered 200 (anything else stops the run: a failure is
never a fast sample). The report adds `small_signed_requests_during_export` (count, worst_ms, median_ms),
with when the worst was sent (seconds after the pull started), the same figures for requests sent before
the pull (idle baseline, worst_sent_at_s negative), the pull's duration, and when the node
was seen exporting (the temporary `serve-cache/.custody-bundle-*` file an export writes, polled every
millisecond) with the figures for the requests in flight in that window.
--export-via bundle makes A a second Python requester that downloads the grant's whole bundle in one stream
(`GET /v1/grants/<id>/bundle`: the node exports all --mib MiB into `serve-cache/`, then streams it), the
endpoint where the export is largest.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import DEFAULT_CUSTODY, MIB, REPO_ROOT, write_random_files  # noqa: E402
from bench_common import run as run_custody  # noqa: E402


def run(custody: str, args: list[str], env: dict) -> tuple[float, int, str]:
    return run_custody(custody, args, env, "bench-pull")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Requester:
    """A body made here, not by custody: its identity file (FORMAT.md section 6) and its signed requests
    (PROTOCOL.md section 2), with PyNaCl's Ed25519 and X25519."""

    def __init__(self, name: str) -> None:
        try:
            from nacl.public import PrivateKey
            from nacl.signing import SigningKey
        except ImportError:
            sys.exit("bench-pull: --latency-during-export needs PyNaCl: python3 -m pip install pynacl")
        self.name = name
        self.signing = SigningKey.generate()
        self.box = PrivateKey.generate()
        self.log = SigningKey.generate()
        self.public = bytes(self.signing.verify_key)

    def identity(self) -> bytes:
        """The self-signed identity file, as `custody id export` writes it."""
        signing_key, box_key = b64(self.public), b64(bytes(self.box.public_key))
        digest = hashlib.sha256(b"custody/fingerprint/v1\n" + self.public + bytes(self.box.public_key)).digest()
        hex16 = digest[:16].hex()
        fingerprint = "-".join(hex16[i : i + 4] for i in range(0, 32, 4))
        origin = "custody/" + hex16[:8]
        log_key = bytes(self.log.verify_key)
        key_id = hashlib.sha256(origin.encode() + b"\n\x01" + log_key).digest()[:4].hex()
        verifier_key = origin + "+" + key_id + "+" + b64(b"\x01" + log_key)
        message = f"custody/identity/v1\n1\n{self.name}\n{origin}\n{signing_key}\n{box_key}\n{verifier_key}\n{fingerprint}\n"
        identity = {
            "box_key": box_key,
            "fingerprint": fingerprint,
            "log_verifier_key": verifier_key,
            "name": self.name,
            "origin": origin,
            "self_signature": b64(self.signing.sign(message.encode()).signature),
            "signing_key": signing_key,
            "version": 1,
        }
        return (json.dumps(identity, indent=2, sort_keys=True, separators=(",", " : ")) + "\n").encode()

    def headers(self, method: str, authority: str, path: str, query: str = "") -> dict[str, str]:
        """`Host`, `Signature-Input` and `Signature` for a request without a body (no `content-digest`)."""
        params = (
            '("@method" "@authority" "@path" "@query")'
            f';created={int(time.time())};keyid="{b64(self.public)}";alg="ed25519";nonce="{os.urandom(16).hex()}"'
        )
        lines = [
            f'"@method": {method.upper()}',
            f'"@authority": {authority.lower()}',
            f'"@path": {path}',
            f'"@query": ?{query}',
            f'"@signature-params": {params}',
        ]
        signature = self.signing.sign("\n".join(lines).encode()).signature
        return {"Host": authority, "Signature-Input": f"sig1={params}", "Signature": f"sig1=:{b64(signature)}:"}


def signed_get(connection: http.client.HTTPConnection, requester: Requester, authority: str, path: str):
    connection.request("GET", path, headers=requester.headers("GET", authority, path))
    return connection.getresponse()


def latency_figures(samples: list[tuple[float, float]], origin: float) -> dict:
    """Count, worst and median wait of (sent, wait) samples, and when the worst was sent (seconds after `origin`)."""
    if not samples:
        return {"count": 0, "worst_ms": None, "median_ms": None}
    sent, worst = max(samples, key=lambda sample: sample[1])
    return {
        "count": len(samples),
        "worst_ms": round(worst * 1000, 1),
        "median_ms": round(statistics.median(wait for _, wait in samples) * 1000, 1),
        "worst_sent_at_s": round(sent - origin, 3),
    }


class Watcher(threading.Thread):
    """Polls the node's `serve-cache/` every millisecond for the file an export writes before renaming it into
    place (`.custody-bundle-*`, for a bundle head and a whole bundle alike): when it was first and last seen."""

    def __init__(self, folder: str) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.stop = threading.Event()
        self.first: float | None = None
        self.last: float | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                names = os.listdir(self.folder)
            except OSError:
                names = []
            if any(name.startswith(".custody-bundle-") for name in names):
                self.last = time.monotonic()
                self.first = self.first or self.last
            time.sleep(0.001)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=None, help="evidence MiB (default 1024; 768 with --latency-during-export)")
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--clients", type=int, default=1, help="grantee archives pulling at once (load test)")
    parser.add_argument("--custody", default=DEFAULT_CUSTODY)
    parser.add_argument(
        "--latency-during-export",
        action="store_true",
        help="time signed GET /v1/grants from a second requester while one client pulls (issue 12)",
    )
    parser.add_argument("--requesters", type=int, default=2, help="with --latency-during-export: connections sending back to back")
    parser.add_argument(
        "--export-via",
        choices=["pull", "bundle"],
        default="pull",
        help="with --latency-during-export: `custody pull` (head + objects) or one GET of the whole bundle",
    )
    args = parser.parse_args()
    latency = args.latency_during_export
    if args.mib is None:
        args.mib = 768 if latency else 1024
    if latency and args.clients != 1:
        sys.exit("bench-pull: --latency-during-export uses one pulling client")
    if not os.access(args.custody, os.X_OK):
        sys.exit("bench-pull: build first: swift build -c release --product custody --scratch-path .build-release")
    os.makedirs(os.path.join(REPO_ROOT, ".build-release"), exist_ok=True)
    work = tempfile.mkdtemp(prefix="bench-pull-", dir=os.path.join(REPO_ROOT, ".build-release"))
    server = None
    try:
        base = dict(os.environ, CUSTODY_PASSPHRASE="bench-pull-not-a-secret")
        node = dict(base, CUSTODY_ARCHIVE=os.path.join(work, "node"))
        whole = latency and args.export_via == "bundle"
        clients = [] if whole else [dict(base, CUSTODY_ARCHIVE=os.path.join(work, f"client-{i}")) for i in range(args.clients)]
        for env, name in [(node, "Node")] + [(c, f"Client {i}") for i, c in enumerate(clients)]:
            run(args.custody, ["init", "--name", name, "--kdf", "insecure-test"], env)
        run(args.custody, ["id", "export", "-o", os.path.join(work, "node.id")], node)
        data = os.path.join(work, "data")
        write_random_files(data, args.mib, args.files)
        ingest, _, _ = run(args.custody, ["ingest", data, "--case", "BENCH"], node)
        shutil.rmtree(data)
        identities = []
        for i, client in enumerate(clients):
            identity = os.path.join(work, f"client-{i}.id")
            run(args.custody, ["id", "export", "-o", identity], client)
            identities.append(identity)
        requester = puller = None
        if latency:
            # B: known to the node (its registry, bodies.json) as a witness, granted nothing.
            requester = Requester("Requester B")
            with open(os.path.join(work, "requester.id"), "wb") as f:
                f.write(requester.identity())
            run(args.custody, ["witness", "add", os.path.join(work, "requester.id")], node)
        if whole:
            # A, as a second Python requester: the grantee that downloads the whole bundle.
            puller = Requester("Client A")
            identities.append(os.path.join(work, "client-a.id"))
            with open(identities[-1], "wb") as f:
                f.write(puller.identity())
        for identity in identities:
            run(args.custody, ["grant", "create", "--to", identity, "--case", "BENCH", "--expires", "1d", "--purpose", "bench"], node)
            run(args.custody, ["witness", "add", identity], node)
        server = subprocess.Popen(
            [args.custody, "serve", "--listen", "127.0.0.1:0"], env=node, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        line = server.stdout.readline().decode()
        if not line.startswith("listening on "):
            sys.exit("bench-pull: the server did not start")
        authority = line.split()[-1]
        url = "http://" + authority
        for client in clients:
            run(args.custody, ["peer", "add", "node", url, "--identity", os.path.join(work, "node.id")], client)
        during = before = None
        if latency:
            host, port = authority.rsplit(":", 1)
            stop = threading.Event()
            samples: list[tuple[float, float]] = []
            failures: list[str] = []

            def hammer(_: int) -> None:
                connection = http.client.HTTPConnection(host, int(port), timeout=600)
                try:
                    first = True  # the first request opens the connection: not timed
                    while not stop.is_set():
                        headers = requester.headers("GET", authority, "/v1/grants")
                        sent = time.monotonic()
                        connection.request("GET", "/v1/grants", headers=headers)
                        response = connection.getresponse()
                        body = response.read()
                        answered = time.monotonic()
                        if response.status != 200 or json.loads(body) != {"grants": []}:
                            failures.append(f"{response.status} {body[:200]!r}")
                            return
                        if not first:
                            samples.append((sent, answered - sent))
                        first = False
                except Exception as error:  # noqa: BLE001 -- any failure ends the run, reported below
                    failures.append(repr(error))

            threads = [threading.Thread(target=hammer, args=(i,), daemon=True) for i in range(args.requesters)]
            for thread in threads:
                thread.start()
            watcher = Watcher(os.path.join(node["CUSTODY_ARCHIVE"], "serve-cache"))
            watcher.start()
            time.sleep(1)  # the idle baseline, and every connection open and answered before the pull
            if failures or not samples:
                sys.exit(f"bench-pull: B's signed GET /v1/grants failed: {failures[:1]}")
            pull_start = time.monotonic()
            if whole:
                pulls = [download_bundle(host, int(port), authority, puller)]
            else:
                pulls = [run(args.custody, ["pull", "node"], clients[0])]
            pull_end = time.monotonic()
            stop.set()
            for thread in threads:
                thread.join()
            watcher.stop.set()
            if failures:
                sys.exit(f"bench-pull: B's signed GET /v1/grants failed during the export: {failures[:3]}")
            before = latency_figures([(t, w) for t, w in samples if t < pull_start], pull_start)
            during = latency_figures([(t, w) for t, w in samples if pull_start <= t <= pull_end], pull_start)
            during["pull_seconds"] = round(pull_end - pull_start, 2)
            during["export_via"] = "custody pull (head + objects)" if not whole else "GET /v1/grants/<id>/bundle"
            if watcher.first is not None:
                # The export itself (seen to within the polling interval), and the requests in flight while it ran.
                during["export_seen_from_s"] = round(watcher.first - pull_start, 3)
                during["export_seen_until_s"] = round(watcher.last - pull_start, 3)
                window = [(t, w) for t, w in samples if t <= watcher.last and t + w >= watcher.first]
                during["in_flight_while_export_seen"] = latency_figures(window, pull_start)
            during["requesters"] = args.requesters
        else:
            with concurrent.futures.ThreadPoolExecutor(max_workers=args.clients) as pool:
                pulls = list(pool.map(lambda c: run(args.custody, ["pull", "node"], c), clients))

        # Small requests: the public checkpoint, 16 connections at once for 3 seconds.
        def hammer_checkpoint(_: int) -> int:
            count, deadline = 0, time.monotonic() + 3
            while time.monotonic() < deadline:
                with urllib.request.urlopen(url + "/v1/log/checkpoint") as response:
                    response.read()
                count += 1
            return count

        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            small = sum(pool.map(hammer_checkpoint, range(16))) / 3
        with open(f"/proc/{server.pid}/status") as f:
            server_rss = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
        mbps = lambda s: args.mib * MIB / 1e6 / s
        report = {
            "mib": args.mib,
            "clients": len(pulls),
            "ingest_mb_per_s": round(mbps(ingest), 1),
            "pulls": [
                {"mb_per_s": round(mbps(s), 1), "ratio_to_ingest": round(ingest / s, 2)}
                | ({"peak_rss_mib": round(r / 1024, 1)} if r else {})
                for s, r, _ in pulls
            ],
            "server_peak_rss_mib": round(server_rss / 1024, 1),
            "small_requests_per_s": round(small),
        }
        if latency:
            report["small_signed_requests_before_pull"] = before
            report["small_signed_requests_during_export"] = during
        print(json.dumps(report, indent=2))
        return 0
    finally:
        if server:
            server.terminate()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


def download_bundle(host: str, port: int, authority: str, puller: Requester) -> tuple[float, int, str]:
    """A's whole-bundle download (signed GET /v1/grants, then GET /v1/grants/<id>/bundle, read to its end
    and dropped); returns (seconds, 0, "") like ``run``."""
    start = time.monotonic()
    connection = http.client.HTTPConnection(host, port, timeout=3600)
    response = signed_get(connection, puller, authority, "/v1/grants")
    body = response.read()
    if response.status != 200:
        sys.exit(f"bench-pull: A's GET /v1/grants: {response.status} {body[:200]!r}")
    grant = json.loads(body)["grants"][0]["id"]
    response = signed_get(connection, puller, authority, f"/v1/grants/{grant}/bundle")
    if response.status != 200:
        sys.exit(f"bench-pull: A's GET bundle: {response.status} {response.read()[:200]!r}")
    while response.read(1 << 20):  # http.client raises IncompleteRead if it ends short of Content-Length
        pass
    return time.monotonic() - start, 0, ""


if __name__ == "__main__":
    sys.exit(main())
