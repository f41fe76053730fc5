//! The runtime layer: the compiled, immutable configuration and its pure evaluation.
//!
//! Everything here is built once per load by `config` and then only read: stages and their
//! flows (`stage`), resource templates (`resource`), compiled cache policies (`policy`), keys and
//! their storage hashes (`key`), TTL arithmetic (`ttl`) and the response fields it reads (`cache_control`,
//! `targeted`), where requests are sent (`target`, and
//! `balance` for LoadBalancers of TargetServers), and the flow language — variables,
//! conditions, templates and AssignMessage (`flow`). Nothing here performs I/O or knows about
//! Pingora; the per-request decisions built on it live in `engine`. The one mutable part of a
//! snapshot is a LoadBalancer's view of its servers' health (atomics, `balance`), which a
//! reload starts afresh.
//!
//! Layering (checked by `scripts/layers.py`): `runtime` imports only `util`, `diag`, `metrics`
//! and `policy`.

pub mod access_log;
pub mod age;
pub mod balance;
pub(crate) mod cache_control;
pub mod flow;
pub mod host;
pub mod key;
mod key_bytes;
pub(crate) mod policy;
pub(crate) mod resource;
pub mod stage;
pub mod target;
pub(crate) mod targeted;
pub(crate) mod ttl;
