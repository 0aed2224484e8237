#!/usr/bin/env bash
# A cluster on loopback, for a demo or a soak: a throwaway PostgreSQL, Kamailio in front
# (deploy/kamailio/kamailio.cfg) and N ivrflow nodes sharing the store.
#
#   scripts/cluster.sh [N]        # default 2 nodes; Ctrl-C stops everything
#
#   callers → Kamailio 127.0.0.1:5060 → node1 127.0.0.1:5071, node2 127.0.0.1:5072, …
#   each node's API on 127.0.0.1:8081, 8082, … (token: $IVRFLOW_API_TOKEN, or a demo one)
#   PostgreSQL on 127.0.0.1:55432, database ivrflow (trust auth: loopback demo only)
#
# Needs ./scripts/setup.sh (PostgreSQL 15, Kamailio) and builds the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2}
pgbin=/usr/lib/postgresql/15/bin
pgport=${PGPORT_CLUSTER:-55432}
export IVRFLOW_API_TOKEN=${IVRFLOW_API_TOKEN:-cluster-demo-token-0123456789}
for tool in "$pgbin/initdb" kamailio; do
  command -v "$tool" >/dev/null 2>&1 || { echo "cluster: $tool is missing: run ./scripts/setup.sh" >&2; exit 1; }
done
bin=${IVRFLOW_BIN:-target/release/ivrflow}
[ -n "${IVRFLOW_BIN:-}" ] || cargo build --release --quiet
dir=$(mktemp -d /tmp/ivrflow-cluster.XXXXXX)
pids=()
as_pg=()
if [ "$(id -u)" -eq 0 ]; then as_pg=(runuser -u postgres --); chown postgres "$dir"; chmod 755 "$dir"; fi
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$dir/pg" -m fast stop >/dev/null 2>&1 || true
  echo "cluster: stopped; logs in $dir"
}
trap stop EXIT
trap 'exit 0' INT TERM

"${as_pg[@]}" "$pgbin/initdb" -D "$dir/pg" -U ivrflow --auth=trust >"$dir/initdb.log"
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$dir/pg" -l "$dir/postgres.log" -w \
  -o "-p $pgport -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
"$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U ivrflow ivrflow
store="postgres://ivrflow@127.0.0.1:$pgport/ivrflow"
echo "cluster: PostgreSQL on 127.0.0.1:$pgport"

: >"$dir/dispatcher.list"
for i in $(seq 1 "$n"); do
  sip=127.0.0.1:$((5070 + i))
  echo "1 sip:$sip" >>"$dir/dispatcher.list"
  mkdir -p "$dir/node$i"
  "$bin" serve --sip-listen "$sip" --api-listen 127.0.0.1:$((8080 + i)) \
    --store "$store" --node "node$i" --data-dir "$dir/node$i" \
    ${IVRFLOW_WEBHOOK_URL:+--webhook-url "$IVRFLOW_WEBHOOK_URL"} 2>"$dir/node$i.log" &
  pids+=($!)
  echo "cluster: node$i on $sip, API http://127.0.0.1:$((8080 + i)) (log $dir/node$i.log)"
done
kamailio -f deploy/kamailio/kamailio.cfg -l udp:127.0.0.1:5060 -DD -E \
  -A "DISPATCHER_LIST=\"$dir/dispatcher.list\"" -Y "$dir" -P "$dir/kamailio.pid" \
  2>"$dir/kamailio.log" &
pids+=($!)
echo "cluster: Kamailio on 127.0.0.1:5060 (log $dir/kamailio.log); call sip:order-confirmation@127.0.0.1:5060"
wait
