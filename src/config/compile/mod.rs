//! Validation and compilation of the TOML file model into the runtime model.
//!
//! Every check pushes a diagnostic and carries on, so one run reports every problem. A section
//! that fails produces `None`, and the caller only builds a `RuntimeConfig` when no error was
//! recorded. Cross-file checks (flows → policies, variable references, TTL bounds) live in
//! `crossref.rs`.
//!
//! # Files
//!
//! One file per part of the configuration: `gateway.rs` (`gateway.toml`), `stage.rs` (a stage's
//! base path, target and resources), `target.rs` (target URLs, deadlines and the
//! `[[target_servers]]` of gateway.toml), `log.rs` (its `[log]` section), `cache.rs` (its `[cache]` section, with `overrides.rs`
//! for `[[cache.method]]` and `invalidation.rs` for invalidation and its grants), and `flows.rs`
//! (flows, steps and their conditions). They share `ctx.rs` ([`FileCtx`], where diagnostics go)
//! and `values.rs` (checks of single values that several sections use). Imports go one way:
//! sections import `values.rs` and `ctx.rs` (`cache.rs` also its two parts, `stage.rs` and
//! `gateway.rs` also `target.rs`), `values.rs` only `ctx.rs`; code outside this folder uses the
//! re-exports below.

mod cache;
mod ctx;
mod flows;
mod gateway;
mod invalidation;
mod log;
mod overrides;
mod stage;
mod target;
mod tls;
mod values;

pub(crate) use cache::cache;
pub(crate) use ctx::{file_error, FileCtx};
pub(crate) use flows::endpoints;
pub(crate) use gateway::gateway;
pub(crate) use stage::{base_path, endpoint_names, resources, target, timeouts};
pub(crate) use target::{target_url, Timeouts};
pub(crate) use tls::apply_ssl_info;
pub(crate) use values::is_name;
