"""Helpers shared by the benchmark scripts (standard library only)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CUSTODY = os.path.join(REPO_ROOT, ".build-release", "release", "custody")


def run(custody: str, args: list[str], env: dict, tag: str) -> tuple[float, int, str]:
    """Runs custody to completion as a child; returns (seconds, peak RSS KiB from wait4, stdout). Exits on failure."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        child = subprocess.Popen([custody] + args, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{tag}: custody {' '.join(args[:2])} failed: {err.read().decode()[-2000:]}")
        return seconds, usage.ru_maxrss, out.read().decode()


def write_random_files(folder: str, total_mib: int, files: int) -> None:
    """Writes `files` files of random bytes totalling `total_mib` MiB into `folder`."""
    os.makedirs(folder, exist_ok=True)
    for i in range(files):
        with open(os.path.join(folder, f"evidence-{i}.bin"), "wb") as f:
            left = total_mib * MIB // files
            while left:
                block = os.urandom(min(left, 8 * MIB))
                f.write(block)
                left -= len(block)
