//! The request engine: every per-request decision, made in one place.
//!
//! - `facts`: what a request is, normalised once (HEAD→GET, the path below the base path, Host).
//! - `request`: [`request::route`] and [`request::prepare`] — resource, flow, request steps,
//!   cache plan and client invalidation; the one entry point of the proxy, the admin API and
//!   `explain`.
//! - `state`: what a request carries while it is decided (`RequestState`, `Env`, `Mode`,
//!   the `Cursor` of its request steps).
//! - `walk`: the request steps in Apigee's order, stopping at the ResponseCache lookup and
//!   resuming on a miss.
//! - `response`: the response steps, for hits and misses alike.
//! - `plan`: whether a request uses the cache and with which key; whether a response is stored
//!   and for how long (`ttl_for`, the one TTL rule).
//! - `client_invalidation`: AWS-style client invalidation (`Cache-Control: max-age=0`) and its
//!   authorisation.
//! - `steps`: running one flow step (LookupCache, PopulateCache, InvalidateCache,
//!   AssignMessage); `message`: AssignMessage's view of the request and response headers.
//! - `invalidate`: removing an entry or its children everywhere.
//! - `request_directives`: request `Cache-Control` as RFC 9111 directives (http mode).
//! - `unsafe_methods`: invalidation after unsafe methods (RFC 9111 §4.4, http mode).
//!
//! The proxy (Pingora glue), the admin API and the CLI call into this module; it never imports
//! them (see `scripts/layers.py`).

pub(crate) mod client_invalidation;
pub(crate) mod facts;
pub(crate) mod fault;
pub(crate) mod invalidate;
pub(crate) mod message;
pub mod plan;
pub(crate) mod request;
pub(crate) mod request_directives;
pub(crate) mod response;
pub(crate) mod state;
pub(crate) mod steps;
pub(crate) mod unsafe_methods;
pub(crate) mod walk;

pub use request::{prepare, route, Prepared, Routed};
pub use state::{Env, KeptBody, Mode, RequestState, MAX_REQUEST_CONTENT};
