//! cachegate: a declarative, policy-driven caching API gateway on Pingora.
//!
//! Layers, imports pointing one way (ARCHITECTURE.md; `make lint` checks it):
//! `policy` (parse model) → `config` (validate, compile) → `runtime` (the compiled, immutable
//! configuration and its pure evaluation) → `engine` (per-request decisions) → `proxy`
//! (Pingora glue), `admin`, the CLI. `cache` is storage only. The proxy reads the configuration
//! through an `ArcSwap` (`reload`).
//!
//! The public modules are what the binary, the integration tests and the benchmarks use; the
//! rest is crate-private.

#![cfg_attr(test, allow(clippy::unwrap_used))]
// One exception, documented where it is: `proxy::rehome` duplicates an accepted socket.
#![deny(unsafe_code)]

pub mod access_log;
pub(crate) mod admin;
pub mod cache;
pub mod config;
pub mod diag;
pub mod engine;
pub(crate) mod metrics;
pub(crate) mod policy;
pub(crate) mod proxy;
pub mod reload;
pub mod runtime;
pub mod server;
pub(crate) mod util;
pub(crate) mod watch;
