#!/usr/bin/env bash
# The browser the console's tests drive (tests/browser): Debian's Chromium, launched by
# Playwright from /usr/bin/chromium (Playwright's own browser download is not used).
# Idempotent: does nothing when Chromium is already installed.
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "missing system package: chromium (install it, or run as root)" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
