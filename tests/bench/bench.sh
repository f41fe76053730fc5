#!/usr/bin/env bash
# Side-by-side throughput from one run, all on loopback: the example origin alone; NGINX
# pass-through and proxy_cache hits (one hot key, 10,000 keys, one 256 KiB body) when nginx is
# installed; bare Pingora answering and forwarding (the ceilings of a Pingora-based gateway);
# cachegate pass-through (a stage without caching), miss path (every request a new key),
# local-tier hits (the same three workloads) and Redis-tier hits; the same load with Redis paused;
# then 200 simultaneous requests for one cold key against a 200 ms origin (upstream requests, p50;
# NGINX with proxy_cache_lock for comparison),
# and the gateway's peak RSS. Writes target/bench/results.md.
# Usage: tests/bench/bench.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-10}
THREADS=2
CONNS=64
. tests/bench/common.sh
start_redis
./target/release/cachegate-origin --listen 127.0.0.1:$ORIGIN --delay-ms 0 >/dev/null & pids+=($!)
mkdir -p "$work/policies/bench"
write_gateway_toml
printf 'base_path = "/bench"\ntarget = "http://127.0.0.1:%s"\n' "$ORIGIN" > "$work/policies/bench/stage.toml"
mkdir -p "$work/policies/cached" "$work/policies/slow" "$work/policies/l2"
# A stage whose local tier is too small to hold the working set: its hits come from Redis.
printf 'target = "http://127.0.0.1:%s"\n[cache]\nenabled = true\nttl = 3600\ncapacity = 4096\nmax_object_size = 2048\n' "$ORIGIN" > "$work/policies/l2/stage.toml"
cat > "$work/l2.lua" <<'LUA'
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/l2/items/" .. math.random(1, 200))
end
LUA
printf 'target = "http://127.0.0.1:%s"\n[cache]\nenabled = true\nttl = 3600\ncapacity = "1GiB"\n' "$ORIGIN" > "$work/policies/cached/stage.toml"
SLOW=$(port)
./target/release/cachegate-origin --listen 127.0.0.1:$SLOW --delay-ms 200 >/dev/null & pids+=($!)
printf 'target = "http://127.0.0.1:%s"\n[cache]\nenabled = true\n' "$SLOW" > "$work/policies/slow/stage.toml"
cat > "$work/random.lua" <<'LUA'
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/cached/items/" .. math.random(1, 1000000000))
end
LUA
# 10,000 keys (path prefix from the command line) and a stage that caches 256 KiB bodies.
cat > "$work/keys.lua" <<'LUA'
local prefix
init = function(args) prefix = args[1] end
request = function()
  return wrk.format("GET", prefix .. math.random(1, 10000))
end
LUA
mkdir -p "$work/policies/big"
printf 'target = "http://127.0.0.1:%s"\n[cache]\nenabled = true\nttl = 3600\nmax_object_size = "1MiB"\nkey_parameters = ["method.request.querystring.bytes"]\n' "$ORIGIN" > "$work/policies/big/stage.toml"
RUST_LOG=error ./target/release/cachegate run --config "$work/policies" >/dev/null 2>&1 & gw_pid=$!; pids+=($gw_pid)
wait_port "$ORIGIN"; wait_port "$GW"

rows=()
# Per row, by name: requests/s and p99 (in ms), for the targets below the table.
declare -A RPS P99
# The origin's request count so far (every request it answered, from any client).
upstream_total() { curl -s "http://127.0.0.1:$ORIGIN/__counts?total" | tr -dc '0-9'; }
# wrk's latency ("843.21us", "2.43ms", "1.02s") in milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v !~ /ms$/ && v ~ /s$/) n *= 1000; printf "%.3f", n }'; }
# name [wrk args...] url: one recorded run; the row gets the origin requests made during it.
record() {
  local name=$1 out rps p50 p99 before after
  shift
  before=$(upstream_total)
  out=$(wrk -t$THREADS -c$CONNS -d"${DURATION}s" --latency "$@")
  after=$(upstream_total)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  RPS[$name]=$rps; P99[$name]=$(to_ms "$p99")
  rows+=("$(printf '| %-28s | %12s | %8s | %8s | %10s |' "$name" "$rps" "$p50" "$p99" "$((after - before))")")
}
# name base-url path-prefix: 10,000 keys, warmed by a first (unrecorded) pass.
measure_keys() {
  wrk -t$THREADS -c$CONNS -d3s -s "$work/keys.lua" "$2" -- "$3" >/dev/null
  record "$1" -s "$work/keys.lua" "$2" -- "$3"
}
measure() { # name url [wrk args...]
  local name=$1 url=$2
  shift 2
  record "$name" "$@" "$url"
}

measure "origin direct" "http://127.0.0.1:$ORIGIN/items/1"
if command -v nginx >/dev/null; then
  NG=$(port)
  mkdir -p "$work/nginx"
  cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 2;
$( [ "$(id -u)" = 0 ] && echo 'user root root;' )
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
  proxy_cache_path $work/nginx/cache levels=1:2 keys_zone=bench:64m max_size=1g inactive=1h use_temp_path=off;
  open_file_cache max=10000 inactive=60s;
  server {
    listen 127.0.0.1:$NG;
    location /bench/ {
      proxy_pass http://origin/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    location /cached/ {
      proxy_pass http://origin/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache bench;
      proxy_cache_lock on;
      proxy_cache_valid 200 1h;
    }
    location /slowcached/ {
      proxy_pass http://127.0.0.1:$SLOW/;
      proxy_http_version 1.1;
      proxy_cache bench;
      proxy_cache_lock on;
      proxy_cache_valid 200 1h;
    }
  }
}
NGINX
  nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' & pids+=($!)
  wait_port "$NG"
  measure "nginx pass-through" "http://127.0.0.1:$NG/bench/items/1"
  curl -s -o /dev/null "http://127.0.0.1:$NG/cached/items/1"
  measure "nginx proxy_cache hit" "http://127.0.0.1:$NG/cached/items/1"
  measure_keys "nginx proxy_cache, 10k keys" "http://127.0.0.1:$NG" "/cached/items/k"
  curl -s -o /dev/null "http://127.0.0.1:$NG/cached/big?bytes=262144"
  measure "nginx proxy_cache, 256 KiB" "http://127.0.0.1:$NG/cached/big?bytes=262144"
fi
# Bare Pingora (same version, allocator, threads and runtime), without anything of cachegate:
# the ceiling of a Pingora-based hit (answers from request_filter) and miss path (forwards).
BARE_HELLO=$(port); BARE_PROXY=$(port)
./target/release/examples/bare_pingora hello "127.0.0.1:$BARE_HELLO" >/dev/null 2>&1 & pids+=($!)
./target/release/examples/bare_pingora proxy "127.0.0.1:$BARE_PROXY" "127.0.0.1:$ORIGIN" >/dev/null 2>&1 & pids+=($!)
wait_port "$BARE_HELLO"; wait_port "$BARE_PROXY"
measure "bare pingora pass-through" "http://127.0.0.1:$BARE_PROXY/items/1"
measure "bare pingora answer (1 KiB)" "http://127.0.0.1:$BARE_HELLO/items/1"
measure "cachegate pass-through" "http://127.0.0.1:$GW/bench/items/1"
measure "cachegate miss (new keys)" "http://127.0.0.1:$GW" -s "$work/random.lua"
# The miss row leaves ~100k writes queued for Redis; the hit rows measure hits, not that drain:
# wait (at most 60 s) until Redis's key count stops growing.
if command -v redis-cli >/dev/null; then
  last=-1
  for _ in $(seq 1 120); do
    now=$(redis-cli -p "$REDIS" DBSIZE 2>/dev/null || echo -1)
    [ "$now" = "$last" ] && break
    last=$now; sleep 0.5
  done
fi
curl -s -o /dev/null "http://127.0.0.1:$GW/cached/items/1"
measure "cachegate hit (local tier)" "http://127.0.0.1:$GW/cached/items/1"
measure_keys "cachegate hit, 10k keys" "http://127.0.0.1:$GW" "/cached/items/k"
curl -s -o /dev/null "http://127.0.0.1:$GW/big/big?bytes=262144"
measure "cachegate hit, 256 KiB" "http://127.0.0.1:$GW/big/big?bytes=262144"

for i in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$GW/l2/items/$i"; done
sleep 1
measure "cachegate hit (Redis tier)" "http://127.0.0.1:$GW" -s "$work/l2.lua"
l2_hits=$(curl -s "http://127.0.0.1:$ADMIN/metrics" | awk -F' ' '/^cachegate_cache_hits_total.*stage="l2".*tier="shared"/ {s+=$2} END {print s+0}')
l1_hits=$(curl -s "http://127.0.0.1:$ADMIN/metrics" | awk -F' ' '/^cachegate_cache_hits_total.*stage="l2".*tier="local"/ {s+=$2} END {print s+0}')
# The same load while Redis is paused for 3 s: lookups time out (50 ms) and become misses.
redis-cli -p "$REDIS" CLIENT PAUSE 3000 ALL >/dev/null 2>&1 || printf '*4\r\n$6\r\nCLIENT\r\n$5\r\nPAUSE\r\n$4\r\n3000\r\n$3\r\nALL\r\n' > /dev/tcp/127.0.0.1/$REDIS
paused=$(wrk -t$THREADS -c$CONNS -d3s --latency -s "$work/l2.lua" "http://127.0.0.1:$GW")
paused_p50=$(awk '$1=="50%" {print $2}' <<<"$paused"); paused_p99=$(awk '$1=="99%" {print $2}' <<<"$paused")
paused_rps=$(awk '/Requests\/sec/ {print $2}' <<<"$paused"); paused_errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$paused")

# 200 simultaneous requests for one cold key, origin delay 200 ms: 200 connections opened
# first, then one request sent on each at once.
read -r burst_ok burst_p50 burst_ms < <(python3 tests/bench/burst.py 127.0.0.1 "$GW" /slow/items/burst 200) \
  || { burst_ok="burst failed:"; burst_p50="?"; burst_ms="?"; }
burst_upstream=$(curl -s "http://127.0.0.1:$SLOW/__counts?path=/items/burst" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
# NGINX's proxy_cache_lock under the same burst (another cold key), for comparison.
nginx_burst_line=""
if [ -n "${NG:-}" ]; then
  read -r nb_ok nb_p50 nb_ms < <(python3 tests/bench/burst.py 127.0.0.1 "$NG" /slowcached/items/nburst 200) \
    || { nb_ok="burst failed:"; nb_p50="?"; nb_ms="?"; }
  nb_upstream=$(curl -s "http://127.0.0.1:$SLOW/__counts?path=/items/nburst" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
  nginx_burst_line="NGINX proxy_cache_lock, the same burst: $nb_ok x 200 OK, $nb_upstream upstream request(s), p50 $nb_p50 ms, all answered within $nb_ms ms"
fi
# The same, arriving over several hundred milliseconds (200 curl processes started at once;
# the time reported is until the last answer, start-up and origin delay included):
# late arrivals look the key up (in Redis too) while the first fetch completes.
spread_start=$(date +%s%N)
seq 1 200 | xargs -P 200 -I{} curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$GW/slow/items/spread" > "$work/spread.txt"
spread_ms=$(( ($(date +%s%N) - spread_start) / 1000000 ))
spread_ok=$(grep -c '^200' "$work/spread.txt" || true)
spread_upstream=$(curl -s "http://127.0.0.1:$SLOW/__counts?path=/items/spread" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
gw_peak_rss=$(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$gw_pid/status")

# Memory: a second gateway (no Redis, nothing else cached) stores 100,000 distinct 1 KiB
# responses; the growth of its RSS is compared with the body bytes it holds.
MEM_GW=$(port); MEM_ADMIN=$(port)
mkdir -p "$work/mem/mem"
printf '[server]\nlisten = "127.0.0.1:%s"\nthreads = 2\n[admin]\nlisten = "127.0.0.1:%s"\n' "$MEM_GW" "$MEM_ADMIN" > "$work/mem/gateway.toml"
printf 'target = "http://127.0.0.1:%s"\n[cache]\nenabled = true\nttl = 3600\ncapacity = "1GiB"\n' "$ORIGIN" > "$work/mem/mem/stage.toml"
cat > "$work/fill.lua" <<'LUA'
-- Each of wrk's threads requests its own 50,000 distinct keys once, then one warm key.
-- (`id` is a global that setup() gives each thread.)
local n, counter = 0, 0
setup = function(thread) counter = counter + 1; thread:set("id", counter) end
request = function()
  n = n + 1
  if n <= 50000 then return wrk.format("GET", "/mem/items/t" .. id .. "-" .. n) end
  return wrk.format("GET", "/mem/items/warm")
end
LUA
RUST_LOG=error ./target/release/cachegate run --config "$work/mem" >/dev/null 2>&1 & mem_pid=$!; pids+=($mem_pid)
wait_port "$MEM_GW"
for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$MEM_GW/mem/items/warm"; done
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
mem_before=$(rss_kib $mem_pid)
wrk -t2 -c32 -d30s -s "$work/fill.lua" "http://127.0.0.1:$MEM_GW" >/dev/null
mem_after=$(rss_kib $mem_pid)
mem_metrics=$(curl -s "http://127.0.0.1:$MEM_ADMIN/metrics")
mem_entries=$(awk '/^cachegate_cache_local_entries/ {s+=$2} END {print s+0}' <<<"$mem_metrics")
mem_bytes=$(awk '/^cachegate_cache_local_bytes/ {s+=$2} END {print s+0}' <<<"$mem_metrics")
mem_line=$(awk -v b="$mem_before" -v a="$mem_after" -v n="$mem_entries" -v w="$mem_bytes" 'BEGIN {
  d = (a - b) * 1024; body = n * 1024
  printf "Memory: %d entries of 1 KiB stored (tier weight %.1f MiB); RSS %.1f -> %.1f MiB, growth %.1f MiB = %.0f bytes per entry = %.2fx the body bytes (target <= 1.5x).",
    n, w / 1048576, b / 1024, a / 1024, d / 1048576, (n ? d / n : 0), (body ? d / body : 0) }')

mem_ratio=$(awk -v b="$mem_before" -v a="$mem_after" -v n="$mem_entries" 'BEGIN { if (n) printf "%.2f", (a - b) / n; else print "n/a" }')

# Each target of the performance issue, as a ratio from the rows above.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
# value threshold (>= or <=): "met" or "NOT met".
verdict() { awk -v x="$1" -v t="$2" -v op="$3" 'BEGIN { if (x == "n/a" || x == "") { print "n/a"; exit }; ok = (op == ">=") ? (x + 0 >= t + 0) : (x + 0 <= t + 0); print (ok ? "met" : "NOT met") }'; }
targets=()
target() { # text value op threshold
  targets+=("- $1: $2 (target $3 $4) - $(verdict "$2" "$4" "$3")")
}
p99_line() { # gateway-row nginx-row
  local verdict
  verdict=$(verdict "${P99[$1]:-n/a}" "${P99[$2]:-n/a}" "<=")
  targets+=("  p99 ${P99[$1]:-n/a} ms vs NGINX ${P99[$2]:-n/a} ms (target: no worse) - $verdict")
}
target "local-tier hit, hot key / NGINX proxy_cache" "$(ratio "${RPS[cachegate hit (local tier)]:-}" "${RPS[nginx proxy_cache hit]:-}")" ">=" 1.2
p99_line "cachegate hit (local tier)" "nginx proxy_cache hit"
target "local-tier hit, 10k keys / NGINX proxy_cache" "$(ratio "${RPS[cachegate hit, 10k keys]:-}" "${RPS[nginx proxy_cache, 10k keys]:-}")" ">=" 1.2
p99_line "cachegate hit, 10k keys" "nginx proxy_cache, 10k keys"
target "local-tier hit, 256 KiB / NGINX proxy_cache" "$(ratio "${RPS[cachegate hit, 256 KiB]:-}" "${RPS[nginx proxy_cache, 256 KiB]:-}")" ">=" 1.0
p99_line "cachegate hit, 256 KiB" "nginx proxy_cache, 256 KiB"
target "cold burst of 200: upstream requests" "${burst_upstream:-n/a}" "<=" 1
target "cold burst of 200: p50 / origin delay (200 ms)" "$(ratio "$burst_p50" 200)" "<=" 1.3
target "Redis-tier hit / local-tier hit" "$(ratio "${RPS[cachegate hit (Redis tier)]:-}" "${RPS[cachegate hit (local tier)]:-}")" ">=" 0.5
target "memory: RSS growth / body bytes, 100,000 x 1 KiB" "$mem_ratio" "<=" 1.5
target "pass-through / NGINX pass-through" "$(ratio "${RPS[cachegate pass-through]:-}" "${RPS[nginx pass-through]:-}")" ">=" 1.0
# Where Pingora itself stands (the profile behind the ratios above).
targets+=("- context: bare Pingora answer / NGINX proxy_cache hit: $(ratio "${RPS[bare pingora answer (1 KiB)]:-}" "${RPS[nginx proxy_cache hit]:-}"); cachegate hit / bare Pingora answer: $(ratio "${RPS[cachegate hit (local tier)]:-}" "${RPS[bare pingora answer (1 KiB)]:-}")")
targets+=("- context: bare Pingora pass-through / NGINX pass-through: $(ratio "${RPS[bare pingora pass-through]:-}" "${RPS[nginx pass-through]:-}"); cachegate pass-through / bare Pingora pass-through: $(ratio "${RPS[cachegate pass-through]:-}" "${RPS[bare pingora pass-through]:-}")")

mkdir -p target/bench
{
  echo "wrk -t$THREADS -c$CONNS -d${DURATION}s, 1 KiB JSON, origin delay 0 ms, $(nproc) cores"
  echo
  echo "| target                       |   requests/s |      p50 |      p99 |   upstream |"
  echo "|------------------------------|-------------:|---------:|---------:|-----------:|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "(upstream: requests the origin answered during the recorded run, any client.)"
  echo
  echo "Redis-tier row: $l2_hits hits from Redis, $l1_hits from the local tier."
  echo "While Redis was paused (3 s, same load): $paused_rps req/s, p50 $paused_p50, p99 $paused_p99 ${paused_errors:-(no errors)}"
  echo "200 simultaneous requests for one cold key (origin delay 200 ms): $burst_ok x 200 OK," \
       "$burst_upstream upstream request(s), p50 $burst_p50 ms, all answered within $burst_ms ms"
  [ -n "$nginx_burst_line" ] && echo "$nginx_burst_line"
  echo "200 requests for one cold key from 200 curl processes (all answered within $spread_ms ms): $spread_ok x 200 OK, $spread_upstream upstream request(s)"
  echo "Gateway peak RSS over the whole run: $gw_peak_rss."
  echo "$mem_line"
  echo
  echo "Targets (ratios within this run):"
  printf '%s\n' "${targets[@]}"
} | tee target/bench/results.md
