//! cachegate: a declarative, policy-driven caching API gateway on Pingora.
//!
//! Files are parsed (`config::file`, `policy::xml`, `policy::toml`), validated and compiled into
//! an immutable [`config::RuntimeConfig`], which the proxy (`proxy`) reads through an `ArcSwap`
//! (`reload`). See DESIGN.md in the repository for the architecture.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod cache;
pub mod config;
pub mod diag;
pub mod engine;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod runtime;
pub mod server;
pub mod util;
pub mod watch;
