# Shared by tests/bench/bench.sh and tests/soak/soak.sh (sourced from the repository root):
# release binaries, a scratch directory, processes stopped by PID on exit, free ports, and a
# private redis-server.
command -v wrk >/dev/null || { echo "wrk is required: make bench-deps" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server is required: make deps" >&2; exit 1; }

cargo build --release --workspace --bins --example bare_pingora >&2
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

ORIGIN=$(port); GW=$(port); ADMIN=$(port); REDIS=$(port)
# Writes $work/policies/gateway.toml: proxy on $GW (2 threads), admin on $ADMIN with the extra
# [admin] lines given as arguments, the private Redis as the shared tier.
write_gateway_toml() {
  mkdir -p "$work/policies"
  {
    printf '[server]\nlisten = "127.0.0.1:%s"\nthreads = 2\n[admin]\nlisten = "127.0.0.1:%s"\n' "$GW" "$ADMIN"
    for line in "$@"; do printf '%s\n' "$line"; done
    printf '[redis]\nurl = "redis://127.0.0.1:%s"\n' "$REDIS"
  } > "$work/policies/gateway.toml"
}
# Starts (or restarts) the private redis-server on $REDIS; its PID is $redis_pid.
start_redis() {
  redis-server --port "$REDIS" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null &
  redis_pid=$!; pids+=($redis_pid); wait_port "$REDIS"
}
