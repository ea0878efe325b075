#!/usr/bin/env bash
# Runs Prometheus (Debian's package) for the local stack: deploy/prometheus/local.yml,
# data under the given state folder, on 127.0.0.1:9090. Started by deploy/local/stack.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${1:?usage: local.sh STATE_DIR}"
if ! command -v prometheus >/dev/null 2>&1; then
  echo "prometheus is not installed: run deploy/ci/install-prometheus.sh as root" >&2
  exit 1
fi
mkdir -p "$state/prometheus"
exec prometheus --config.file="$here/local.yml" --storage.tsdb.path="$state/prometheus" \
  --web.listen-address=127.0.0.1:9090 --storage.tsdb.retention.time=2d --log.level=warn
