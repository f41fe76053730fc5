//! The state behind a tier ([`Inner`]) and how a command gets a connection: the settings, the
//! shared connection and the breaker's state word; the Redis key names; whether the tier may be
//! used at all; the per-thread lookup connections; and the `PING` that proves a connection
//! works. Separate because the breaker, the stored values, the background tasks and the API
//! all build on it, and it needs none of them.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;

use super::error::{classify, count_error, SharedError};
use crate::cache::entry::StoreKey;
use crate::cache::seal::Sealer;
use crate::metrics::METRICS;

/// A proxy thread's own connection to one tier (see [`Inner::lookup_conn`]).
struct LookupConn {
    tier: std::sync::Weak<Inner>,
    conn: ConnectionManager,
    /// `CONN_PENDING` until its first `PING` answers (`CONN_READY`) or fails (`CONN_FAILED`).
    state: Arc<AtomicU8>,
    /// When it was made: a failed one is replaced after [`LOOKUP_CONN_RETRY`].
    created: Instant,
}

/// How long a thread whose lookup connection could not connect keeps using the shared one
/// before trying again (not on every lookup: Redis may be refusing new clients).
const LOOKUP_CONN_RETRY: Duration = Duration::from_secs(1);

const CONN_PENDING: u8 = 0;
const CONN_READY: u8 = 1;
const CONN_FAILED: u8 = 2;

thread_local! {
    /// This thread's lookup connections, one per live tier.
    static LOOKUP_CONNS: std::cell::RefCell<Vec<LookupConn>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

pub(super) const STATE_CONNECTING: u8 = 0;
pub(super) const STATE_CLOSED: u8 = 1;
pub(super) const STATE_OPEN: u8 = 2;

pub(super) struct Inner {
    pub(super) redacted_url: String,
    pub(super) key_prefix: String,
    pub(super) instance_id: u64,
    pub(super) lookup_timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) client: Option<redis::Client>,
    /// How every connection of this tier is set up (the per-thread lookup connections too).
    pub(super) conn_config: ConnectionManagerConfig,
    pub(super) conn: Option<ConnectionManager>,
    pub(super) sealer: Option<Arc<Sealer>>,
    pub(super) state: AtomicU8,
    pub(super) failures: AtomicU32,
    pub(super) cooldown: Mutex<Duration>,
    pub(super) shutdown: watch::Receiver<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.state.load(Ordering::Acquire) == STATE_OPEN {
            METRICS.redis_breaker_open.dec();
        }
    }
}

impl Inner {
    pub(super) fn entry_key(&self, stage: &str, key: &StoreKey) -> String {
        format!("{}:v1:{}:{}", self.key_prefix, stage, key.to_hex())
    }

    pub(super) fn purge_key(&self, stage: &str, prefix: &[u8; 16]) -> String {
        format!(
            "{}:v1:{}:purge:{}",
            self.key_prefix,
            stage,
            hex::encode(prefix)
        )
    }

    pub(super) fn flush_key(&self, stage: &str) -> String {
        format!("{}:v1:{}:flush", self.key_prefix, stage)
    }

    pub(super) fn channel(&self) -> String {
        format!("{}:invalidations", self.key_prefix)
    }

    pub(super) fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// The connection when the tier may be used; otherwise counts why not under `op`.
    pub(super) fn usable(&self, op: &str) -> Result<ConnectionManager, SharedError> {
        let (kind, err) = match self.state() {
            STATE_CLOSED => match &self.conn {
                Some(c) => return Ok(c.clone()),
                None => ("disconnected", SharedError::Disconnected),
            },
            STATE_OPEN => ("breaker_open", SharedError::BreakerOpen),
            _ => ("disconnected", SharedError::Disconnected),
        };
        count_error(op, kind);
        Err(err)
    }

