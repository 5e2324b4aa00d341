#!/usr/bin/env python3
"""Benchmark Custody's S3 object store against the local Ceph (issue 6; not part of the test suite).

For each data set (one 1 GiB file; 20,000 random files of 1-64 KiB), in one run:
  * `custody ingest` and `custody verify --deep` with the filesystem store, then with the S3 store;
  * a plain parallel upload with boto3 (16 threads) of exactly as many objects of exactly the sizes the
    S3 ingest stored, to the same radosgw: what the store itself sustains.
Reported: MB/s of evidence, objects/s, S3/filesystem ratios, and Custody's S3 ingest as a share of the plain
upload's throughput (the target is at least 70%).

Needs: a release build (swift build -c release --product custody --scratch-path .build-release), the Ceph
store running with its environment loaded (Scripts/ceph-s3.sh start; eval "$(Scripts/ceph-s3.sh env)"),
and boto3.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import DEFAULT_CUSTODY, MIB, REPO_ROOT  # noqa: E402
from bench_common import run as run_custody  # noqa: E402

KIB = 1024


def log(message: str) -> None:
    print(f"[bench-s3] {message}", file=sys.stderr, flush=True)


def make_datasets(data: str, big_mib: int, small_count: int) -> list[dict]:
    sets = []
    if big_mib:
        folder = os.path.join(data, "big")
        os.makedirs(folder)
        with open(os.path.join(folder, "big.bin"), "wb") as f:
            for _ in range(big_mib):
                f.write(os.urandom(MIB))
        sets.append({"name": f"big-{big_mib}MiB", "path": folder, "files": 1, "bytes": big_mib * MIB})
    if small_count:
        folder = os.path.join(data, "small")
        os.makedirs(folder)
        rng = random.Random(6)
        total = 0
        for i in range(small_count):
            size = rng.randint(KIB, 64 * KIB)
            with open(os.path.join(folder, f"f{i:06d}.bin"), "wb") as f:
                f.write(os.urandom(size))
            total += size
        sets.append({"name": f"small-{small_count}", "path": folder, "files": small_count, "bytes": total})
    os.sync()
    return sets


def plain_upload(s3, bucket: str, prefix: str, sizes: list[int], threads: int) -> float:
    """Uploads random objects of `sizes` with `threads` threads; returns the seconds taken."""
    payloads = {}

    def payload(size: int) -> bytes:  # random bytes made before the clock starts, shared by equal sizes
        if size not in payloads:
            payloads[size] = os.urandom(size)
        return payloads[size]

    bodies = [payload(size) for size in sizes]
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda item: s3.put_object(Bucket=bucket, Key=f"{prefix}/{item[0]:08d}", Body=item[1]),
                      enumerate(bodies)))
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--small-count", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=16, help="boto3 upload threads")
    parser.add_argument("--custody", default=DEFAULT_CUSTODY)
    args = parser.parse_args()
    if not os.access(args.custody, os.X_OK):
        sys.exit("bench-s3: build first: swift build -c release --product custody --scratch-path .build-release")
    if not os.environ.get("AWS_ENDPOINT_URL_S3"):
        sys.exit('bench-s3: start the store and load its environment: Scripts/ceph-s3.sh start; eval "$(Scripts/ceph-s3.sh env)"')
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"],
                      config=Config(max_pool_connections=max(args.threads, 10)))
    bucket = f"custody-bench-{os.urandom(3).hex()}"
    s3.create_bucket(Bucket=bucket)
    work = tempfile.mkdtemp(prefix="bench-s3-", dir=os.path.join(REPO_ROOT, ".build-release"))
    results = []
    try:
        sets = make_datasets(os.path.join(work, "data"), args.big_mib, args.small_count)
        base = dict(os.environ, CUSTODY_PASSPHRASE="bench-s3-not-a-secret")
        for number, data in enumerate(sets):
            row = {"dataset": data["name"], "files": data["files"], "mb": round(data["bytes"] / 1e6, 1)}
            for store in ["fs", "s3"]:
                env = dict(base, CUSTODY_ARCHIVE=os.path.join(work, f"{store}-{number}"))
                init = ["init", "--name", "Bench", "--kdf", "insecure-test"]
                if store == "s3":
                    init += ["--objects", f"s3://{bucket}/custody-{number}"]
                run_custody(args.custody, init, env, "bench-s3")
                log(f"{data['name']}: ingest ({store})")
                seconds, rss, _ = run_custody(args.custody, ["ingest", data["path"]], env, "bench-s3")
                row[f"{store}_ingest_mb_s"] = round(data["bytes"] / seconds / 1e6, 1)
                row[f"{store}_ingest_files_s"] = round(data["files"] / seconds, 1)
                row[f"{store}_ingest_seconds"] = round(seconds, 2)
                row[f"{store}_ingest_rss_mib"] = round(rss / 1024, 1)
                log(f"{data['name']}: verify --deep ({store})")
                seconds, _, _ = run_custody(args.custody, ["verify", "--deep"], env, "bench-s3")
                row[f"{store}_verify_deep_mb_s"] = round(data["bytes"] / seconds / 1e6, 1)
            row["s3_vs_fs_ingest"] = round(row["s3_ingest_mb_s"] / row["fs_ingest_mb_s"], 2)
            row["s3_vs_fs_verify_deep"] = round(row["s3_verify_deep_mb_s"] / row["fs_verify_deep_mb_s"], 2)
            # The plain upload: exactly the objects the S3 ingest stored (count and sizes).
            sizes = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"custody-{number}/"):
                sizes += [item["Size"] for item in page.get("Contents", [])]
            log(f"{data['name']}: boto3 upload of {len(sizes)} objects, {args.threads} threads")
            seconds = plain_upload(s3, bucket, f"plain-{number}", sizes, args.threads)
            stored = sum(sizes)
            row["objects"] = len(sizes)
            row["stored_mb"] = round(stored / 1e6, 1)
            row["boto3_upload_seconds"] = round(seconds, 2)
            row["boto3_objects_s"] = round(len(sizes) / seconds, 1)
            row["s3_ingest_objects_s"] = round(len(sizes) / row["s3_ingest_seconds"], 1)
            row["s3_ingest_vs_boto3"] = round(seconds / row["s3_ingest_seconds"], 2)
            results.append(row)
            log(json.dumps(row))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
