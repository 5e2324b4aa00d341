#!/usr/bin/env bash
# The test job: set up, build everything (the CLI tests run the built binary), run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
# The independent PyNaCl decryptor (Docs/examples) runs in the tests when PyNaCl can be had; best effort.
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import nacl.bindings' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check pynacl >/dev/null 2>&1 \
        || echo "custody tests: PyNaCl could not be installed; the independent decryptor test will be skipped" >&2
fi
# A test that deadlocks on the archive lock fails after two minutes instead of hanging CI.
export CUSTODY_LOCK_TIMEOUT=120
swift build --build-tests
swift test --skip-build
