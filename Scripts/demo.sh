#!/usr/bin/env bash
# The main job: set up, build, and run the narrated `custody demo` in a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
swift build --product custody
exec .build/debug/custody demo "$@"
