#!/usr/bin/env bash
# Two cachegate instances sharing one Redis, in front of one origin. One command:
#   examples/two-instances/run.sh
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v redis-server >/dev/null || { echo "redis-server is needed: make deps (or apt-get install redis-server)" >&2; exit 1; }
cargo build --workspace --bins
export CACHEGATE_ADMIN_TOKEN=${CACHEGATE_ADMIN_TOKEN:-admin-demo-token}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT INT TERM

redis-server --port 6380 --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null & pids+=($!)
./target/debug/cachegate-origin --listen 127.0.0.1:9100 --delay-ms 200 >/dev/null & pids+=($!)

cp -r examples/two-instances/policies "$work/a"
cp -r examples/two-instances/policies "$work/b"
sed -i 's/127.0.0.1:8081/127.0.0.1:8082/; s/127.0.0.1:9911/127.0.0.1:9912/' "$work/b/gateway.toml"
./target/debug/cachegate run --config "$work/a" > "$work/a.log" 2>&1 & pids+=($!)
./target/debug/cachegate run --config "$work/b" > "$work/b.log" 2>&1 & pids+=($!)

for port in 8081 8082; do
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
cat <<TXT

  redis      127.0.0.1:6380
  origin     http://127.0.0.1:9100   (200 ms per response)
  instance A http://127.0.0.1:8081   admin http://127.0.0.1:9911
  instance B http://127.0.0.1:8082   admin http://127.0.0.1:9912

  Try:
    curl -si localhost:8081/prod/items/1 | grep -i x-cache       # MISS (A fetched and shared it)
    curl -si localhost:8082/prod/items/1 | grep -i x-cache       # HIT on B, from Redis
    curl -s -X POST -H "Authorization: Bearer \$CACHEGATE_ADMIN_TOKEN" \\
         -d '{"path":"/items/1"}' localhost:9911/stages/prod/cache/invalidate
    curl -si localhost:8082/prod/items/1 | grep -i x-cache       # MISS on B: A's invalidation reached it
    curl -s localhost:9912/metrics | grep 'tier="shared"'

  Logs: $work/a.log $work/b.log — Ctrl-C stops everything.
TXT
wait
