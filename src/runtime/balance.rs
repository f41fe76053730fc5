//! Apigee's TargetEndpoint `<LoadBalancer>`: choosing a TargetServer for each attempt, and the
//! health of each server as the requests see it.
//!
//! The semantics follow Apigee's "Load balancing across backend servers" page:
//! - `RoundRobin` (the default) takes the servers in the order listed; `Weighted` sends each
//!   server requests in proportion to its `<Weight>`; `LeastConnections` the server with the
//!   fewest requests in flight (Apigee counts open HTTP connections; cachegate counts what it
//!   has sent and not yet finished, which is the same thing without connection reuse).
//! - A failure is an attempt that got no response (a connect error, a timeout), or a response
//!   whose status is listed in `<ServerUnhealthyResponse>`; any other response resets the
//!   server's count. `<MaxFailures>` consecutive failures take the server out of rotation; with
//!   `MaxFailures` 0 (the default) a server is never taken out.
//! - The `<IsFallback>` server is used only while every other server is out of rotation.
//! - Without a `<HealthMonitor>`, Apigee "checks the health of the target server every five
//!   minutes and returns it to the rotation when it responds normally". cachegate does it with
//!   the traffic itself: once the server has been out for [`Balancer::readmit_after`] (300 s,
//!   or `<TargetDisableSecs>`), the next request is sent to it as a trial — one per period — and
//!   a response brings it back (with `RetryEnabled`, a failed trial is retried on another
//!   server, so the client does not see it). With a HealthMonitor, its polls decide instead.
//!
//! The state is a few atomics per server, so choosing costs no lock. It belongs to the
//! configuration snapshot: a reload starts every LoadBalancer afresh, all servers in rotation
//! (as a redeployment does in Apigee). Failure counts are per LoadBalancer, as in Apigee.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::runtime::host::Host;

/// How long a server taken out of rotation waits for its trial request without a
/// HealthMonitor (Apigee checks every five minutes).
pub const DEFAULT_READMIT_AFTER: Duration = Duration::from_secs(300);

/// The most servers one LoadBalancer may list (a request tracks the ones it tried in a `u64`).
pub const MAX_SERVERS: usize = 64;

/// `<Algorithm>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// In the order listed (Apigee's default).
    RoundRobin,
    /// In proportion to each server's weight.
    Weighted,
    /// The server with the fewest requests in flight.
    LeastConnections,
}

/// One `<Server>` of a LoadBalancer: a TargetServer of the environment.
#[derive(Debug, Clone)]
pub struct Server {
    /// The TargetServer's name (`loadbalancing.targetserver`).
    pub name: String,
    /// Its resolved address.
    pub host: Host,
    /// `http://host:port` + the LoadBalancer's `<Path>` as written (`target.url`).
    pub url: String,
    /// `<Weight>` (1 unless the algorithm is Weighted).
    pub weight: u32,
    /// `<IsFallback>`.
    pub fallback: bool,
    /// The TargetServer's `enabled` (Apigee `isEnabled`): a disabled server is never chosen.
    pub enabled: bool,
}

/// `<HealthMonitor>`: how the servers are polled.
#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    /// `<IntervalInSec>`.
    pub interval: Duration,
    /// The poll.
    pub check: Check,
}

/// One poll of a `<HealthMonitor>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// `<TCPMonitor>`: the port accepts a connection within the deadline.
    Tcp {
        /// `<ConnectTimeoutInSec>`.
        connect_timeout: Duration,
        /// `<Port>`, else the server's.
        port: Option<u16>,
    },
    /// `<HTTPMonitor>`: a request whose response matches `<SuccessResponse>`.
    Http(HttpCheck),
}

/// `<HTTPMonitor>`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCheck {
    /// `<Request><ConnectTimeoutInSec>` (0: 30 s, as Apigee).
    pub connect_timeout: Duration,
    /// `<Request><SocketReadTimeoutInSec>` (0: 30 s, as Apigee).
    pub read_timeout: Duration,
    /// `<Request><Port>`, else the server's.
    pub port: Option<u16>,
    /// `<Request><Verb>` (default GET).
    pub verb: String,
    /// `<Request><Path>` (default `/`).
    pub path: String,
    /// `<Request><Header name>`s.
    pub headers: Vec<(String, String)>,
    /// `<Request><Payload>`.
    pub payload: Option<String>,
    /// `<SuccessResponse><ResponseCode>`s (none listed: any status is a success).
    pub codes: Vec<u16>,
    /// `<SuccessResponse><Header name>`s the response must carry with these values.
    pub expect_headers: Vec<(String, String)>,
}

