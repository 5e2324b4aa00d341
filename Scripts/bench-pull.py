#!/usr/bin/env python3
"""Benchmark and load-test the share protocol over loopback (not part of the test suite).

Issue 5's target: pulling a 1 GiB grant runs at no less than 60% of the archive's own ingest. One release
`custody serve` node holds --mib MiB of evidence in --files files granted to --clients grantee archives;
each runs `custody pull` (all at once when --clients > 1: the load test). Reported: ingest MB/s (the
peer), pull MB/s per client, each pull's peak RSS (os.wait4) and the server's (VmHWM), and the server's
rate for small requests (GET /v1/log/checkpoint) from 16 parallel connections. Standard library only.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import DEFAULT_CUSTODY, MIB, REPO_ROOT, write_random_files  # noqa: E402
from bench_common import run as run_custody  # noqa: E402


def run(custody: str, args: list[str], env: dict) -> tuple[float, int, str]:
    return run_custody(custody, args, env, "bench-pull")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--clients", type=int, default=1, help="grantee archives pulling at once (load test)")
    parser.add_argument("--custody", default=DEFAULT_CUSTODY)
    args = parser.parse_args()
    if not os.access(args.custody, os.X_OK):
        sys.exit("bench-pull: build first: swift build -c release --product custody --scratch-path .build-release")
    work = tempfile.mkdtemp(prefix="bench-pull-", dir=os.path.join(REPO_ROOT, ".build-release"))
    server = None
    try:
        base = dict(os.environ, CUSTODY_PASSPHRASE="bench-pull-not-a-secret")
        node = dict(base, CUSTODY_ARCHIVE=os.path.join(work, "node"))
        clients = [dict(base, CUSTODY_ARCHIVE=os.path.join(work, f"client-{i}")) for i in range(args.clients)]
        for env, name in [(node, "Node")] + [(c, f"Client {i}") for i, c in enumerate(clients)]:
            run(args.custody, ["init", "--name", name, "--kdf", "insecure-test"], env)
        run(args.custody, ["id", "export", "-o", os.path.join(work, "node.id")], node)
        data = os.path.join(work, "data")
        write_random_files(data, args.mib, args.files)
        ingest, _, _ = run(args.custody, ["ingest", data, "--case", "BENCH"], node)
        for i, client in enumerate(clients):
            identity = os.path.join(work, f"client-{i}.id")
            run(args.custody, ["id", "export", "-o", identity], client)
            run(args.custody, ["grant", "create", "--to", identity, "--case", "BENCH", "--expires", "1d", "--purpose", "bench"], node)
            run(args.custody, ["witness", "add", identity], node)
        server = subprocess.Popen(
            [args.custody, "serve", "--listen", "127.0.0.1:0"], env=node, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        line = server.stdout.readline().decode()
        if not line.startswith("listening on "):
            sys.exit("bench-pull: the server did not start")
        url = "http://" + line.split()[-1]
        for client in clients:
            run(args.custody, ["peer", "add", "node", url, "--identity", os.path.join(work, "node.id")], client)
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.clients) as pool:
            pulls = list(pool.map(lambda c: run(args.custody, ["pull", "node"], c), clients))

        # Small requests: the public checkpoint, 16 connections at once for 3 seconds.
        def hammer(_: int) -> int:
            count, deadline = 0, time.monotonic() + 3
            while time.monotonic() < deadline:
                with urllib.request.urlopen(url + "/v1/log/checkpoint") as response:
                    response.read()
                count += 1
            return count

        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            small = sum(pool.map(hammer, range(16))) / 3
        with open(f"/proc/{server.pid}/status") as f:
            server_rss = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
        mbps = lambda s: args.mib * MIB / 1e6 / s
        report = {
            "mib": args.mib,
            "clients": args.clients,
            "ingest_mb_per_s": round(mbps(ingest), 1),
            "pulls": [{"mb_per_s": round(mbps(s), 1), "ratio_to_ingest": round(ingest / s, 2), "peak_rss_mib": round(r / 1024, 1)} for s, r, _ in pulls],
            "server_peak_rss_mib": round(server_rss / 1024, 1),
            "small_requests_per_s": round(small),
        }
        print(json.dumps(report, indent=2))
        return 0
    finally:
        if server:
            server.terminate()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
