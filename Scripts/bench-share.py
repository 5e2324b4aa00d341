#!/usr/bin/env python3
"""Benchmark bundle export and import against the archive's own ingest, in one run, on the same data.

Issue 4's target: exporting and importing a 1 GiB grant are each at least as fast as ingesting the same
data, with peak RSS under 128 MiB. Every step runs the release `custody` binary as a child process,
timed with time.monotonic(), its peak RSS from os.wait4():

  ingest   --files random files totalling --mib MiB into the granter's archive (the peer)
  export   custody bundle export of a grant of all of them
  verify   custody bundle verify of the bundle (no keys)
  import   custody bundle import into the grantee's archive (decrypts and re-checks every SHA-256)

MB/s are of plaintext (MiB of evidence per second). Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CUSTODY = os.path.join(REPO_ROOT, ".build-release", "release", "custody")
RSS_TARGET_MIB = 128


def run(custody: str, args: list[str], env: dict) -> tuple[float, int, str]:
    """Runs custody; returns (seconds, peak RSS KiB, stdout)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        child = subprocess.Popen([custody] + args, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"bench-share: custody {' '.join(args[:2])} failed: {err.read().decode()[-2000:]}")
        return seconds, usage.ru_maxrss, out.read().decode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="plaintext MiB in the grant (default 1024)")
    parser.add_argument("--files", type=int, default=8, help="how many files share it (default 8)")
    parser.add_argument("--custody", default=DEFAULT_CUSTODY, help="the custody binary (release build)")
    parser.add_argument("--work", help="work folder (default: a new one under the repository's .build-release)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not os.access(args.custody, os.X_OK):
        sys.exit("bench-share: build first: swift build -c release --product custody --scratch-path .build-release")
    work = args.work or tempfile.mkdtemp(prefix="bench-share-", dir=os.path.join(REPO_ROOT, ".build-release"))
    try:
        data = os.path.join(work, "data")
        os.makedirs(data)
        per_file = args.mib * MIB // args.files
        for i in range(args.files):
            with open(os.path.join(data, f"evidence-{i}.bin"), "wb") as f:
                left = per_file
                while left:
                    block = os.urandom(min(left, 8 * MIB))
                    f.write(block)
                    left -= len(block)
        base = dict(os.environ, CUSTODY_PASSPHRASE="bench-share-not-a-secret")
        granter = dict(base, CUSTODY_ARCHIVE=os.path.join(work, "granter"))
        grantee = dict(base, CUSTODY_ARCHIVE=os.path.join(work, "grantee"))
        for env, name in ((granter, "Granter"), (grantee, "Grantee")):
            run(args.custody, ["init", "--name", name, "--kdf", "insecure-test"], env)
        identity = os.path.join(work, "grantee.identity.json")
        run(args.custody, ["id", "export", "-o", identity], grantee)
        results = {}
        results["ingest"] = run(args.custody, ["ingest", data, "--case", "BENCH"], granter)
        _, _, out = run(
            args.custody,
            ["grant", "create", "--to", identity, "--case", "BENCH", "--expires", "1d", "--purpose", "bench", "--json"],
            granter,
        )
        grant = json.loads(out)["id"]
        bundle = os.path.join(work, "bench.custody-bundle")
        results["export"] = run(args.custody, ["bundle", "export", grant, "-o", bundle], granter)
        results["verify"] = run(args.custody, ["bundle", "verify", bundle], base)
        results["import"] = run(args.custody, ["bundle", "import", bundle, "--trust-granter"], grantee)
        mib = args.mib
        rows = {
            step: {"seconds": round(s, 2), "mb_per_s": round(mib * MIB / 1e6 / s, 1), "peak_rss_mib": round(rss / 1024, 1)}
            for step, (s, rss, _) in results.items()
        }
        for step in ("export", "import"):
            rows[step]["ratio_to_ingest"] = round(rows[step]["mb_per_s"] / rows["ingest"]["mb_per_s"], 2)
        report = {"mib": mib, "files": args.files, "bundle_bytes": os.path.getsize(bundle), "steps": rows}
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print(f"share benchmark: {mib} MiB in {args.files} files, bundle {os.path.getsize(bundle) / MIB:.0f} MiB")
            for step, row in rows.items():
                ratio = f"  {row['ratio_to_ingest']:.2f}x ingest" if "ratio_to_ingest" in row else ""
                target = ""
                if step in ("export", "import"):
                    ok = row["ratio_to_ingest"] >= 1.0 and row["peak_rss_mib"] < RSS_TARGET_MIB
                    target = "  PASS" if ok else "  FAIL"
                print(f"  {step:<7} {row['mb_per_s']:8.1f} MB/s  peak RSS {row['peak_rss_mib']:6.1f} MiB{ratio}{target}")
        return 0
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
