# cachegate — the two commands anyone needs are `make run` and `make test`.
# Everything else is listed by `make help`.

SHELL := /bin/bash
CARGO ?= cargo
# Demo tokens for `make run`; override them in the environment.
CACHEGATE_ADMIN_TOKEN ?= admin-demo-token
CACHEGATE_PROD_TOKEN ?= prod-demo-token
ORIGIN_DELAY_MS ?= 200
export CACHEGATE_ADMIN_TOKEN CACHEGATE_PROD_TOKEN

.DEFAULT_GOAL := help
.PHONY: help deps bench-deps run test lint fmt validate schemas bench bench-micro soak build

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Installs the Debian packages named in $(1) whose command (before the colon) is missing.
define install_missing
	@missing=""; \
	for pair in $(1); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing:$$missing"; \
	  if command -v apt-get >/dev/null 2>&1; then \
	    SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "Please install:$$missing (no apt-get here)"; exit 1; \
	  fi; \
	fi
endef

# ca-certificates: the platform roots https:// targets are verified against (rustls-native-certs
# reads /etc/ssl/certs) when gateway.toml has no [server] upstream_ca_file.
deps: ## Install missing build/test prerequisites (Debian: cmake, redis-server, promtool, ca-certificates)
	$(call install_missing,cmake:cmake redis-server:redis-server cc:build-essential promtool:prometheus python3:python3 update-ca-certificates:ca-certificates)

bench-deps: ## Install the benchmark's load generator and comparison proxy (Debian: wrk, nginx)
	$(call install_missing,wrk:wrk nginx:nginx)

build: deps ## Build the gateway and the example origin
	$(CARGO) build --workspace --bins

run: build ## Build, start the example origin and the gateway on policies/, print what to try
	@./target/debug/cachegate-origin --listen 127.0.0.1:9000 --delay-ms $(ORIGIN_DELAY_MS) & origin=$$!; \
	trap 'kill $$origin 2>/dev/null' EXIT INT TERM; \
	echo; \
	echo "  origin  http://127.0.0.1:9000  (every response takes $(ORIGIN_DELAY_MS) ms)"; \
	echo "  gateway http://127.0.0.1:8080  admin http://127.0.0.1:9901"; \
	echo; \
	echo "  Try:  curl -i localhost:8080/prod/items/42"; \
	echo "        curl -i localhost:8080/dev/items/42"; \
	echo "        curl -s localhost:9901/config"; \
	echo "        curl -s localhost:9901/metrics | grep cachegate_"; \
	echo "        curl -s -X POST -H 'Authorization: Bearer $$CACHEGATE_ADMIN_TOKEN' localhost:9901/reload"; \
	echo; \
	./target/debug/cachegate run --config policies

test: deps ## Everything CI runs: format, lints, layering, all tests, policy validation, schema drift
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	python3 scripts/layers.py
	@mkdir -p target
	set -o pipefail; $(CARGO) test --workspace 2>&1 | tee target/test.log
	$(MAKE) --no-print-directory validate
	./target/debug/cachegate schema --out schemas --check
	@awk '/^test result:/ {p+=$$4; f+=$$6} END {printf "all tests: %d passed, %d failed\n", p, f}' target/test.log

lint: deps ## Format check, clippy, and the layering check (imports one way, no file cycles)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	python3 scripts/layers.py

fmt: ## Format the code
	$(CARGO) fmt --all

# Builds what `make run` runs (the gateway and the example origin, as `make build` does), so
# `make run` after `make test` starts at once.
validate: ## Validate policies/ and every example's policies
	$(CARGO) build --quiet --workspace --bins
	./target/debug/cachegate validate policies
	@for d in examples/*/policies; do [ -d "$$d" ] || continue; ./target/debug/cachegate validate "$$d" || exit 1; done

schemas: ## Regenerate schemas/*.schema.json from the config types
	$(CARGO) run --quiet --bin cachegate -- schema --out schemas

bench: deps bench-deps ## Side-by-side throughput: origin, NGINX, gateway miss/hit/Redis hit; then bench-micro
	./tests/bench/bench.sh
	$(MAKE) --no-print-directory bench-micro

bench-micro: deps ## Criterion micro-benchmarks (routing, flow conditions, cache plan and key); memory per cached entry by layer
	@mkdir -p target/bench
	set -o pipefail; $(CARGO) bench --bench hotpath -- --warm-up-time 1 --measurement-time 3 --output-format bencher 2>target/bench/micro.log \
	  | grep '^test ' | tee target/bench/micro.txt
	$(CARGO) bench --bench memory 2>>target/bench/micro.log | tee -a target/bench/micro.txt

SOAK_SECONDS ?= 300
soak: deps bench-deps ## Long run under mixed load with Redis pauses/kill, reloads and flushes (REL-17)
	./tests/soak/soak.sh $(SOAK_SECONDS)
