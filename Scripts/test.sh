#!/usr/bin/env bash
# The test job: set up, build everything (the CLI tests run the built binary), run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
# Style first (seconds): the toolchain's swift-format with the settings in .swift-format; any finding fails the
# job. Scripts/format.sh fixes what can be fixed automatically.
swift format lint --strict --recursive Sources Tests Package.swift
# The independent PyNaCl decryptor (Docs/examples) runs in the tests when PyNaCl can be had; best effort.
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import nacl.bindings' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check pynacl >/dev/null 2>&1 \
        || echo "custody tests: PyNaCl could not be installed; the independent decryptor test will be skipped" >&2
fi
# The SLIP-39 reference implementation (trezor/python-shamir-mnemonic) checks custody's shares both ways; best effort.
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import shamir_mnemonic' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check shamir-mnemonic >/dev/null 2>&1 \
        || echo "custody tests: shamir-mnemonic could not be installed; the SLIP-39 interop tests will be skipped" >&2
fi
# ExifTool (Debian libimage-exiftool-perl) reads the claims fixtures as an independent checker; best effort.
if [ ! -x /usr/bin/exiftool ]; then
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    { "${sudo_cmd[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq \
        --no-install-recommends libimage-exiftool-perl; } >/dev/null 2>&1 \
        || echo "custody tests: ExifTool could not be installed; the claims cross-check will be skipped" >&2
fi
# The S3 tests run against a real single-node Ceph on loopback (installed from Debian's packages when missing;
# about a minute). Without CUSTODY_TEST_S3=1 they are skipped with a notice; here they always run.
Scripts/ceph-s3.sh start
eval "$(Scripts/ceph-s3.sh env)"
trap 'CEPH_S3_PURGE=1 Scripts/ceph-s3.sh stop >/dev/null 2>&1 || true' EXIT
# A test that deadlocks on the archive lock fails after two minutes instead of hanging CI.
export CUSTODY_LOCK_TIMEOUT=120
swift build --build-tests
swift test --skip-build
# Then each libFuzzer target briefly on its committed seed corpus (Docs/FUZZING.md); a crash fails the job.
# The fuzz build reuses .build: only the project's own modules are recompiled with instrumentation (the
# dependencies are built plain either way), so it costs a few minutes instead of a second cold build. The
# instrumented modules cannot link `custody`: any later normal build recompiles them (SwiftPM tracks the flags).
CUSTODY_FUZZ_SCRATCH_PATH=.build Scripts/fuzz.sh all "${CUSTODY_FUZZ_SECONDS:-15}"
