#!/usr/bin/env bash
# kustomize for the Kubernetes manifest test (tests/ops/test_k8s.py), idempotent. Debian
# bookworm packages no kubectl, so where neither `kubectl kustomize` nor `kustomize` is on
# the machine, kustomize is built from its Go module (the Go toolchain is on the machine).
set -euo pipefail
if command -v kustomize >/dev/null 2>&1; then exit 0; fi
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then exit 0; fi
go=$(command -v go || echo /usr/local/go/bin/go)
if [[ ! -x $go ]]; then
  echo "kustomize is missing and there is no Go toolchain to build it" >&2
  exit 1
fi
GOBIN=/usr/local/bin "$go" install sigs.k8s.io/kustomize/kustomize/v5@v5.5.0
