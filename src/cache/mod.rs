//! Storage only: where entries live and how they are found, never what a request means.
//!
//! - `entry.rs`: what the store holds (an opaque metadata blob, a body, its lifetime).
//! - `local.rs`: the local tier (moka), bounded in bytes per stage or environment cache;
//!   `labels.rs`: the metric labels of a tier (a stage's, or an environment cache's).
//! - `shared/`: the shared tier (Redis): wire format, sealing, breaker, connections,
//!   background writer and invalidation subscriber.
//! - `store.rs`: `TieredStore`, local then shared, with purge checks; used by the ResponseCache
//!   machinery through the bridge and by the KV policies (via `engine::steps`) directly.
//! - `purge.rs`: O(1) prefix purges and stage flushes, recorded as times.
//! - `seal.rs`: AES-256-GCM sealing of shared-tier values (`encrypted` stages).
//! - `fanout.rs`: attaching the shared tier and applying other instances' invalidations.
//! - `pingora_bridge.rs`: the only module importing `pingora::cache` (its API changes between
//!   versions).
//!
//! Keys are built by `runtime::key`; decisions are made by `engine`. Nothing here imports
//! either of them except the key types (`scripts/layers.py`).

pub mod entry;
pub(crate) mod fanout;
mod labels;
pub mod local;
pub mod pingora_bridge;
pub(crate) mod purge;
pub(crate) mod seal;
pub(crate) mod shared;
pub(crate) mod store;
