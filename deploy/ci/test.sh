#!/usr/bin/env bash
# The test command (README: `make test`): lint, types, schema freshness, then the whole
# suite against a real Kafka broker. Starts the local broker when none is configured and
# stops it again afterwards if it started it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

echo "== lint and types"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m shared.schemas check

started_broker=0
if [[ -z "${KAFKA_BOOTSTRAP_SERVERS_EXTERNAL:-}" ]]; then
  if ! deploy/kafka/scripts/kafka.sh status; then
    deploy/kafka/scripts/kafka.sh up
    started_broker=1
  fi
  export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092
fi
trap '[[ $started_broker == 1 ]] && deploy/kafka/scripts/kafka.sh down' EXIT

echo "== tests (broker at $KAFKA_BOOTSTRAP_SERVERS)"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
