#!/usr/bin/env bash
# What the front API's access rules cost on a read: one peercache-server
# node serving the echo group (no loader cost), 16 keep-alive clients of
# bench's loadgen, 5 s per run after 1 s of warm-up, interleaved rounds.
#
#   cargo build --release -p peercache-server -p peercache-bench
#   OLD=/path/to/a/peercache-server/built/before bench/front-access.sh
#
# Rows: old (OLD, one port), new (this tree's, one port, no front flag),
# new-split (--front-addr), tokens (--front-token-file), tokens+rate (and
# --front-rate-limit, high enough never to refuse). Each line: requests per
# second, p50 and p99 in microseconds, errors. Without OLD, no old row.
set -euo pipefail
cd "$(dirname "$0")/.."
new=${NEW:-target/release/peercache-server}
loadgen=${LOADGEN:-target/release/loadgen}
old=${OLD:-}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'bench read %s\n' "$token" > "$dir/tokens"
chmod 600 "$dir/tokens"
front=127.0.0.1:18100
peers=127.0.0.1:18101
run() { # name binary args...
  local name=$1 bin=$2
  shift 2
  "$bin" --echo-group "$@" 2>/dev/null &
  local pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "$front/status" && break; sleep 0.05; done
  local out
  out=$("$loadgen" --target "http://$front" --path /echo/ -c 16 --duration 5s --warmup 1s \
    --keys 1000 --dist uniform --bearer "$token" --json)
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  echo "$name $(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["rps"]), d["p50_us"], d["p99_us"], d["errors"])')"
}
for _ in $(seq "${ROUNDS:-5}"); do
  [ -n "$old" ] && run old "$old" --addr "$front"
  run new "$new" --addr "$front"
  run new-split "$new" --addr "$peers" --front-addr "$front"
  run tokens "$new" --addr "$peers" --front-addr "$front" --front-token-file "$dir/tokens"
  run tokens+rate "$new" --addr "$peers" --front-addr "$front" --front-token-file "$dir/tokens" \
    --front-rate-limit 1000000000
done
