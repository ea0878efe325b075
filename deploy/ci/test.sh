#!/usr/bin/env bash
# The test command (README: `make test`): lint, types, schema freshness, then the whole
# suite against a real Kafka broker. Starts the local broker when none is configured and
# stops it again afterwards if it started it; likewise a throwaway PostgreSQL cluster
# (deploy/postgres/pg.sh) so the control-plane store is tested on PostgreSQL as well as
# SQLite (BILLSYNC_TEST_POSTGRES_URL; set it yourself to use another server).
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

started_pg=0
if [[ -z "${BILLSYNC_TEST_POSTGRES_URL:-}" ]]; then
  if compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null; then
    deploy/postgres/pg.sh status || started_pg=1
    BILLSYNC_TEST_POSTGRES_URL="$(deploy/postgres/pg.sh up | tail -n1)"
    export BILLSYNC_TEST_POSTGRES_URL
  else
    echo "warning: PostgreSQL not installed; the store is tested on SQLite only" >&2
  fi
fi

cleanup() {
  if [[ $started_pg == 1 ]]; then deploy/postgres/pg.sh down || true; fi
  if [[ $started_broker == 1 ]]; then deploy/kafka/scripts/kafka.sh down || true; fi
}
trap cleanup EXIT

echo "== tests (broker at $KAFKA_BOOTSTRAP_SERVERS, PostgreSQL: ${BILLSYNC_TEST_POSTGRES_URL:-none})"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
