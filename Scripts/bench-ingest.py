#!/usr/bin/env python3
"""Benchmark Custody's ingest against `restic backup`, in one run, on the same data.

Why: Custody's ingest encrypts, hashes and stores every file much as a backup tool does, so restic
(a mature, widely used encrypted backup tool) is the yardstick. Both tools run in the same process
of this script, one after the other, on the same generated files, so a busy machine affects both
alike and the custody/restic *ratio* stays meaningful even when absolute times are noisy.

Data sets (generated into the work dir):
  big    one file of --big-mib MiB of random, incompressible bytes (default 1024 MiB)
  small  one folder of --small-count random files of 1-64 KiB (default 20000; sizes from a fixed seed)

For each data set and tool: a fresh, empty repository/archive (not timed), then the ingest/backup
as a child process, timed with time.monotonic(), its peak RSS taken from os.wait4(). Each
measurement is repeated --repeat times; the fastest run is reported, with the highest peak RSS seen.
No caches are dropped: the data is written just before the runs and sits in the page cache for both.

Python 3 standard library only. Exit 0 whatever the PASS/FAIL targets say; exit 1 if a tool fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20
KIB = 1 << 10
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRATCH = ".build-release"
DEFAULT_CUSTODY = os.path.join(REPO_ROOT, SCRATCH, "release", "custody")
PASSWORD = "bench-ingest-not-a-secret"
RSS_TARGET_MIB = 128


class BenchError(Exception):
    """A tool failed or something needed is missing; the message says which and why."""


def log(message: str) -> None:
    print(f"bench-ingest: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Tools


def ensure_restic() -> str:
    path = shutil.which("restic")
    if path:
        return path
    log("restic not found; installing it with apt-get")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (sudo + ["apt-get", "update", "-qq"], sudo + ["apt-get", "install", "-y", "restic"]):
        if subprocess.run(cmd, env=env).returncode != 0:
            raise BenchError(f"`{' '.join(cmd)}` failed; install restic by hand and run again")
    path = shutil.which("restic")
    if not path:
        raise BenchError("restic is still not on PATH after apt-get install restic")
    return path


def ensure_custody(path: str | None, build: bool) -> str:
    if path:
        path = os.path.abspath(path)
        if not os.access(path, os.X_OK):
            raise BenchError(f"--custody {path} is not an executable file")
        return path
    if os.access(DEFAULT_CUSTODY, os.X_OK):
        return DEFAULT_CUSTODY
    if not build:
        raise BenchError(f"{DEFAULT_CUSTODY} is missing and --no-build was given; build it or pass --custody")
    cmd = ["swift", "build", "-c", "release", "--product", "custody", "--scratch-path", SCRATCH]
    log(f"building custody: {' '.join(cmd)} (may wait for another build's lock)")
    if subprocess.run(cmd, cwd=REPO_ROOT, stdout=sys.stderr).returncode != 0:
        raise BenchError("the release build of custody failed (see the compiler output above)")
    if not os.access(DEFAULT_CUSTODY, os.X_OK):
        raise BenchError(f"the build succeeded but {DEFAULT_CUSTODY} is not there")
    return DEFAULT_CUSTODY


def tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return (out.stdout or out.stderr).strip().splitlines()[0] if out.returncode == 0 else "?"
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "?"


def custody_sha256_bench(custody: str) -> str | None:
    """Runs `custody bench sha256` when the binary has it; returns its line, or None."""
    probe = subprocess.run([custody, "bench", "--help"], capture_output=True, text=True)
    if probe.returncode != 0:
        return None
    out = subprocess.run([custody, "bench", "sha256"], capture_output=True, text=True)
    if out.returncode != 0:
        return f"(custody bench sha256 failed, exit {out.returncode}: {out.stderr.strip()[:200]})"
    return out.stdout.strip()


# ---------------------------------------------------------------------------------------------
# Data


def write_random_file(path: str, size: int) -> None:
    with open(path, "wb") as f:
        remaining = size
        while remaining > 0:
            n = min(MIB, remaining)
            f.write(os.urandom(n))
            remaining -= n


def make_datasets(data_dir: str, big_mib: int, small_count: int, seed: int) -> list[dict]:
    datasets = []
    if big_mib > 0:
        big_dir = os.path.join(data_dir, "big")
        os.makedirs(big_dir)
        log(f"writing {big_mib} MiB of random bytes")
        write_random_file(os.path.join(big_dir, "big.bin"), big_mib * MIB)
        datasets.append({"name": f"big-{big_mib}MiB", "path": big_dir, "files": 1, "bytes": big_mib * MIB})
    if small_count > 0:
        small_dir = os.path.join(data_dir, "small")
        os.makedirs(small_dir)
        log(f"writing {small_count} random files of 1-64 KiB")
        rng = random.Random(seed)
        total = 0
        for i in range(small_count):
            size = rng.randint(1 * KIB, 64 * KIB)
            with open(os.path.join(small_dir, f"f{i:06d}.bin"), "wb") as f:
                f.write(os.urandom(size))
            total += size
        datasets.append({"name": f"small-{small_count}", "path": small_dir, "files": small_count, "bytes": total})
    os.sync()  # flush dirty data now, so write-back does not land inside the first measurement
    return datasets


# ---------------------------------------------------------------------------------------------
# Measurement


def run_checked(cmd: list[str], env: dict, what: str) -> None:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise BenchError(f"{what} failed (exit {out.returncode}): `{' '.join(cmd)}`\n{out.stderr.strip()[-2000:]}")


def measure(cmd: list[str], env: dict, stdout_path: str, stderr_path: str) -> tuple[float, int, int]:
    """Runs cmd as a child; returns (wall seconds, peak RSS KiB, exit code)."""
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        start = time.monotonic()
        child = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except BaseException:
            child.kill()
            child.wait()
            raise
        seconds = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    child.returncode = code  # reaped by wait4; tell Popen so it does not try again
    return seconds, usage.ru_maxrss, code  # ru_maxrss is in KiB on Linux


def tail(path: str, limit: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").strip()[-limit:]
    except OSError:
        return ""


def bench_custody(custody: str, ds: dict, work: str, run: int) -> tuple[float, int]:
    archive = os.path.join(work, "repos", f"custody-{ds['name']}-{run}")
    env = dict(os.environ, CUSTODY_PASSPHRASE=PASSWORD)
    env.pop("CUSTODY_ARCHIVE", None)
    run_checked(
        [custody, "init", "--archive", archive, "--name", "Bench", "--kdf", "insecure-test"],
        env, "custody init",
    )
    os.sync()
    out, err = archive + ".stdout.json", archive + ".stderr"
    seconds, rss, code = measure([custody, "ingest", "--archive", archive, ds["path"], "--json"], env, out, err)
    if code != 0:
        raise BenchError(f"custody ingest of {ds['name']} failed (exit {code}):\n{tail(err)}")
    try:
        with open(out, "rb") as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        raise BenchError(f"custody ingest of {ds['name']} printed no valid JSON ({e}):\n{tail(out)}")
    items, size = len(report.get("items", [])), sum(i.get("size", 0) for i in report.get("items", []))
    if items != ds["files"] or size != ds["bytes"] or report.get("skipped") or report.get("refused"):
        raise BenchError(
            f"custody ingest of {ds['name']} reported {items} items / {size} bytes, expected "
            f"{ds['files']} / {ds['bytes']} (skipped {len(report.get('skipped', []))}, "
            f"refused {len(report.get('refused', []))})"
        )
    shutil.rmtree(archive)
    for p in (out, err):
        os.remove(p)
    return seconds, rss


def bench_restic(restic: str, ds: dict, work: str, run: int, open_times: list[float]) -> tuple[float, int]:
    repo = os.path.join(work, "repos", f"restic-{ds['name']}-{run}")
    cache = os.path.join(work, "restic-cache")  # restic's cache stays on (the default), just kept in the work dir
    env = dict(os.environ, RESTIC_PASSWORD=PASSWORD, RESTIC_CACHE_DIR=cache)
    for k in ("RESTIC_REPOSITORY", "RESTIC_REPOSITORY_FILE", "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND"):
        env.pop(k, None)
    run_checked([restic, "init", "--repo", repo], env, "restic init")
    # Not part of the figures: what opening the repository costs restic (mostly its scrypt key
    # derivation, which restic calibrates at init), so small data sets can be read fairly.
    start = time.monotonic()
    run_checked([restic, "cat", "config", "--repo", repo], env, "restic cat config")
    open_times.append(time.monotonic() - start)
    os.sync()
    out, err = repo + ".stdout", repo + ".stderr"
    seconds, rss, code = measure([restic, "backup", "--repo", repo, ds["path"]], env, out, err)
    if code != 0:
        raise BenchError(f"restic backup of {ds['name']} failed (exit {code}):\n{tail(err)}")
    m = re.search(r"processed (\d+) files", tail(out, 100000))
    if not m or int(m.group(1)) != ds["files"]:
        raise BenchError(f"restic backup of {ds['name']} did not report {ds['files']} files processed:\n{tail(out)}")
    shutil.rmtree(repo)
    shutil.rmtree(cache, ignore_errors=True)
    for p in (out, err):
        os.remove(p)
    return seconds, rss


# ---------------------------------------------------------------------------------------------
# Report


def figures(ds: dict, tool: str, times: list[float], rss_kib: list[int]) -> dict:
    best = min(times)
    return {
        "dataset": ds["name"],
        "tool": tool,
        "files": ds["files"],
        "bytes": ds["bytes"],
        "seconds": best,
        "all_seconds": times,
        "mb_per_s": ds["bytes"] / 1e6 / best,
        "files_per_s": ds["files"] / best,
        "peak_rss_mib": max(rss_kib) / 1024,
    }


def render(results: list[dict], ratios: dict, checks: list[dict], context: dict) -> str:
    lines = []
    lines.append(
        f"custody ingest vs restic backup — {context['when']}  host {context['host']} "
        f"({context['cpus']} CPUs, load avg at start {context['load_start']})"
    )
    lines.append(f"custody: {context['custody']} ({context['custody_version']})")
    lines.append(f"restic:  {context['restic']} ({context['restic_version']})")
    lines.append(f"repeat {context['repeat']} (fastest run shown; peak RSS is the highest of the runs)")
    if context.get("sha256_bench"):
        lines.append(f"custody bench sha256: {context['sha256_bench']}")
    lines.append("")
    header = f"{'dataset':<14} {'tool':<8} {'seconds':>9} {'MB/s':>9} {'files/s':>10} {'peak RSS MiB':>13} {'custody/restic':>15}"
    lines.append(header)
    lines.append("-" * len(header))
    for r in results:
        ratio = f"{ratios[r['dataset']]:.2f}" if r["tool"] == "custody" and r["dataset"] in ratios else ""
        lines.append(
            f"{r['dataset']:<14} {r['tool']:<8} {r['seconds']:>9.2f} {r['mb_per_s']:>9.1f} "
            f"{r['files_per_s']:>10.1f} {r['peak_rss_mib']:>13.1f} {ratio:>15}"
        )
    lines.append("")
    lines.append("custody/restic = custody throughput / restic throughput (same data, so MB/s and files/s agree)")
    lines.append(
        f"(included in restic's times: opening its repository, ~{context['restic_open_seconds']:.2f} s, mostly its "
        "scrypt key derivation; custody's archives use --kdf insecure-test)"
    )
    lines.append("")
    for c in checks:
        lines.append(f"{'PASS' if c['pass'] else 'FAIL'}  {c['dataset']:<14} {c['check']}  ({c['detail']})")
    lines.append(f"load avg at end {context['load_end']}")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", help="where to generate data and repositories (default: a fresh temp dir in /var/tmp)")
    p.add_argument("--keep", action="store_true", help="keep the generated data and work dir")
    p.add_argument("--big-mib", type=int, default=1024, help="size of the one big file in MiB (default 1024; 0 skips)")
    p.add_argument("--small-count", type=int, default=20000, help="number of 1-64 KiB files (default 20000; 0 skips)")
    p.add_argument("--seed", type=int, default=20260302, help="random seed for the small files' sizes")
    p.add_argument("--repeat", type=int, default=1, help="runs per tool and data set; the fastest is reported")
    p.add_argument("--custody", help=f"custody binary (default {os.path.relpath(DEFAULT_CUSTODY, REPO_ROOT)})")
    p.add_argument("--no-build", action="store_true", help="do not build custody when the default binary is missing")
    p.add_argument("--json", action="store_true", help="print the figures as JSON on stdout (the table goes to stderr)")
    args = p.parse_args()
    if args.repeat < 1 or args.big_mib < 0 or args.small_count < 0 or args.big_mib + args.small_count == 0:
        p.error("--repeat must be >= 1, sizes >= 0, and at least one data set non-empty")

    created_workdir = False
    if args.workdir:
        work = os.path.abspath(args.workdir)
        if not os.path.isdir(work):
            os.makedirs(work)
            created_workdir = True
        for sub in ("data", "repos", "restic-cache"):
            if os.path.exists(os.path.join(work, sub)):
                raise BenchError(f"{os.path.join(work, sub)} already exists; remove it or choose another --workdir")
    else:
        work = tempfile.mkdtemp(prefix="custody-bench-", dir="/var/tmp")
        created_workdir = True

    try:
        restic = ensure_restic()
        custody = ensure_custody(args.custody, build=not args.no_build)
        context = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "custody": custody,
            "custody_version": tool_version([custody, "--version"]),
            "restic": restic,
            "restic_version": tool_version([restic, "version"]),
            "repeat": args.repeat,
            "workdir": work,
        }
        log(f"work dir {work}")
        context["sha256_bench"] = custody_sha256_bench(custody)
        os.makedirs(os.path.join(work, "repos"))
        datasets = make_datasets(os.path.join(work, "data"), args.big_mib, args.small_count, args.seed)

        results, ratios, checks, restic_open = [], {}, [], []
        for ds in datasets:
            times = {"custody": [], "restic": []}
            rss = {"custody": [], "restic": []}
            for run in range(args.repeat):
                # Alternate which tool goes first, so neither always inherits the other's write-back.
                order = ["custody", "restic"] if run % 2 == 0 else ["restic", "custody"]
                for tool in order:
                    log(f"{ds['name']}: {tool} run {run + 1}/{args.repeat}")
                    if tool == "custody":
                        s, k = bench_custody(custody, ds, work, run)
                    else:
                        s, k = bench_restic(restic, ds, work, run, restic_open)
                    log(f"  {s:.2f} s, peak RSS {k / 1024:.1f} MiB")
                    times[tool].append(s)
                    rss[tool].append(k)
                    os.sync()
            c, r = figures(ds, "custody", times["custody"], rss["custody"]), figures(ds, "restic", times["restic"], rss["restic"])
            results += [c, r]
            ratios[ds["name"]] = c["mb_per_s"] / r["mb_per_s"]
            checks.append({
                "dataset": ds["name"],
                "check": f"custody peak RSS < {RSS_TARGET_MIB} MiB",
                "pass": c["peak_rss_mib"] < RSS_TARGET_MIB,
                "detail": f"{c['peak_rss_mib']:.1f} MiB",
            })
            checks.append({
                "dataset": ds["name"],
                "check": "custody >= restic throughput",
                "pass": c["mb_per_s"] >= r["mb_per_s"],
                "detail": f"ratio {ratios[ds['name']]:.2f}",
            })
        context["restic_open_seconds"] = min(restic_open)
        context["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())

        table = render(results, ratios, checks, context)
        if args.json:
            print(table, file=sys.stderr)
            doc = {
                "context": context,
                "datasets": [{k: ds[k] for k in ("name", "files", "bytes")} for ds in datasets],
                "results": results,
                "ratio_custody_over_restic": ratios,
                "checks": checks,
            }
            print(json.dumps(doc, indent=2))
        else:
            print(table)
        return 0
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            for sub in ("data", "repos", "restic-cache"):
                shutil.rmtree(os.path.join(work, sub), ignore_errors=True)
            if created_workdir:
                shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench-ingest: FAILED — {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("bench-ingest: interrupted", file=sys.stderr)
        sys.exit(130)
