#!/usr/bin/env bash
# Formats the Swift sources with the toolchain's swift-format (.swift-format holds the settings), then lints strictly.
set -euo pipefail
cd "$(dirname "$0")/.."
swift format format --in-place --recursive Sources Tests Package.swift
swift format lint --strict --recursive Sources Tests Package.swift
