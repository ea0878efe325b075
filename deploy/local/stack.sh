#!/usr/bin/env bash
# The local stack: broker, topics, fake Stripe, local Paddle, local Salesforce, router,
# sinks, control plane, monitor, sample configurations, credentials and bills.
# `stack.sh up` returns once everything is running (services keep running in the
# background); `stack.sh down` stops them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root="$PWD"
state="$root/.local/stack"
logs="$state/logs"
py="$root/.venv/bin/python"
billsync="$root/.venv/bin/billsync"
# The encryption key, the database and the logs are for this user only: everything the
# stack writes is created owner-only, and files an older version left open are closed.
umask 077
mkdir -p "$logs"
chmod 700 "$root/.local" "$state" "$logs"
chmod 600 "$state"/credentials.key "$state"/billsync.db* "$logs"/*.log 2>/dev/null || true

export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}"
if [[ ! -f "$state/credentials.key" ]]; then
  "$billsync" credentials keygen --out "$state/credentials.key" >/dev/null
fi
export BILLSYNC_CREDENTIALS_KEY="$(cat "$state/credentials.key")"
export BILLSYNC_STRIPE_API_BASE="http://127.0.0.1:12111"
export BILLSYNC_PADDLE_SANDBOX_API_BASE="http://127.0.0.1:12112"
export BILLSYNC_XERO_API_BASE="http://127.0.0.1:12114"
export BILLSYNC_XERO_TOKEN_URL="http://127.0.0.1:12114/connect/token"
export BILLSYNC_CONTROL_URL="http://127.0.0.1:8700"
export BILLSYNC_CONTROL_ADMIN_TOKENS='["local-admin-token"]'
export BILLSYNC_CONTROL_READ_TOKENS='["local-read-token"]'
export BILLSYNC_CONTROL_TOKEN="local-admin-token"
export BILLSYNC_CONTROL_DATABASE_URL="sqlite+aiosqlite:///$state/billsync.db"
export BILLSYNC_MONITOR_ADMIN_TOKEN="local-admin-token"
export BILLSYNC_MONITOR_SMTP_HOST=127.0.0.1 BILLSYNC_MONITOR_SMTP_PORT=8025
export BILLSYNC_WEBHOOKS_PORT=8090

start() {  # start NAME PORT COMMAND...: background service with its own log and pid file
  local name=$1 port=$2; shift 2
  if [[ -f "$state/$name.pid" ]] && kill -0 "$(cat "$state/$name.pid")" 2>/dev/null; then
    echo "  $name already running"; return
  fi
  BILLSYNC_HTTP_PORT="$port" nohup "$@" >"$logs/$name.log" 2>&1 &
  echo $! > "$state/$name.pid"
  echo "  $name started (log: .local/stack/logs/$name.log, http :$port)"
}

wait_http() {  # wait_http URL NAME
  for _ in $(seq 1 60); do
    if curl -fsS "$1" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "  $2 did not answer at $1; see .local/stack/logs/$2.log" >&2
  return 1
}

paddle_ids() {  # paddle_ids PREFIX: the local Paddle ids of the 12 sample accounts
  for n in $(seq 1 12); do printf '%s_local%021d\n' "$1" "$n"; done
}

paddle_mappings() {  # Customer, Address, Business mappings of acc-0001..12 (idempotent)
  local n acc table prefix code
  for n in $(seq 1 12); do
    acc=$(printf 'acc-%04d' "$n")
    for table in Customer:ctm Address:add Business:biz; do
      prefix=${table#*:}; table=${table%%:*}
      code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:8700/externalmappings \
        -H "Authorization: Bearer $BILLSYNC_CONTROL_TOKEN" -H 'Content-Type: application/json' \
        -d "{\"id\": \"map-paddle-$acc-$table\", \"externalSystem\": \"Paddle\",
             \"externalTable\": \"$table\", \"externalId\": \"$(printf '%s_local%021d' "$prefix" "$n")\",
             \"m3terEntity\": \"Account\", \"m3terId\": \"$acc\"}")
      # 201 created, 409 already there (a second `make up`); anything else is a real error.
      if [[ $code != 201 && $code != 409 ]]; then
        echo "the $table mapping of $acc was refused (HTTP $code)" >&2; return 1
      fi
    done
  done
  echo "  Paddle external mappings for acc-0001..acc-0012 created"
}

up() {
  deploy/kafka/scripts/kafka.sh up
  "$billsync" topics create >/dev/null
  echo "billsync local stack:"
  # A local mail catcher: the monitor's auto-disable e-mails land in its log.
  start smtp 8025 "$py" -m aiosmtpd -n -c aiosmtpd.handlers.Debugging -l 127.0.0.1:8025
  # The local Stripe sends invoice webhooks (signed) to the webhooks service.
  start fake-stripe 12111 "$py" -m fakes.stripe --port 12111 \
    --keys sk_test_local_billsync --customers "$(seq -f 'acc-%04g' 1 12 | paste -sd, -)" \
    --webhook-url http://127.0.0.1:8090/webhooks/stripe/cfg-stripe-us \
    --webhook-secret whsec_local_billsync
  wait_http http://127.0.0.1:12111/_fake/stats fake-stripe
  # The local Paddle (sandbox): one customer, address and business per sample account.
  start fake-paddle 12112 "$py" -m fakes.paddle --port 12112 \
    --keys pdl_sdbx_apikey_local_billsync --customers "$(paddle_ids ctm | paste -sd, -)"
  wait_http http://127.0.0.1:12112/_fake/stats fake-paddle
  # The local Salesforce: the billsync objects, one connected app (client credentials), and
  # an Account (with billsync's account external id) for every sample account.
  start fake-salesforce 12113 "$py" -m fakes.salesforce --port 12113 \
    --client-id billsync-local-app --client-secret local-secret \
    --accounts "$(for i in $(seq 1 12); do printf 'acc-%04d=Customer %d,' "$i" "$i"; done)"
  wait_http http://127.0.0.1:12113/_fake/state fake-salesforce
  # The local Xero: one organisation reached by a Custom Connection (client credentials).
  start fake-xero 12114 "$py" -m fakes.xero --port 12114 \
    --custom-client-id local-xero-custom --custom-client-secret local-xero-secret
  wait_http http://127.0.0.1:12114/_fake/stats fake-xero
  "$billsync" credentials apply deploy/local/credentials.yaml
  start control 8700 "$billsync" control
  wait_http http://127.0.0.1:8700/health control
  "$billsync" configs apply deploy/local/configs.yaml   # through the control plane
  paddle_mappings
  start router 9301 "$billsync" router
  start stripe-sink 9302 "$billsync" stripe-sink
  start paddle-sink 9304 "$billsync" paddle-sink
  start salesforce-sink 9306 "$billsync" salesforce-sink
  start monitor 9303 "$billsync" monitor
  start xero-sink 9305 "$billsync" xero-sink
  start webhooks 8090 "$billsync" webhooks
  start prometheus 9090 deploy/prometheus/local.sh "$state"   # scrapes every service, alert rules loaded
  wait_http http://127.0.0.1:9301/health router
  wait_http http://127.0.0.1:9302/health stripe-sink
  wait_http http://127.0.0.1:9304/health paddle-sink
  wait_http http://127.0.0.1:9306/health salesforce-sink
  wait_http http://127.0.0.1:9305/health xero-sink
  "$billsync" produce-sample --accounts 12 --bills 40 --lines 12
  echo
  echo "Give it a few seconds, then look at:"
  echo "  the web console:                http://127.0.0.1:8700/console/  (sign in with the token local-admin-token, or local-read-token to look only)"
  echo "  invoices in the local Stripe:   curl -s http://127.0.0.1:12111/_fake/state | python3 -m json.tool | less"
  echo "  transactions in the local Paddle: curl -s http://127.0.0.1:12112/_fake/state | python3 -m json.tool | less"
  echo "  records in the local Salesforce: curl -s http://127.0.0.1:12113/_fake/state | python3 -m json.tool | less"
  echo "  invoices in the local Xero:     curl -s http://127.0.0.1:12114/_fake/state | python3 -m json.tool | less"
  echo "  router metrics:                 curl -s http://127.0.0.1:9301/metrics | grep billsync_router"
  echo "  Stripe sink metrics:            curl -s http://127.0.0.1:9302/metrics | grep billsync_sink"
  echo "  integration runs (API):         curl -s -H 'Authorization: Bearer local-read-token' http://127.0.0.1:8700/integrationruns"
  echo "  integration runs (CLI):         BILLSYNC_CONTROL_URL=$BILLSYNC_CONTROL_URL BILLSYNC_CONTROL_TOKEN=local-read-token .venv/bin/billsync runs list"
  echo "  Prometheus (graphs, alerts):    http://127.0.0.1:9090/alerts  (dashboards: deploy/grafana/)"
  echo "  service logs:                   .local/stack/logs/"
  echo "Stop everything with: make down"
}

down() {
  for pidfile in "$state"/*.pid; do
    [[ -e "$pidfile" ]] || continue
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
      echo "stopped $(basename "$pidfile" .pid)"
    fi
    rm -f "$pidfile"
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