/// The per-server state every request shares.
#[derive(Debug, Default)]
struct Health {
    /// Consecutive failures.
    failures: AtomicU32,
    /// When it was taken out of rotation (or its last trial began), in ms since the
    /// LoadBalancer's epoch plus one; 0 while in rotation.
    out_since: AtomicU64,
    /// Requests sent to it and not finished (LeastConnections).
    in_flight: AtomicU32,
}

/// A compiled `<LoadBalancer>` with its servers' health.
#[derive(Debug)]
pub struct Balancer {
    /// `<Algorithm>`.
    pub algorithm: Algorithm,
    /// The servers, in the order listed.
    pub servers: Vec<Server>,
    /// `<MaxFailures>` (0: never taken out of rotation).
    pub max_failures: u32,
    /// `<RetryEnabled>` (default true): a failed attempt is retried on another server.
    pub retry: bool,
    /// `<ServerUnhealthyResponse><ResponseCode>`s: responses that count as failures.
    pub unhealthy: Vec<u16>,
    /// How long a server out of rotation waits for its trial request (no HealthMonitor).
    pub readmit_after: Duration,
    /// `<HealthMonitor>`, when enabled.
    pub monitor: Option<Monitor>,
    /// Set once by whoever starts the HealthMonitor's polls for this LoadBalancer.
    pub monitor_started: OnceLock<()>,
    /// The indexes of the servers that are not the fallback, in order.
    primaries: Vec<usize>,
    health: Box<[Health]>,
    next: AtomicUsize,
    epoch: Instant,
}

/// A server chosen for one attempt. While it lives, the server counts one request in flight.
#[derive(Debug)]
pub struct Lease {
    balancer: Arc<Balancer>,
    index: usize,
}

impl Lease {
    /// The server's index in the LoadBalancer.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The server.
    pub fn server(&self) -> &Server {
        &self.balancer.servers[self.index]
    }

