#!/usr/bin/env bash
# Local single-node Kafka (KRaft) for development and tests.
#   kafka.sh up      resolve jars (once, cached), format storage (once), start, wait until ready
#   kafka.sh down    stop the broker (a stopped broker is not an error)
#   kafka.sh status  exit 0 when the broker answers
# Idempotent: `up` on a running broker and `down` on a stopped one both succeed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lib="$here/lib"
data="${KAFKA_DATA_DIR:-$here/data}"
pidfile="$data/kafka.pid"
logfile="$data/kafka.log"
heap="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
port=9092
ready_timeout="${KAFKA_READY_TIMEOUT:-120}"

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

running() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

resolve_jars() {
  if [[ -f "$lib/.resolved" ]]; then return; fi
  echo "kafka: resolving broker jars with Maven (first run only)..."
  mkdir -p "$lib"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$lib" -DincludeScope=runtime
  touch "$lib/.resolved"
}

format_storage() {
  mkdir -p "$data/logs"
  if [[ -f "$data/logs/meta.properties" ]]; then return; fi
  cp "$here/server.properties" "$data/server.properties"
  echo "log.dirs=$data/logs" >> "$data/server.properties"
  local cluster_id
  cluster_id="$(java -cp "$lib/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
  java -cp "$lib/*" -Dlog4j.configuration="file:$here/log4j.properties" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$data/server.properties" >/dev/null
}

up() {
  if running && answers; then echo "kafka: already running on 127.0.0.1:$port"; return; fi
  if answers; then echo "kafka: port $port already answers (another broker?); using it"; return; fi
  resolve_jars
  format_storage
  echo "kafka: starting on 127.0.0.1:$port (data in $data)"
  # Every partition keeps segment files open: allow the broker as many as the system does.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  # shellcheck disable=SC2086
  nohup java $heap -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j.configuration="file:$here/log4j.properties" \
      -cp "$lib/*" kafka.Kafka "$data/server.properties" >"$logfile" 2>&1 &
  echo $! > "$pidfile"
  local waited=0
  until answers && grep -q "Kafka Server started" "$logfile"; do
    if ! running; then echo "kafka: broker exited; last log lines:"; tail -n 30 "$logfile"; exit 1; fi
    if (( waited >= ready_timeout )); then echo "kafka: not ready after ${ready_timeout}s"; tail -n 30 "$logfile"; exit 1; fi
    sleep 1; waited=$((waited + 1))
  done
  echo "kafka: ready after ${waited}s"
}

down() {
  if ! running; then echo "kafka: not running"; rm -f "$pidfile"; return; fi
  local pid; pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "kafka: stopped"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) answers ;;
  reset) down; rm -rf "$data"; echo "kafka: data removed" ;;
  *) echo "usage: $0 up|down|status|reset" >&2; exit 2 ;;
esac
