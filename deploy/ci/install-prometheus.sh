#!/usr/bin/env bash
# Prometheus and promtool from Debian's `prometheus` package (idempotent): the alert-rule
# tests (promtool test rules), the PromQL check against a live stack, and `make up`.
# Only the binaries are used; the package's own systemd service is stopped and disabled.
set -euo pipefail
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "missing system package: prometheus (install it, or run this script as root)" >&2
  exit 1
fi
apt-get update -qq
# policy-rc.d 101: do not start the packaged service during installation.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1; fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
if [[ $created_policy -eq 1 ]]; then rm -f "$policy"; fi
