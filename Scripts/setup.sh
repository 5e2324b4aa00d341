#!/usr/bin/env bash
# Installs what Custody needs to build on Debian, when it is missing. Idempotent; safe to run every time.
# Needs the Swift 6.3 toolchain on PATH (a stated prerequisite) and root (or sudo) for apt-get.
set -euo pipefail

if ! command -v swift >/dev/null 2>&1; then
    echo "custody setup: the Swift 6.3 toolchain is not on PATH — install it from swift.org first" >&2
    exit 69
fi

missing=()
pkg-config --exists libsodium 2>/dev/null || missing+=(libsodium-dev)
[ -e /usr/include/sqlite3.h ] || missing+=(libsqlite3-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)

if [ ${#missing[@]} -gt 0 ]; then
    echo "custody setup: installing ${missing[*]}" >&2
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
