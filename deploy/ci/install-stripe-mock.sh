#!/usr/bin/env bash
# stripe-mock: Stripe's own request validator (every request checked against Stripe's
# OpenAPI document, answered with fixtures, stateless). tests/integration/test_stripe_mock.py
# drives every Stripe setting through the sink against it. Idempotent: nothing happens when
# the wanted version is already in $STRIPE_MOCK_BIN_DIR.
set -euo pipefail
version=v0.203.0
bin_dir=${STRIPE_MOCK_BIN_DIR:-/usr/local/bin}
target=$bin_dir/stripe-mock
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH=$PATH:/usr/local/go/bin
fi
if [[ -x $target ]] && command -v go >/dev/null 2>&1 \
    && go version -m "$target" 2>/dev/null | grep -q "stripe-mock[[:space:]]*$version"; then
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  # stripe-mock needs Go 1.22+; Debian 12's golang-go is 1.19, bookworm-backports has 1.22+.
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go
  else
    echo "stripe-mock needs Go (1.22+) to build: install it, or run as root" >&2
    exit 1
  fi
fi
mkdir -p "$bin_dir" 2>/dev/null || true
if [[ ! -w $bin_dir ]]; then
  # Not root: the test also looks in ~/go/bin.
  bin_dir=$HOME/go/bin
  target=$bin_dir/stripe-mock
  mkdir -p "$bin_dir"
fi
# GOTOOLCHAIN=auto lets an older go fetch the toolchain stripe-mock's go.mod asks for.
GOBIN=$bin_dir GOTOOLCHAIN=auto GOFLAGS=-mod=mod go install "github.com/stripe/stripe-mock@$version"
"$target" -version >/dev/null
