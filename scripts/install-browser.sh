#!/usr/bin/env bash
# Install Debian's chromium for the report's headless-browser test (tests/evaluate/test_verdict.py).
# Idempotent; needs root (or sudo) and the Debian package mirror. CI runs it before the tests.
set -euo pipefail
for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null 2>&1; then exit 0; fi
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium
