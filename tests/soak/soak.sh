#!/usr/bin/env bash
# REL-17 soak: the release gateway with a Redis tier under steady mixed load (a hot key and a
# stream of new keys) for DURATION seconds, while faults are injected on a schedule:
#   every 30 s  Redis paused for 3 s (CLIENT PAUSE)
#   at 1/2      Redis killed, restarted 5 s later
#   every 20 s  a configuration reload (POST /reload) and a stage flush (admin API)
# Passes when no request failed (wrk: no socket errors, no non-2xx) and the gateway's resident
# memory did not keep growing (last sample ≤ 1.25 × the sample at the midpoint). Prints the RSS
# series and writes target/soak/report.md.
# Usage: tests/soak/soak.sh [seconds, default 300]   (make soak SOAK_SECONDS=…)
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-300}
(( DURATION >= 20 )) || { echo "soak: run at least 20 s" >&2; exit 2; }
. tests/bench/common.sh
redis_cmd() { # args... (RESP over bash's /dev/tcp: redis-cli may be missing)
  local req="*$#\r\n" a
  for a in "$@"; do req+="\$${#a}\r\n$a\r\n"; done
  { exec 4<>/dev/tcp/127.0.0.1/"$REDIS" && printf "$req" >&4 && timeout 2 head -n1 <&4 >/dev/null; } || true
  exec 4>&- || true
}

start_redis
./target/release/cachegate-origin --listen 127.0.0.1:$ORIGIN --delay-ms 1 >/dev/null & pids+=($!)
mkdir -p "$work/policies/soak"
write_gateway_toml 'token_env = "SOAK_ADMIN_TOKEN"'
printf 'target = "http://127.0.0.1:%s"\n[cache]\nenabled = true\nttl = 60\ncapacity = "16MiB"\n' "$ORIGIN" > "$work/policies/soak/stage.toml"
cat > "$work/mix.lua" <<'LUA'
math.randomseed(os.time())
local n = 0
request = function()
  n = n + 1
  if n % 2 == 0 then return wrk.format("GET", "/soak/items/hot") end
  return wrk.format("GET", "/soak/items/" .. math.random(1, 2000000))
end
LUA
export SOAK_ADMIN_TOKEN=soak-admin-token
RUST_LOG=warn ./target/release/cachegate run --config "$work/policies" >"$work/gateway.log" 2>&1 & gw_pid=$!; pids+=($gw_pid)
wait_port "$ORIGIN"; wait_port "$GW"

rss() { awk '/VmRSS/ {print $2}' "/proc/$gw_pid/status"; }
wrk -t2 -c32 -d"${DURATION}s" -s "$work/mix.lua" "http://127.0.0.1:$GW" > "$work/wrk.txt" & wrk_pid=$!
samples=(); killed=0; admin_failures=0
# Sampled and faulted while wrk runs (it stops at DURATION).
for ((t = 0; t + 5 < DURATION; t += 5)); do
  sleep 5
  samples+=("$(rss)")
  if (( t % 30 == 25 )); then redis_cmd CLIENT PAUSE 3000 ALL; fi
  if (( t % 20 == 15 )); then
    touch "$work/policies/soak/stage.toml"
    curl -sf -o /dev/null -X POST -H "Authorization: Bearer $SOAK_ADMIN_TOKEN" "http://127.0.0.1:$ADMIN/reload" || admin_failures=$((admin_failures + 1))
    curl -sf -o /dev/null -X POST -H "Authorization: Bearer $SOAK_ADMIN_TOKEN" "http://127.0.0.1:$ADMIN/stages/soak/cache/flush" || admin_failures=$((admin_failures + 1))
  fi
  if (( killed == 0 && t >= DURATION / 2 )); then
    kill -9 "$redis_pid"; sleep 5; start_redis; killed=1
  fi
done
wait "$wrk_pid"

requests=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/wrk.txt"); non2xx=${non2xx:-0}
sockerr=$(awk '/Socket errors/ {print}' "$work/wrk.txt")
mid=${samples[$(( ${#samples[@]} / 2 ))]}; last=${samples[-1]}
metrics=$(curl -s "http://127.0.0.1:$ADMIN/metrics")
redis_errors=$(awk '/^cachegate_redis_errors_total/ {s+=$2} END {print s+0}' <<<"$metrics")
lost=$(awk '/^cachegate_redis_subscription_lost_total/ {print $2}' <<<"$metrics")
mkdir -p target/soak
{
  echo "soak: ${DURATION}s, wrk -t2 -c32, half hot key / half new keys, Redis paused 3 s every 30 s, killed once, reload + flush every 20 s"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  echo "| requests | $requests ($rps req/s) |"
  echo "| non-2xx | $non2xx |"
  echo "| socket errors | ${sockerr:-none} |"
  echo "| RSS (KiB) every 5 s | ${samples[*]} |"
  echo "| RSS midpoint → end | $mid → $last KiB |"
  echo "| Redis errors counted | $redis_errors |"
  echo "| subscriptions lost | ${lost:-0} |"
  echo "| admin reload/flush failures | $admin_failures |"
} | tee target/soak/report.md
fail=0
[ "$non2xx" = 0 ] || { echo "FAIL: $non2xx failed requests" >&2; fail=1; }
[ -z "$sockerr" ] || { echo "FAIL: $sockerr" >&2; fail=1; }
(( last * 4 <= mid * 5 )) || { echo "FAIL: RSS kept growing ($mid → $last KiB)" >&2; fail=1; }
(( admin_failures == 0 )) || { echo "FAIL: $admin_failures admin reloads/flushes failed" >&2; fail=1; }
exit $fail
