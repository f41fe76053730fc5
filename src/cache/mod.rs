//! Caching: key building, TTL arithmetic, the tiered store, and the bridge to pingora-cache.
//!
//! - `key.rs`: Apigee-style logical keys and collision-free storage keys.
//! - `ttl.rs`: ExpirySettings, upstream Cache-Control and stage limits → a TTL.
//! - `store.rs` (+ `local.rs`): `TieredStore`, the project's two-tier store (moka now, Redis later),
//!   used by ResponseCache through the bridge and by the KV policies directly.
//! - `pingora_bridge.rs`: the only module importing `pingora::cache` (its API changes between
//!   versions).

pub mod entry;
pub mod fanout;
pub mod local;
pub mod pingora_bridge;
pub mod purge;
pub mod seal;
pub mod shared;
pub mod store;