    /// The LoadBalancer it was chosen from.
    pub fn balancer(&self) -> &Arc<Balancer> {
        &self.balancer
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.balancer.health[self.index]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Which server to take: a trial of one out of rotation, or one in rotation.
enum Choice {
    Trial(usize),
    InRotation(usize),
}

impl Balancer {
    /// A LoadBalancer with every server in rotation. `servers` holds at most [`MAX_SERVERS`]
    /// (the loader checks it) and at most one fallback.
    pub fn new(
        algorithm: Algorithm,
        servers: Vec<Server>,
        max_failures: u32,
        retry: bool,
        unhealthy: Vec<u16>,
        readmit_after: Duration,
        monitor: Option<Monitor>,
    ) -> Self {
        let health = servers.iter().map(|_| Health::default()).collect();
        let primaries = (0..servers.len())
            .filter(|i| !servers[*i].fallback)
            .collect();
        Self {
            algorithm,
            servers,
            max_failures,
            retry,
            unhealthy,
            readmit_after,
            monitor,
            monitor_started: OnceLock::new(),
            primaries,
            health,
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
        }
    }

    fn stamp(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX - 1)
            + 1
    }

    /// Whether server `i` is in rotation.
    pub fn in_rotation(&self, i: usize) -> bool {
        self.health[i].out_since.load(Ordering::Relaxed) == 0
    }

    /// A server may be chosen: enabled, not tried by this request.
    fn usable(&self, i: usize, tried: u64) -> bool {
        self.servers[i].enabled && tried & (1 << i) == 0
    }

    /// Whether server `i` (out of rotation) is due for a trial request at `now`.
    fn trial_due(&self, i: usize, now: Instant) -> Option<u64> {
        if self.monitor.is_some() {
            return None;
        }
        let since = self.health[i].out_since.load(Ordering::Relaxed);
        let due = since != 0
            && self.stamp(now).saturating_sub(since)
                >= u64::try_from(self.readmit_after.as_millis()).unwrap_or(u64::MAX);
        due.then_some(since)
    }

    /// Chooses a server for an attempt, leaving out the servers in `tried` (bit `i` = server
    /// `i`). `None`: no server can take it (every one tried, disabled or out of rotation).
    pub fn pick(self: &Arc<Self>, tried: u64, now: Instant) -> Option<Lease> {
        let index = match self.choose(tried, now, true)? {
            Choice::Trial(i) | Choice::InRotation(i) => i,
        };
        self.health[index].in_flight.fetch_add(1, Ordering::Relaxed);
        Some(Lease {
            balancer: Arc::clone(self),
            index,
        })
    }

    /// Whether [`Balancer::pick`] would find a server (nothing is claimed).
    pub fn has_candidate(&self, tried: u64, now: Instant) -> bool {
        self.choose(tried, now, false).is_some()
    }

    /// The primaries first — a trial of one out of rotation when due (claimed, so one request
    /// per period makes it), else one in rotation by the algorithm — then the fallback, only
    /// while no primary is in rotation.
    fn choose(&self, tried: u64, now: Instant, claim: bool) -> Option<Choice> {
        let n = self.servers.len();
        let primary = |i: &usize| !self.servers[*i].fallback && self.usable(*i, tried);
        for i in (0..n).filter(primary) {
            if let Some(since) = self.trial_due(i, now) {
                if !claim {
                    return Some(Choice::Trial(i));
                }
                let stamp = self.stamp(now);
                if self.health[i]
                    .out_since
                    .compare_exchange(since, stamp, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    return Some(Choice::Trial(i));
                }
            }
        }
        let start = if claim {
            self.next.fetch_add(1, Ordering::Relaxed)
        } else {
            self.next.load(Ordering::Relaxed)
        };
        let eligible = |i: &usize| primary(i) && self.in_rotation(*i);
        // The primaries in turn, starting at this request's turn.
        let p = &self.primaries;
        let in_turn = (0..p.len()).map(|k| p[(start + k) % p.len()]);
        let chosen = match self.algorithm {
            Algorithm::RoundRobin => in_turn.clone().find(eligible),
            Algorithm::Weighted => self.weighted(start, &eligible),
            Algorithm::LeastConnections => in_turn
                .filter(eligible)
                .min_by_key(|i| self.health[*i].in_flight.load(Ordering::Relaxed)),
        };
        if let Some(i) = chosen {
            return Some(Choice::InRotation(i));
        }
        // Apigee: the fallback only while every other server is out of rotation (not merely
        // tried by this request).
        let others_out = (0..n)
            .filter(|i| !self.servers[*i].fallback && self.servers[*i].enabled)
            .all(|i| !self.in_rotation(i));
        if !others_out {
            return None;
        }
        let fallback = (0..n).find(|i| self.servers[*i].fallback && self.usable(*i, tried))?;
        if self.in_rotation(fallback) {
            return Some(Choice::InRotation(fallback));
        }
        let since = self.trial_due(fallback, now)?;
        let claimed = !claim
            || self.health[fallback]
                .out_since
                .compare_exchange(since, self.stamp(now), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        claimed.then_some(Choice::Trial(fallback))
    }

    /// Weighted: the `start`-th turn of a cycle in which each eligible server has as many
    /// turns as its weight (so the ratio holds exactly over every cycle, and a server out of
    /// rotation simply has no turns).
    fn weighted(&self, start: usize, eligible: &dyn Fn(&usize) -> bool) -> Option<usize> {
        let total: u64 = (0..self.servers.len())
            .filter(eligible)
            .map(|i| u64::from(self.servers[i].weight))
            .sum();
        if total == 0 {
            return None;
        }
        let mut turn = (start as u64) % total;
        for i in (0..self.servers.len()).filter(eligible) {
            let w = u64::from(self.servers[i].weight);
            if turn < w {
                return Some(i);
            }
            turn -= w;
        }
        None
    }

    /// Server `i` failed an attempt (no response, a timeout, or an unhealthy status). Returns
    /// whether this took it out of rotation.
    pub fn failed(&self, i: usize, now: Instant) -> bool {
        if self.max_failures == 0 {
            return false;
        }
        let h = &self.health[i];
        let count = h.failures.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if count < self.max_failures {
            return false;
        }
        // Also renews the period of a server already out whose trial failed.
        h.out_since.swap(self.stamp(now), Ordering::Relaxed) == 0
    }

    /// Server `i` answered normally: its count restarts, and it is back in rotation.
    pub fn succeeded(&self, i: usize) {
        let h = &self.health[i];
        // Loads first: most answers find nothing to change, and need not write the cache line.
        if h.failures.load(Ordering::Relaxed) != 0 {
            h.failures.store(0, Ordering::Relaxed);
        }
        if h.out_since.load(Ordering::Relaxed) != 0 {
            h.out_since.store(0, Ordering::Relaxed);
        }
    }

    /// Whether a response with `status` counts as a failure of the server.
    pub fn is_unhealthy(&self, status: u16) -> bool {
        self.unhealthy.contains(&status)
    }

    /// Requests in flight to server `i`.
    #[cfg(test)]
    pub fn in_flight(&self, i: usize) -> u32 {
        self.health[i].in_flight.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
#[path = "balance_tests.rs"]
mod tests;
