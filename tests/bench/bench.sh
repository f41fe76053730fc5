#!/usr/bin/env bash
# Side-by-side throughput from one run: the example origin alone, NGINX pass-through (when
# installed) and cachegate pass-through (a stage without caching), all on loopback.
# Usage: tests/bench/bench.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-10}
THREADS=2
CONNS=64
command -v wrk >/dev/null || { echo "wrk is required: apt-get install -y wrk" >&2; exit 1; }

cargo build --release --workspace --bins >&2
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

ORIGIN=$(port); GW=$(port); ADMIN=$(port)
./target/release/cachegate-origin --listen 127.0.0.1:$ORIGIN --delay-ms 0 >/dev/null & pids+=($!)
mkdir -p "$work/policies/bench"
cat > "$work/policies/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:$GW"
threads = 2
[admin]
listen = "127.0.0.1:$ADMIN"
TOML
printf 'base_path = "/bench"\ntarget = "http://127.0.0.1:%s"\n' "$ORIGIN" > "$work/policies/bench/stage.toml"
RUST_LOG=error ./target/release/cachegate run --config "$work/policies" >/dev/null 2>&1 & pids+=($!)
wait_port "$ORIGIN"; wait_port "$GW"

rows=()
measure() { # name url
  local out rps p50 p99
  out=$(wrk -t$THREADS -c$CONNS -d"${DURATION}s" --latency "$2")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  rows+=("$(printf '| %-28s | %12s | %8s | %8s |' "$1" "$rps" "$p50" "$p99")")
}

measure "origin direct" "http://127.0.0.1:$ORIGIN/items/1"
if command -v nginx >/dev/null; then
  NG=$(port)
  mkdir -p "$work/nginx"
  cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
  server {
    listen 127.0.0.1:$NG;
    location /bench/ {
      proxy_pass http://origin/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGINX
  nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' & pids+=($!)
  wait_port "$NG"
  measure "nginx pass-through" "http://127.0.0.1:$NG/bench/items/1"
fi
measure "cachegate pass-through" "http://127.0.0.1:$GW/bench/items/1"

mkdir -p target/bench
{
  echo "wrk -t$THREADS -c$CONNS -d${DURATION}s, 1 KiB JSON, origin delay 0 ms, $(nproc) cores"
  echo
  echo "| target                       |   requests/s |      p50 |      p99 |"
  echo "|------------------------------|-------------:|---------:|---------:|"
  printf '%s\n' "${rows[@]}"
} | tee target/bench/results.md
