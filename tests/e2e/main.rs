//! The one integration-test binary (each extra file under tests/ would link Pingora again).
//!
//! Every test starts what it needs — a real gateway in-process on ephemeral loopback ports, the
//! example origin, a private redis-server — through `harness`, and asserts through real HTTP.

mod harness;

mod access_log;
mod admin;
mod apigee;
mod bundles;
mod caching;
mod chaining;
mod cli;
mod connections;
mod engine;
mod faults;
mod forms;
mod framing;
mod framing_targets;
mod guards;
mod harness_selftest;
mod hostile;
mod http_mode;
mod http_parsing;
mod import;
mod invalidation;
mod load;
mod metrics;
mod proxy_endpoints;
mod reload;
mod revalidation;
mod routing;
mod schemas;
mod scopes;
mod shared;
mod shared_flows;
mod smuggling;
mod targets;
mod tls;
mod unkeyed_query;
mod validation;
