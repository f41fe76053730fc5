//! The parse model of a TargetEndpoint's connection: a `<LoadBalancer>` of TargetServers with its
//! settings and `<HealthMonitor>`, and a `LocalTargetConnection` (proxy chaining).
//!
//! Values are checked as they are read (numbers, booleans, status codes, the algorithm), so the
//! integrator only resolves names: the servers against gateway.toml's `[[target_servers]]`, the
//! chained proxy against the other stages. Kept apart from `model.rs`, which re-exports it, as
//! the one part of the bundle model about backends.

use crate::diag::{Located, Pos};
use crate::runtime::balance::{Algorithm, Check};

/// `HTTPTargetConnection/LoadBalancer` (with the connection's `<Path>` and `<HealthMonitor>`).
#[derive(Debug, Clone)]
pub struct LoadBalancerSpec {
    /// Position of `<LoadBalancer>`.
    pub pos: Pos,
    /// `<Algorithm>` (default RoundRobin).
    pub algorithm: Algorithm,
    /// `<Server>`s in order: at least one, names unique, at most one fallback.
    pub servers: Vec<ServerSpec>,
    /// `<MaxFailures>` (default 0: never out of rotation).
    pub max_failures: u32,
    /// `<RetryEnabled>` (default true).
    pub retry: bool,
    /// `<ServerUnhealthyResponse><ResponseCode>`s.
    pub unhealthy: Vec<u16>,
    /// `<TargetDisableSecs>`: how long a server out of rotation waits for its trial request.
    pub target_disable_secs: Option<u64>,
    /// `HTTPTargetConnection/Path`: the path every server's requests start with (may hold
    /// `{variable}` templates).
    pub path: Option<Located<String>>,
    /// `HTTPTargetConnection/HealthMonitor`, when present and enabled.
    pub monitor: Option<MonitorSpec>,
}

/// A `<Server name>` of a LoadBalancer.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// `@name`: a TargetServer of the environment.
    pub name: Located<String>,
    /// `<Weight>` (Weighted only).
    pub weight: Option<u32>,
    /// `<IsFallback>`.
    pub fallback: bool,
    /// `<IsEnabled>` (default true).
    pub enabled: bool,
}

/// An enabled `<HealthMonitor>`.
#[derive(Debug, Clone)]
pub struct MonitorSpec {
    /// Position of `<HealthMonitor>`.
    pub pos: Pos,
    /// `<IntervalInSec>`.
    pub interval_secs: u64,
    /// `<TCPMonitor>` or `<HTTPMonitor>`.
    pub check: Check,
}

/// `LocalTargetConnection`: `<APIProxy>` + `<ProxyEndpoint>`, or `<Path>`.
#[derive(Debug, Clone)]
pub struct LocalSpec {
    /// Position of `<LocalTargetConnection>`.
    pub pos: Pos,
    /// `<APIProxy>`.
    pub api: Option<Located<String>>,
    /// `<ProxyEndpoint>`.
    pub endpoint: Option<Located<String>>,
    /// `<Path>`.
    pub path: Option<Located<String>>,
}
