#!/usr/bin/env bash
# The test job: set up, build everything (the CLI tests run the built binary), run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
swift build --build-tests
swift test --skip-build --parallel --num-workers 2