    /// The connection for a lookup made on this thread: [`Inner::usable`]'s checks, then this
    /// thread's own connection once it is up. Why: a lookup on the shared connection hands its
    /// command to that connection's driver task on another thread and is woken from there
    /// when the reply comes — cross-thread wake-ups that cost more CPU than the command itself
    /// when proxy threads, Redis and clients share few cores. A connection created on a proxy
    /// thread has its driver on that thread's runtime (Pingora's default no-steal runtime runs
    /// one per thread), so the round trip stays on the thread. It is connected in the
    /// background (a `PING`): until that answers — and off a runtime — lookups use the shared
    /// connection, so a new thread never spends a lookup's deadline connecting.
    pub(super) fn lookup_conn(
        self: &Arc<Self>,
        op: &str,
    ) -> Result<ConnectionManager, SharedError> {
        let shared = self.usable(op)?;
        let Some(client) = &self.client else {
            return Ok(shared);
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return Ok(shared);
        }
        let local = LOOKUP_CONNS.try_with(|conns| {
            let mut conns = conns.borrow_mut();
            // Connections of tiers that are gone (replaced on reload) are dropped here, and
            // ones that could not connect once they are old enough to retry (a new one is made
            // below; meanwhile the shared connection serves).
            conns.retain(|c| {
                c.tier.strong_count() > 0
                    && (c.state.load(Ordering::Acquire) != CONN_FAILED
                        || c.created.elapsed() < LOOKUP_CONN_RETRY)
            });
            let mine = Arc::as_ptr(self);
            if let Some(c) = conns.iter().find(|c| c.tier.as_ptr() == mine) {
                return (c.state.load(Ordering::Acquire) == CONN_READY).then(|| c.conn.clone());
            }
            let conn =
                ConnectionManager::new_lazy_with_config(client.clone(), self.conn_config.clone())
                    .ok()?;
            let state = Arc::new(AtomicU8::new(CONN_PENDING));
            let (mut probe, done) = (conn.clone(), Arc::clone(&state));
            let timeout = self.connect_timeout;
            tokio::spawn(async move {
                let cmd = redis::cmd("PING");
                let ping = cmd.query_async::<redis::Value>(&mut probe);
                let ok = matches!(tokio::time::timeout(timeout, ping).await, Ok(Ok(_)));
                done.store(if ok { CONN_READY } else { CONN_FAILED }, Ordering::Release);
            });
            conns.push(LookupConn {
                tier: Arc::downgrade(self),
                conn,
                state,
                created: Instant::now(),
            });
            None
        });
        Ok(local.ok().flatten().unwrap_or(shared))
    }

    /// One `PING` (twice when the first meets a connection that already failed, since that
    /// call only starts a reconnect).
    pub(super) async fn ping(&self, op: &str) -> bool {
        let Some(conn) = &self.conn else {
            return false;
        };
        for attempt in 0..2 {
            let mut c = conn.clone();
            let res = tokio::time::timeout(
                self.connect_timeout,
                redis::cmd("PING").query_async::<redis::Value>(&mut c),
            )
            .await;
            match res {
                Ok(Ok(_)) => return true,
                Ok(Err(e)) => {
                    let (kind, _) = classify(&e);
                    count_error(op, kind);
                    if attempt == 0 && e.is_io_error() {
                        continue;
                    }
                    return false;
                }
                Err(_) => {
                    count_error(op, "timeout");
                    return false;
                }
            }
        }
        false
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cache::shared::test_support::{eventually, settings, sk, RedisServer};
    use crate::cache::shared::SharedTier;

    /// Lookups made on a runtime thread get a connection of that thread (its driver runs
    /// there); the connection closes when the thread ends.
    #[tokio::test(flavor = "multi_thread")]
    async fn each_thread_looks_up_on_its_own_connection() {
        let server = RedisServer::start();
        let tier = SharedTier::connect(&settings(&server.url()), 1).await;
        let mut raw = server.client().await;
        let clients = |mut raw: redis::aio::MultiplexedConnection| async move {
            let list: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query_async(&mut raw)
                .await
                .unwrap();
            list.lines().count()
        };
        let before = clients(raw.clone()).await;
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let tier = tier.clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        // The first lookup starts this thread's connection; lookups use it once
                        // its PING has answered.
                        let deadline = Instant::now() + Duration::from_secs(5);
                        loop {
                            let _ = tier
                                .get("s", &sk(1), false, Duration::from_millis(500))
                                .await;
                            let ready = LOOKUP_CONNS.with(|c| {
                                c.borrow()
                                    .iter()
                                    .any(|c| c.state.load(Ordering::Acquire) == CONN_READY)
                            });
                            if ready {
                                break;
                            }
                            assert!(Instant::now() < deadline, "never connected");
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        // Ten lookups: still one connection for this thread.
                        for _ in 0..10 {
                            let _ = tier
                                .get("s", &sk(1), false, Duration::from_millis(500))
                                .await;
                        }
                        LOOKUP_CONNS.with(|c| c.borrow().len())
                    })
                })
            })
            .collect();
        // Both threads are done looking up but alive until joined: count their connections.
        let conns: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(conns, vec![1, 1]);
        // Joined threads dropped their connections (thread-locals and runtimes are gone).
        eventually(
            "the threads' connections close",
            Duration::from_secs(5),
            || {
                let raw = raw.clone();
                async move { (clients(raw).await == before).then_some(()) }
            },
        )
        .await;
        // The shared connection still serves lookups off the runtime threads.
        let _: () = redis::cmd("PING").query_async(&mut raw).await.unwrap();
        assert!(tier
            .get("s", &sk(1), false, Duration::from_millis(500))
            .await
            .is_none());
    }
}
