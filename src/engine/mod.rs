//! The request engine: every per-request decision, made in one place.
//!
//! - `plan`: whether a request uses the cache and with which key; whether a response is stored
//!   and for how long.
//! - `client_invalidation`: AWS-style client invalidation (`Cache-Control: max-age=0`) and its
//!   authorisation.
//! - `steps`: running flow steps (LookupCache, PopulateCache, InvalidateCache, AssignMessage).
//!
//! The proxy (Pingora glue), the admin API and the CLI call into this module; it never imports
//! them (see `scripts/layers.py`).

pub mod client_invalidation;
pub mod invalidate;
pub mod plan;
pub mod steps;
