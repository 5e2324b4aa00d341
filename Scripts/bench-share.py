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
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import DEFAULT_CUSTODY, MIB, REPO_ROOT, write_random_files  # noqa: E402
from bench_common import run as run_custody  # noqa: E402


def run(custody: str, args: list[str], env: dict) -> tuple[float, int, str]:
    return run_custody(custody, args, env, "bench-share")
RSS_TARGET_MIB = 128


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
        write_random_files(data, args.mib, args.files)
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
