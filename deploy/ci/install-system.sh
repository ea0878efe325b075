#!/usr/bin/env bash
# System packages the test suite needs on a fresh Debian machine (idempotent).
set -euo pipefail
need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
# PostgreSQL server binaries: the control-plane store is also tested against PostgreSQL
# (deploy/postgres/pg.sh runs a throwaway cluster from them).
if apt-cache policy postgresql 2>/dev/null | grep -q 'Installed: (none)' \
    || ! compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null; then
  need+=(postgresql)
fi
if [[ ${#need[@]} -gt 0 ]]; then
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing system packages: ${need[*]} (install them, or run as root)" >&2
    exit 1
  fi
fi
bash "$(dirname "${BASH_SOURCE[0]}")/install-stripe-mock.sh"
bash "$(dirname "${BASH_SOURCE[0]}")/install-prometheus.sh"
bash "$(dirname "${BASH_SOURCE[0]}")/install-kustomize.sh"
bash "$(dirname "${BASH_SOURCE[0]}")/install-browser.sh"
