//! The shared tier: one Redis every instance reads and writes, plus purge records and an
//! invalidation channel that reach every instance.
//!
//! Redis is an optimisation, never a dependency: every failure is a miss (reads) or a dropped
//! write, counted in `cachegate_redis_errors_total{op,kind}` /
//! `cachegate_redis_write_dropped_total{reason}`, and the gateway starts and serves with Redis
//! down.
//!
//! - **Connection**: one `redis::aio::ConnectionManager`, created lazily (never blocks), pipelined
//!   by redis-rs across all tasks. Until the first successful `PING` the tier is *connecting*: a
//!   background task retries with exponential backoff (100 ms doubling, capped at 2 s). Lookups
//!   made on a runtime thread use a connection of that thread once it is up (see
//!   `Inner::lookup_conn`), and read the entry with its purge records in one pipeline.
//! - **Circuit breaker**: after [`BREAKER_THRESHOLD`] consecutive connection-level failures
//!   (timeouts, I/O errors; not server error replies) the breaker opens for a cool-down (2 s,
//!   doubling to 30 s per failed probe). While open (and while connecting) lookups return `None`
//!   at once and writes are dropped. One background `PING` after each cool-down closes it.
//!   Gauge `cachegate_redis_breaker_open`.
//! - **Reads** carry the caller's deadline (`lookup_timeout`); **writes** go to a bounded queue
//!   drained by one writer task that pipelines them (`SET … PX`), with `connect_timeout` as their
//!   deadline; `put` never awaits. Deletes, purge records and publishes also use
//!   `connect_timeout` and report failure to the caller.
//!
//! Keys (`{p}` = `RedisSettings::key_prefix`; stage names are `[A-Za-z0-9._-]+`, so no `:`):
//!
//! ```text
//! {p}:v1:{stage}:{32 hex store key}     entry
//! {p}:v1:{stage}:purge:{32 hex prefix}  prefix purge record: unix ms, the max ever recorded
//! {p}:v1:{stage}:flush                  stage flush floor: unix ms, the max ever recorded
//! {p}:invalidations                     pub/sub channel
//! ```
//!
//! Entry value (big-endian), written with `SET key value PX <ms until expires_at>`:
//!
//! ```text
//! plaintext: [0x01 format][created unix ms u64][expires unix ms u64][prefix count u16]
//!            [prefixes 16 B each][meta len u32][meta][body]
//! sealed:    [0xC1][Sealer output of the plaintext form above, AAD = the Redis key]
//! ```
//!
//! The first byte tells the forms apart, and the caller's `encrypted` flag must match it: a
//! sealed value is never decoded as plaintext, and a plaintext value is never accepted where
//! encryption was asked for (someone with write access to Redis cannot inject unsealed entries
//! into an encrypted cache). A mismatch is a miss; a value that fails to decode or open is a
//! miss and is `UNLINK`ed.
//!
//! Invalidation messages are JSON: `{"v":1,"from":<instance id>,"msg":{"op":"remove",
//! "stage":"s","keys":["<hex>",…]}}`, `{"op":"purge_prefix","stage":"s","prefix":"<hex>",
//! "at_ms":N}`, `{"op":"flush","stage":"s","at_ms":N}`. An instance ignores its own.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::entry::{Entry, StoreKey};
use super::purge::MAX_ENTRY_LIFETIME;
use super::seal::Sealer;
use crate::metrics::METRICS;
use crate::runtime::stage::RedisSettings;

/// First byte of a plaintext entry value: the entry format version.
pub const ENTRY_FORMAT: u8 = 1;
/// First byte of a sealed entry value.
pub const SEALED_MARKER: u8 = 0xC1;
/// Default capacity of the write queue.
pub const DEFAULT_WRITE_QUEUE: usize = 1024;
/// Consecutive connection-level failures that open the breaker.
pub const BREAKER_THRESHOLD: u32 = 5;
/// First cool-down of an open breaker.
pub const BREAKER_COOLDOWN: Duration = Duration::from_secs(2);
/// Longest cool-down of an open breaker.
pub const BREAKER_MAX_COOLDOWN: Duration = Duration::from_secs(30);

/// Writes sent in one pipeline.
const WRITE_BATCH: usize = 64;
/// Connect/resubscribe backoff.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often the subscriber checks its connection is alive.
const SUBSCRIPTION_PING: Duration = Duration::from_secs(1);
/// Events buffered for a slow subscription consumer (the subscriber then stops reading; Redis
/// eventually drops it, which is reported as `Lost`).
const SUBSCRIPTION_BUFFER: usize = 1024;
/// Version of the invalidation message format.
const MESSAGE_VERSION: u8 = 1;

/// Keeps a purge record as the maximum of the times recorded:
/// KEYS[1] = record, ARGV[1] = unix ms, ARGV[2] = TTL ms.
const MAX_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then cur = tonumber(cur) end
if (not cur) or cur < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

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

const STATE_CONNECTING: u8 = 0;
const STATE_CLOSED: u8 = 1;
const STATE_OPEN: u8 = 2;

/// Why a shared-tier operation that reports failure failed.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// Redis has not been reachable since startup (or the URL is unusable).
    #[error("Redis is not connected")]
    Disconnected,
    /// The circuit breaker is open.
    #[error("the Redis circuit breaker is open")]
    BreakerOpen,
    /// No answer within the deadline.
    #[error("Redis did not answer in time")]
    Timeout,
    /// Redis answered with an error, or the connection failed.
    #[error("Redis error ({kind}): {detail}")]
    Redis { kind: &'static str, detail: String },
    /// The message could not be serialized.
    #[error("could not serialize the message")]
    Serialize,
}

/// An invalidation fanned out to every instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// Remove these entries from the local tier.
    Remove { stage: String, keys: Vec<StoreKey> },
    /// Everything under `prefix` created at or before `at_ms` (unix ms) is purged.
    PurgePrefix {
        stage: String,
        prefix: [u8; 16],
        at_ms: u64,
    },
    /// Everything in the stage created at or before `at_ms` (unix ms) is purged.
    Flush { stage: String, at_ms: u64 },
}

/// What a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionEvent {
    /// The subscription is (re)established: from now on other instances' invalidations arrive.
    /// After a `Lost`, entries stored locally during the gap missed invalidations: clear again.
    Subscribed,
    /// Another instance's invalidation.
    Message(Invalidation),
    /// The subscription broke: invalidations may have been missed; clear the local tier.
    /// Nothing but `Subscribed` follows until it is re-established.
    Lost,
}

/// Construction options beyond `RedisSettings`.
#[derive(Debug, Clone)]
pub struct SharedOptions {
    /// Keys for `encrypted` entries. Without them, encrypted puts are dropped and encrypted
    /// gets miss (never stored in plaintext).
    pub sealer: Option<Arc<Sealer>>,
    /// Capacity of the write queue.
    pub write_queue: usize,
}

impl Default for SharedOptions {
    fn default() -> Self {
        Self {
            sealer: None,
            write_queue: DEFAULT_WRITE_QUEUE,
        }
    }
}

enum WriteOp {
    Set {
        stage: String,
        key: StoreKey,
        entry: Arc<Entry>,
        encrypted: bool,
    },
    /// Drop a value that failed to decode or open.
    Unlink(String),
}

/// The Redis shared tier. Cheap to clone; background tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct SharedTier {
    inner: Arc<Inner>,
    writes: mpsc::Sender<WriteOp>,
    /// Dropping the last clone closes the channel, which stops the background tasks.
    _alive: Arc<watch::Sender<()>>,
}

impl std::fmt::Debug for SharedTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTier")
            .field("url", &self.inner.redacted_url)
            .field("instance_id", &self.inner.instance_id)
            .field("state", &self.inner.state.load(Ordering::Relaxed))
            .finish()
    }
}

struct Inner {
    redacted_url: String,
    key_prefix: String,
    instance_id: u64,
    lookup_timeout: Duration,
    connect_timeout: Duration,
    client: Option<redis::Client>,
    /// How every connection of this tier is set up (the per-thread lookup connections too).
    conn_config: ConnectionManagerConfig,
    conn: Option<ConnectionManager>,
    sealer: Option<Arc<Sealer>>,
    state: AtomicU8,
    failures: AtomicU32,
    cooldown: Mutex<Duration>,
    shutdown: watch::Receiver<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.state.load(Ordering::Acquire) == STATE_OPEN {
            METRICS.redis_breaker_open.dec();
        }
    }
}

/// `redis://user:secret@host:6379/0?password=x` → `redis://***@host:6379/0?***`.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, _)) => (b, "?***"),
        None => (url, ""),
    };
    let redacted = match (base.find("://"), base.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &base[..s], &base[at + 1..]),
        _ => base.to_owned(),
    };
    format!("{redacted}{query}")
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Error kind label, and whether it says something about Redis's health (feeds the breaker).
fn classify(e: &redis::RedisError) -> (&'static str, bool) {
    if e.is_timeout() {
        return ("timeout", true);
    }
    // `maxmemory` reached under `noeviction`: Redis is healthy, just full (writes fail, reads
    // work), so the breaker stays closed.
    if is_out_of_memory(e) {
        return ("oom", false);
    }
    match e.kind() {
        redis::ErrorKind::Io => ("io", true),
        redis::ErrorKind::AuthenticationFailed => ("auth", true),
        redis::ErrorKind::Parse => ("protocol", true),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension => ("response", false),
        _ => ("client", e.is_unrecoverable_error()),
    }
}

/// Whether Redis refused a command for lack of memory (also inside a failed pipeline, whose
/// error carries one server error per failed command).
fn is_out_of_memory(e: &redis::RedisError) -> bool {
    e.code() == Some("OOM")
        || e.clone()
            .into_server_errors()
            .is_some_and(|errs| errs.iter().any(|(_, s)| s.code() == "OOM"))
}

fn count_error(op: &str, kind: &str) {
    METRICS.redis_errors.with_label_values(&[op, kind]).inc();
}

fn count_dropped(reason: &str, n: u64) {
    METRICS
        .redis_write_dropped
        .with_label_values(&[reason])
        .inc_by(n);
}

/// The plaintext wire form of an entry; `None` when a length does not fit its field.
fn encode_entry(entry: &Entry) -> Option<Vec<u8>> {
    let prefix_count = u16::try_from(entry.prefixes.len()).ok()?;
    let meta_len = u32::try_from(entry.meta.len()).ok()?;
    let mut out = Vec::with_capacity(
        1 + 8 + 8 + 2 + entry.prefixes.len() * 16 + 4 + entry.meta.len() + entry.body.len(),
    );
    out.push(ENTRY_FORMAT);
    out.extend_from_slice(&unix_ms(entry.created).to_be_bytes());
    out.extend_from_slice(&unix_ms(entry.expires_at).to_be_bytes());
    out.extend_from_slice(&prefix_count.to_be_bytes());
    for p in entry.prefixes.iter() {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(&meta_len.to_be_bytes());
    out.extend_from_slice(&entry.meta);
    out.extend_from_slice(&entry.body);
    Some(out)
}

/// Parses the plaintext wire form; `None` on any inconsistency.
fn decode_entry(buf: Bytes) -> Option<Entry> {
    fn take<const N: usize>(buf: &[u8], pos: &mut usize) -> Option<[u8; N]> {
        let end = pos.checked_add(N)?;
        let bytes: [u8; N] = buf.get(*pos..end)?.try_into().ok()?;
        *pos = end;
        Some(bytes)
    }
    let mut pos = 0usize;
    let [version] = take::<1>(&buf, &mut pos)?;
    if version != ENTRY_FORMAT {
        return None;
    }
    let created = u64::from_be_bytes(take::<8>(&buf, &mut pos)?);
    let expires = u64::from_be_bytes(take::<8>(&buf, &mut pos)?);
    let count = usize::from(u16::from_be_bytes(take::<2>(&buf, &mut pos)?));
    let mut prefixes = Vec::with_capacity(count);
    for _ in 0..count {
        prefixes.push(take::<16>(&buf, &mut pos)?);
    }
    let meta_len = usize::try_from(u32::from_be_bytes(take::<4>(&buf, &mut pos)?)).ok()?;
    let meta_end = pos.checked_add(meta_len)?;
    if meta_end > buf.len() {
        return None;
    }
    Some(Entry {
        meta: buf.slice(pos..meta_end),
        body: buf.slice(meta_end..),
        created: from_unix_ms(created),
        expires_at: from_unix_ms(expires),
        prefixes: prefixes.into(),
        decoded: Default::default(),
    })
}

#[derive(Serialize, Deserialize)]
struct WireMessage {
    v: u8,
    from: u64,
    msg: WireBody,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum WireBody {
    Remove {
        stage: String,
        keys: Vec<String>,
    },
    PurgePrefix {
        stage: String,
        prefix: String,
        at_ms: u64,
    },
    Flush {
        stage: String,
        at_ms: u64,
    },
}

/// Purge records as read: one time (unix ms) per prefix asked for, then the stage's flush floor.
pub type PurgeTimes = (Vec<Option<u64>>, Option<u64>);

/// The `MGET` reply for `prefixes` purge records and the flush floor; `None` (counted) when it
/// has the wrong shape.
fn parse_purge_times(mut values: Vec<Option<String>>, prefixes: usize) -> Option<PurgeTimes> {
    if values.len() != prefixes + 1 {
        count_error("purge_times", "decode");
        return None;
    }
    let parse = |v: Option<String>| {
        let v = v?;
        let parsed = v.parse::<u64>().ok();
        if parsed.is_none() {
            count_error("purge_times", "decode");
        }
        parsed
    };
    let floor = values.pop().and_then(parse);
    Some((values.into_iter().map(parse).collect(), floor))
}

fn hex16(s: &str) -> Option<[u8; 16]> {
    hex::decode(s).ok()?.try_into().ok()
}

fn encode_message(from: u64, msg: &Invalidation) -> Option<Vec<u8>> {
    let body = match msg {
        Invalidation::Remove { stage, keys } => WireBody::Remove {
            stage: stage.clone(),
            keys: keys.iter().map(StoreKey::to_hex).collect(),
        },
        Invalidation::PurgePrefix {
            stage,
            prefix,
            at_ms,
        } => WireBody::PurgePrefix {
            stage: stage.clone(),
            prefix: hex::encode(prefix),
            at_ms: *at_ms,
        },
        Invalidation::Flush { stage, at_ms } => WireBody::Flush {
            stage: stage.clone(),
            at_ms: *at_ms,
        },
    };
    serde_json::to_vec(&WireMessage {
        v: MESSAGE_VERSION,
        from,
        msg: body,
    })
    .ok()
}

/// `(sender, message)`; `None` for anything malformed or of another version.
fn decode_message(payload: &[u8]) -> Option<(u64, Invalidation)> {
    let wire: WireMessage = serde_json::from_slice(payload).ok()?;
    if wire.v != MESSAGE_VERSION {
        return None;
    }
    let msg = match wire.msg {
        WireBody::Remove { stage, keys } => Invalidation::Remove {
            stage,
            keys: keys
                .iter()
                .map(|k| hex16(k).map(StoreKey))
                .collect::<Option<Vec<_>>>()?,
        },
        WireBody::PurgePrefix {
            stage,
            prefix,
            at_ms,
        } => Invalidation::PurgePrefix {
            stage,
            prefix: hex16(&prefix)?,
            at_ms,
        },
        WireBody::Flush { stage, at_ms } => Invalidation::Flush { stage, at_ms },
    };
    Some((wire.from, msg))
}

impl Inner {
    fn entry_key(&self, stage: &str, key: &StoreKey) -> String {
        format!("{}:v1:{}:{}", self.key_prefix, stage, key.to_hex())
    }

    fn purge_key(&self, stage: &str, prefix: &[u8; 16]) -> String {
        format!(
            "{}:v1:{}:purge:{}",
            self.key_prefix,
            stage,
            hex::encode(prefix)
        )
    }

    fn flush_key(&self, stage: &str) -> String {
        format!("{}:v1:{}:flush", self.key_prefix, stage)
    }

    fn channel(&self) -> String {
        format!("{}:invalidations", self.key_prefix)
    }

    fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// The connection when the tier may be used; otherwise counts why not under `op`.
    fn usable(&self, op: &str) -> Result<ConnectionManager, SharedError> {
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
    fn lookup_conn(self: &Arc<Self>, op: &str) -> Result<ConnectionManager, SharedError> {
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

    fn record_success(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    fn record_failure(self: &Arc<Self>) {
        if self.state() != STATE_CLOSED {
            return;
        }
        let n = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if n >= BREAKER_THRESHOLD
            && self
                .state
                .compare_exchange(
                    STATE_CLOSED,
                    STATE_OPEN,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
        {
            METRICS.redis_breaker_open.inc();
            let cooldown = self.cooldown.lock().map(|c| *c).unwrap_or(BREAKER_COOLDOWN);
            tracing::warn!(
                url = %self.redacted_url,
                failures = n,
                cooldown_ms = duration_ms(cooldown),
                "Redis circuit breaker opened: the shared tier is bypassed."
            );
            tokio::spawn(probe_task(Arc::clone(self)));
        }
    }

    /// Counts and feeds the breaker with the outcome of a command run under a deadline.
    fn outcome<T>(
        self: &Arc<Self>,
        op: &str,
        res: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, SharedError> {
        match res {
            Ok(Ok(v)) => {
                self.record_success();
                Ok(v)
            }
            Ok(Err(e)) => {
                let (kind, health) = classify(&e);
                count_error(op, kind);
                if health {
                    self.record_failure();
                } else {
                    self.record_success();
                }
                Err(SharedError::Redis {
                    kind,
                    detail: e.to_string(),
                })
            }
            Err(_) => {
                count_error(op, "timeout");
                self.record_failure();
                Err(SharedError::Timeout)
            }
        }
    }

    /// One `PING` (twice when the first meets a connection that already failed, since that
    /// call only starts a reconnect).
    async fn ping(&self, op: &str) -> bool {
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

    /// Decodes a stored value for a caller that asked for `encrypted` or not.
    fn decode_value(
        &self,
        rkey: &str,
        raw: Vec<u8>,
        encrypted: bool,
    ) -> Result<Entry, DecodeError> {
        match (raw.first().copied(), encrypted) {
            (Some(SEALED_MARKER), true) => {
                let sealer = self.sealer.as_ref().ok_or(DecodeError::NoKey)?;
                let plain = sealer
                    .open(rkey.as_bytes(), raw.get(1..).unwrap_or_default())
                    .ok_or(DecodeError::Open)?;
                decode_entry(Bytes::from(plain)).ok_or(DecodeError::Corrupt)
            }
            (Some(ENTRY_FORMAT), false) => {
                decode_entry(Bytes::from(raw)).ok_or(DecodeError::Corrupt)
            }
            (Some(SEALED_MARKER), false) | (Some(ENTRY_FORMAT), true) => Err(DecodeError::Mode),
            _ => Err(DecodeError::Corrupt),
        }
    }

    /// The stored value for a write; `None` (counted) when it cannot be written.
    fn encode_value(&self, rkey: &str, entry: &Entry, encrypted: bool) -> Option<Vec<u8>> {
        let Some(plain) = encode_entry(entry) else {
            count_error("put", "too_large");
            return None;
        };
        if !encrypted {
            return Some(plain);
        }
        let Some(sealer) = &self.sealer else {
            count_error("put", "no_key");
            return None;
        };
        match sealer.seal(rkey.as_bytes(), &plain) {
            Ok(sealed) => {
                let mut out = Vec::with_capacity(1 + sealed.len());
                out.push(SEALED_MARKER);
                out.extend_from_slice(&sealed);
                Some(out)
            }
            Err(_) => {
                count_error("put", "seal");
                None
            }
        }
    }

    async fn write_batch(self: &Arc<Self>, batch: &mut Vec<WriteOp>) {
        let n = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        let mut conn = match self.state() {
            STATE_CLOSED => match &self.conn {
                Some(c) => c.clone(),
                None => return count_dropped("disconnected", n),
            },
            STATE_OPEN => return count_dropped("breaker_open", n),
            _ => return count_dropped("disconnected", n),
        };
        let now = SystemTime::now();
        let mut pipe = redis::pipe();
        let mut queued = 0u64;
        for op in batch.drain(..) {
            match op {
                WriteOp::Set {
                    stage,
                    key,
                    entry,
                    encrypted,
                } => {
                    let Ok(left) = entry.expires_at.duration_since(now) else {
                        continue;
                    };
                    let px = duration_ms(left);
                    if px == 0 {
                        continue;
                    }
                    let rkey = self.entry_key(&stage, &key);
                    let Some(value) = self.encode_value(&rkey, &entry, encrypted) else {
                        continue;
                    };
                    pipe.cmd("SET")
                        .arg(&rkey)
                        .arg(value)
                        .arg("PX")
                        .arg(px)
                        .ignore();
                    queued += 1;
                }
                WriteOp::Unlink(rkey) => {
                    pipe.cmd("UNLINK").arg(rkey).ignore();
                    queued += 1;
                }
            }
        }
        if queued == 0 {
            return;
        }
        let res =
            tokio::time::timeout(self.connect_timeout, pipe.query_async::<()>(&mut conn)).await;
        if self.outcome("put", res).is_err() {
            count_dropped("error", queued);
        }
    }
}

enum DecodeError {
    /// Not a value of a known format, or inconsistent.
    Corrupt,
    /// The seal did not open (wrong key, tampered, moved from another key).
    Open,
    /// Sealed where plaintext was expected, or the reverse.
    Mode,
    /// Sealed, but no keys are configured.
    NoKey,
}

impl DecodeError {
    fn kind(&self) -> &'static str {
        match self {
            Self::Corrupt => "decode",
            Self::Open => "open",
            Self::Mode => "mode",
            Self::NoKey => "no_key",
        }
    }
}

/// Runs while the breaker is open: after each cool-down one `PING`; success closes it.
async fn probe_task(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.clone();
    loop {
        let cooldown = inner
            .cooldown
            .lock()
            .map(|c| *c)
            .unwrap_or(BREAKER_COOLDOWN);
        tokio::select! {
            _ = tokio::time::sleep(cooldown) => {}
            _ = shutdown.changed() => return,
        }
        if inner.ping("probe").await {
            inner.failures.store(0, Ordering::Relaxed);
            if let Ok(mut c) = inner.cooldown.lock() {
                *c = BREAKER_COOLDOWN;
            }
            if inner
                .state
                .compare_exchange(
                    STATE_OPEN,
                    STATE_CLOSED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                METRICS.redis_breaker_open.dec();
            }
            tracing::info!(url = %inner.redacted_url, "Redis circuit breaker closed.");
            return;
        }
        if let Ok(mut c) = inner.cooldown.lock() {
            *c = c.saturating_mul(2).min(BREAKER_MAX_COOLDOWN);
        }
    }
}

/// Runs until the first successful `PING`.
async fn connect_task(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.clone();
    let mut backoff = BACKOFF_MIN;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        if inner.ping("connect").await {
            inner.failures.store(0, Ordering::Relaxed);
            inner.state.store(STATE_CLOSED, Ordering::Release);
            tracing::info!(url = %inner.redacted_url, "Connected to Redis.");
            return;
        }
        backoff = backoff.saturating_mul(2).min(BACKOFF_MAX);
    }
}

async fn writer_task(inner: Arc<Inner>, mut rx: mpsc::Receiver<WriteOp>) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        inner.write_batch(&mut batch).await;
        batch.clear();
    }
}

enum SubscriptionEnd {
    /// The consumer or the tier is gone.
    Exit,
    /// The connection broke (kind label).
    Lost(&'static str),
}

async fn subscribe_once(
    inner: &Inner,
    client: &redis::Client,
) -> Result<(redis::aio::PubSubSink, redis::aio::PubSubStream), &'static str> {
    let pubsub = match tokio::time::timeout(inner.connect_timeout, client.get_async_pubsub()).await
    {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return Err(classify(&e).0),
        Err(_) => return Err("timeout"),
    };
    let (mut sink, stream) = pubsub.split();
    match tokio::time::timeout(inner.connect_timeout, sink.subscribe(inner.channel())).await {
        Ok(Ok(())) => Ok((sink, stream)),
        Ok(Err(e)) => Err(classify(&e).0),
        Err(_) => Err("timeout"),
    }
}

async fn run_subscription(
    inner: &Inner,
    mut sink: redis::aio::PubSubSink,
    mut stream: redis::aio::PubSubStream,
    tx: &mpsc::Sender<SubscriptionEvent>,
    shutdown: &mut watch::Receiver<()>,
) -> SubscriptionEnd {
    let mut ping = tokio::time::interval(SUBSCRIPTION_PING);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return SubscriptionEnd::Lost("closed");
                };
                match decode_message(msg.get_payload_bytes()) {
                    Some((from, _)) if from == inner.instance_id => {}
                    Some((_, inv)) => {
                        if tx.send(SubscriptionEvent::Message(inv)).await.is_err() {
                            return SubscriptionEnd::Exit;
                        }
                    }
                    None => count_error("subscribe", "decode"),
                }
            }
            _ = ping.tick() => {
                let pong = tokio::time::timeout(inner.connect_timeout, sink.ping::<redis::Value>());
                match pong.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return SubscriptionEnd::Lost(classify(&e).0),
                    Err(_) => return SubscriptionEnd::Lost("timeout"),
                }
            }
            _ = shutdown.changed() => return SubscriptionEnd::Exit,
            _ = tx.closed() => return SubscriptionEnd::Exit,
        }
    }
}

async fn subscriber_task(inner: Arc<Inner>, tx: mpsc::Sender<SubscriptionEvent>) {
    let mut shutdown = inner.shutdown.clone();
    let Some(client) = inner.client.clone() else {
        // No usable URL: nothing will ever arrive; keep the channel open until shutdown.
        tokio::select! {
            _ = shutdown.changed() => {}
            _ = tx.closed() => {}
        }
        return;
    };
    let mut backoff = BACKOFF_MIN;
    loop {
        let attempt = tokio::select! {
            r = subscribe_once(&inner, &client) => r,
            _ = shutdown.changed() => return,
            _ = tx.closed() => return,
        };
        match attempt {
            Ok((sink, stream)) => {
                backoff = BACKOFF_MIN;
                if tx.send(SubscriptionEvent::Subscribed).await.is_err() {
                    return;
                }
                match run_subscription(&inner, sink, stream, &tx, &mut shutdown).await {
                    SubscriptionEnd::Exit => return,
                    SubscriptionEnd::Lost(kind) => {
                        count_error("subscribe", kind);
                        METRICS.redis_subscription_lost.inc();
                        tracing::warn!(
                            url = %inner.redacted_url,
                            kind,
                            "Redis invalidation subscription lost: the local tier must be cleared."
                        );
                        if tx.send(SubscriptionEvent::Lost).await.is_err() {
                            return;
                        }
                    }
                }
            }
            Err(kind) => count_error("subscribe", kind),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
            _ = tx.closed() => return,
        }
        backoff = backoff.saturating_mul(2).min(BACKOFF_MAX);
    }
}

impl SharedTier {
    /// [`SharedTier::connect_with`] with the default write queue and the encryption keys read
    /// from `settings.encryption_keys_env` (when set). A missing or malformed variable is logged
    /// (never the key material) and leaves the tier without keys: encrypted entries are then
    /// neither stored nor read, never stored in plaintext.
    pub async fn connect(settings: &RedisSettings, instance_id: u64) -> SharedTier {
        let sealer = match &settings.encryption_keys_env {
            Some(var) => match Sealer::from_env(var) {
                Ok(Some(s)) => Some(Arc::new(s)),
                Ok(None) => {
                    tracing::error!(
                        var = %var,
                        "The cache encryption key variable is not set: \
                         encrypted caches bypass Redis."
                    );
                    None
                }
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        "Cannot read the cache encryption keys: encrypted caches bypass Redis."
                    );
                    None
                }
            },
            None => None,
        };
        let options = SharedOptions {
            sealer,
            ..SharedOptions::default()
        };
        Self::connect_with(settings, instance_id, options).await
    }

    /// Builds the tier. Never fails: with Redis down (or an unusable URL) the tier starts
    /// disconnected and a background task keeps trying. Waits for at most one `PING`
    /// (`connect_timeout`) so a healthy Redis is usable as soon as this returns.
    pub async fn connect_with(
        settings: &RedisSettings,
        instance_id: u64,
        options: SharedOptions,
    ) -> SharedTier {
        let redacted_url = redact_url(&settings.url);
        let client = match redis::Client::open(settings.url.as_str()) {
            Ok(c) => Some(c),
            Err(_) => {
                // The error text may quote the URL: log only the redacted form.
                tracing::error!(
                    url = %redacted_url,
                    "Invalid Redis URL: the shared tier is disabled."
                );
                None
            }
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.connect_timeout.max(settings.lookup_timeout)))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = client.as_ref().and_then(|c| {
            ConnectionManager::new_lazy_with_config(c.clone(), config.clone())
                .map_err(|e| {
                    tracing::error!(
                        url = %redacted_url,
                        kind = classify(&e).0,
                        "Cannot set up the Redis connection: the shared tier is disabled."
                    );
                })
                .ok()
        });
        let (alive, shutdown) = watch::channel(());
        let inner = Arc::new(Inner {
            redacted_url,
            key_prefix: settings.key_prefix.clone(),
            instance_id,
            lookup_timeout: settings.lookup_timeout,
            connect_timeout: settings.connect_timeout,
            client,
            conn_config: config,
            conn,
            sealer: options.sealer,
            state: AtomicU8::new(STATE_CONNECTING),
            failures: AtomicU32::new(0),
            cooldown: Mutex::new(BREAKER_COOLDOWN),
            shutdown,
        });
        let (writes, rx) = mpsc::channel(options.write_queue.max(1));
        tokio::spawn(writer_task(Arc::clone(&inner), rx));
        if inner.conn.is_some() {
            if inner.ping("connect").await {
                inner.state.store(STATE_CLOSED, Ordering::Release);
                tracing::info!(url = %inner.redacted_url, "Connected to Redis.");
            } else {
                tracing::warn!(
                    url = %inner.redacted_url,
                    "Redis is unreachable: starting without the shared tier, \
                     retrying in the background."
                );
                tokio::spawn(connect_task(Arc::clone(&inner)));
            }
        }
        SharedTier {
            inner,
            writes,
            _alive: Arc::new(alive),
        }
    }

    /// True while Redis is usable (connected and the breaker closed).
    pub fn is_connected(&self) -> bool {
        self.inner.state() == STATE_CLOSED
    }

    /// True while the circuit breaker is open.
    pub fn breaker_open(&self) -> bool {
        self.inner.state() == STATE_OPEN
    }

    /// The configured lookup deadline.
    pub fn lookup_timeout(&self) -> Duration {
        self.inner.lookup_timeout
    }

    /// The Redis key of an entry.
    pub fn entry_key(&self, stage: &str, key: &StoreKey) -> String {
        self.inner.entry_key(stage, key)
    }

    /// Looks an entry up within `deadline`. Any failure — timeout, error, breaker open, a value
    /// that does not decode or open, an `encrypted` flag that does not match how the value was
    /// stored — is a miss (`None`), counted by kind. Expired entries are misses too.
    pub async fn get(
        &self,
        stage: &str,
        key: &StoreKey,
        encrypted: bool,
        deadline: Duration,
    ) -> Option<Entry> {
        let inner = &self.inner;
        let mut conn = inner.lookup_conn("get").ok()?;
        let rkey = inner.entry_key(stage, key);
        let start = Instant::now();
        let res = tokio::time::timeout(
            deadline,
            redis::cmd("GET")
                .arg(&rkey)
                .query_async::<Option<Vec<u8>>>(&mut conn),
        )
        .await;
        METRICS
            .redis_lookup_duration
            .with_label_values(&["get"])
            .observe(start.elapsed().as_secs_f64());
        let raw = inner.outcome("get", res).ok()??;
        self.accept(rkey, raw, encrypted)
    }

    /// [`SharedTier::get`] and [`SharedTier::purge_times`] in one pipelined round trip: the
    /// entry, and the purge records that could cover it (`prefixes`, then the stage's flush
    /// floor). Why one: each command costs Redis and this instance a message in each
    /// direction, and a shared-tier hit always needs both answers. `None` when either part
    /// fails (a purge that cannot be read makes the entry unusable) or there is no live entry.
    pub async fn get_with_purges(
        &self,
        stage: &str,
        key: &StoreKey,
        prefixes: &[[u8; 16]],
        encrypted: bool,
        deadline: Duration,
    ) -> Option<(Entry, PurgeTimes)> {
        let inner = &self.inner;
        let mut conn = inner.lookup_conn("get").ok()?;
        let rkey = inner.entry_key(stage, key);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&rkey);
        let mget = pipe.cmd("MGET");
        for p in prefixes {
            mget.arg(inner.purge_key(stage, p));
        }
        mget.arg(inner.flush_key(stage));
        let start = Instant::now();
        let res = tokio::time::timeout(
            deadline,
            pipe.query_async::<(Option<Vec<u8>>, Vec<Option<String>>)>(&mut conn),
        )
        .await;
        METRICS
            .redis_lookup_duration
            .with_label_values(&["get"])
            .observe(start.elapsed().as_secs_f64());
        let (raw, values) = inner.outcome("get", res).ok()?;
        let entry = self.accept(rkey, raw?, encrypted)?;
        let purges = parse_purge_times(values, prefixes.len())?;
        Some((entry, purges))
    }

    /// A value read under `rkey` as a live entry; a value that does not decode or open is
    /// counted and queued for removal.
    fn accept(&self, rkey: String, raw: Vec<u8>, encrypted: bool) -> Option<Entry> {
        match self.inner.decode_value(&rkey, raw, encrypted) {
            Ok(entry) if entry.expires_at > SystemTime::now() => Some(entry),
            Ok(_) => None,
            Err(e) => {
                count_error("get", e.kind());
                if matches!(e, DecodeError::Corrupt | DecodeError::Open)
                    && self.writes.try_send(WriteOp::Unlink(rkey)).is_err()
                {
                    count_dropped("queue_full", 1);
                }
                None
            }
        }
    }

    /// Queues a write; never waits. Dropped (and counted) when the queue is full, the breaker
    /// is open or Redis is not connected. Expired entries are not written. With `encrypted`
    /// the value is sealed (and dropped when no keys are configured).
    pub fn put(&self, stage: &str, key: StoreKey, entry: Arc<Entry>, encrypted: bool) {
        if entry.expires_at <= SystemTime::now() {
            return;
        }
        match self.inner.state() {
            STATE_CLOSED => {}
            STATE_OPEN => return count_dropped("breaker_open", 1),
            _ => return count_dropped("disconnected", 1),
        }
        if encrypted && self.inner.sealer.is_none() {
            count_error("put", "no_key");
            return count_dropped("no_key", 1);
        }
        let op = WriteOp::Set {
            stage: stage.to_owned(),
            key,
            entry,
            encrypted,
        };
        match self.writes.try_send(op) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => count_dropped("queue_full", 1),
            Err(mpsc::error::TrySendError::Closed(_)) => count_dropped("closed", 1),
        }
    }

    /// Removes entries (`UNLINK`), within `connect_timeout`.
    pub async fn delete(&self, stage: &str, keys: &[StoreKey]) -> Result<(), SharedError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut conn = self.inner.usable("delete")?;
        let mut cmd = redis::cmd("UNLINK");
        for k in keys {
            cmd.arg(self.inner.entry_key(stage, k));
        }
        let res =
            tokio::time::timeout(self.inner.connect_timeout, cmd.query_async::<()>(&mut conn))
                .await;
        self.inner.outcome("delete", res)
    }

    async fn record_max(&self, op: &str, rkey: String, at: SystemTime) -> Result<(), SharedError> {
        let at_ms = unix_ms(at);
        // The record matters until every entry it can cover has expired.
        let until = at_ms.saturating_add(duration_ms(MAX_ENTRY_LIFETIME));
        let ttl = until.saturating_sub(unix_ms(SystemTime::now()));
        if ttl == 0 {
            return Ok(());
        }
        let mut conn = self.inner.usable(op)?;
        let res = tokio::time::timeout(
            self.inner.connect_timeout,
            redis::cmd("EVAL")
                .arg(MAX_SCRIPT)
                .arg(1)
                .arg(rkey)
                .arg(at_ms)
                .arg(ttl)
                .query_async::<i64>(&mut conn),
        )
        .await;
        self.inner.outcome(op, res).map(|_| ())
    }

    /// Records that every entry of `stage` under `prefix` created at or before `at` is purged
    /// (keeps the latest time recorded).
    pub async fn record_purge(
        &self,
        stage: &str,
        prefix: [u8; 16],
        at: SystemTime,
    ) -> Result<(), SharedError> {
        let rkey = self.inner.purge_key(stage, &prefix);
        self.record_max("purge", rkey, at).await
    }

    /// Records that every entry of `stage` created at or before `at` is purged.
    pub async fn record_flush(&self, stage: &str, at: SystemTime) -> Result<(), SharedError> {
        let rkey = self.inner.flush_key(stage);
        self.record_max("flush", rkey, at).await
    }

    /// The purge times (unix ms) recorded for `prefixes`, and the stage's flush floor, in one
    /// `MGET`. `None` when Redis cannot answer within `deadline`: the caller should then treat
    /// a shared entry as unusable.
    pub async fn purge_times(
        &self,
        stage: &str,
        prefixes: &[[u8; 16]],
        deadline: Duration,
    ) -> Option<PurgeTimes> {
        let inner = &self.inner;
        let mut conn = inner.lookup_conn("purge_times").ok()?;
        let mut cmd = redis::cmd("MGET");
        for p in prefixes {
            cmd.arg(inner.purge_key(stage, p));
        }
        cmd.arg(inner.flush_key(stage));
        let start = Instant::now();
        let res =
            tokio::time::timeout(deadline, cmd.query_async::<Vec<Option<String>>>(&mut conn)).await;
        METRICS
            .redis_lookup_duration
            .with_label_values(&["purge_times"])
            .observe(start.elapsed().as_secs_f64());
        let values = inner.outcome("purge_times", res).ok()?;
        parse_purge_times(values, prefixes.len())
    }

    /// Writes `entry` at once (not through the write queue) and then tells every other instance
    /// to drop its local copy, so the next lookup anywhere reads this one: an authorized client
    /// refresh replaces the entry for everybody, not only here. Nothing is published when the
    /// write fails (the others would only reread the old value).
    pub async fn replace(
        &self,
        stage: &str,
        key: StoreKey,
        entry: Arc<Entry>,
        encrypted: bool,
    ) -> Result<(), SharedError> {
        let left = entry
            .expires_at
            .duration_since(SystemTime::now())
            .map_or(0, duration_ms);
        let rkey = self.inner.entry_key(stage, &key);
        let value = (left > 0)
            .then(|| self.inner.encode_value(&rkey, &entry, encrypted))
            .flatten();
        // Nothing storable (expired, or sealing impossible): the old value must go, or the
        // others would reread it.
        let cmd = match value {
            Some(value) => {
                let mut c = redis::cmd("SET");
                c.arg(&rkey).arg(value).arg("PX").arg(left);
                c
            }
            None => {
                let mut c = redis::cmd("UNLINK");
                c.arg(&rkey);
                c
            }
        };
        let mut conn = self.inner.usable("put")?;
        let res = tokio::time::timeout(
            self.inner.connect_timeout,
            cmd.query_async::<redis::Value>(&mut conn),
        )
        .await;
        self.inner.outcome("put", res)?;
        self.publish(&Invalidation::Remove {
            stage: stage.to_owned(),
            keys: vec![key],
        })
        .await
    }

    /// Publishes an invalidation to every instance (this one ignores it), within
    /// `connect_timeout`.
    pub async fn publish(&self, msg: &Invalidation) -> Result<(), SharedError> {
        let payload = encode_message(self.inner.instance_id, msg).ok_or_else(|| {
            count_error("publish", "serialize");
            SharedError::Serialize
        })?;
        let mut conn = self.inner.usable("publish")?;
        let res = tokio::time::timeout(
            self.inner.connect_timeout,
            redis::cmd("PUBLISH")
                .arg(self.inner.channel())
                .arg(payload)
                .query_async::<i64>(&mut conn),
        )
        .await;
        self.inner.outcome("publish", res).map(|_| ())
    }

    /// Subscribes to the invalidation channel on a dedicated connection. The first event is
    /// `Subscribed` once the subscription stands; any disconnect or failed liveness `PING`
    /// sends `Lost` (counted in `cachegate_redis_subscription_lost_total`), then the task
    /// resubscribes with backoff and sends `Subscribed` again. Dropping the receiver stops it.
    pub fn subscribe(&self) -> mpsc::Receiver<SubscriptionEvent> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        tokio::spawn(subscriber_task(Arc::clone(&self.inner), tx));
        rx
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cache::seal::Sealer;
    use std::process::{Child, Command, Stdio};

    // ---- helpers -------------------------------------------------------------------------

    struct RedisServer {
        child: Option<Child>,
        port: u16,
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    impl RedisServer {
        fn start() -> Self {
            Self::start_on(free_port())
        }

        fn start_on(port: u16) -> Self {
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--enable-debug-command",
                    "local",
                    "--dir",
                    &std::env::temp_dir().to_string_lossy(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "these tests need `redis-server` on PATH (e.g. apt-get install \
                         redis-server): cannot start it: {e}"
                    )
                });
            let mut server = Self {
                child: Some(child),
                port,
            };
            server.wait_ready();
            server
        }

        fn wait_ready(&mut self) {
            use std::io::{Read, Write};
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                    panic!("redis-server on port {} exited early: {status}", self.port);
                }
                if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                    let mut buf = [0u8; 7];
                    if s.write_all(b"PING\r\n").is_ok()
                        && s.read_exact(&mut buf).is_ok()
                        && &buf == b"+PONG\r\n"
                    {
                        return;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "redis-server on port {} did not become ready",
                    self.port
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        /// Sends a signal (`STOP`, `CONT`) to this server.
        fn signal(&self, sig: &str) {
            let pid = self.child.as_ref().unwrap().id().to_string();
            let status = Command::new("kill")
                .args([&format!("-{sig}"), &pid])
                .status()
                .unwrap();
            assert!(status.success(), "kill -{sig} {pid} failed");
        }

        fn url(&self) -> String {
            format!("redis://127.0.0.1:{}/", self.port)
        }

        fn kill(&mut self) {
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }

        async fn client(&self) -> redis::aio::MultiplexedConnection {
            redis::Client::open(self.url())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap()
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            self.kill();
        }
    }

    fn settings(url: &str) -> RedisSettings {
        RedisSettings {
            url: url.to_owned(),
            key_prefix: "cgtest".into(),
            lookup_timeout: Duration::from_millis(50),
            connect_timeout: Duration::from_millis(300),
            max_local_ttl: Duration::from_secs(5),
            encryption_keys_env: None,
        }
    }

    fn sealer() -> Arc<Sealer> {
        use base64::Engine as _;
        let k = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
        Arc::new(Sealer::parse("TEST_KEYS", &format!("1:{k}")).unwrap())
    }

    /// Whole milliseconds, as the wire keeps them.
    fn now_ms() -> SystemTime {
        from_unix_ms(unix_ms(SystemTime::now()))
    }

    fn entry(body: &str, ttl: Duration) -> Entry {
        let created = now_ms();
        Entry {
            meta: Bytes::from_static(b"meta-blob"),
            body: Bytes::from(body.to_owned()),
            created,
            expires_at: created + ttl,
            prefixes: vec![[1u8; 16], [2u8; 16]].into(),
            decoded: Default::default(),
        }
    }

    fn sk(b: u8) -> StoreKey {
        StoreKey([b; 16])
    }

    async fn eventually<F, Fut, T>(what: &str, timeout: Duration, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn next_event(
        rx: &mut mpsc::Receiver<SubscriptionEvent>,
        within: Duration,
    ) -> SubscriptionEvent {
        tokio::time::timeout(within, rx.recv())
            .await
            .expect("no subscription event in time")
            .expect("subscription channel closed")
    }

    fn dropped(reason: &str) -> u64 {
        METRICS
            .redis_write_dropped
            .with_label_values(&[reason])
            .get()
    }

    // ---- pure ----------------------------------------------------------------------------

    #[test]
    fn entry_wire_round_trip_and_rejects_garbage() {
        let e = entry("body bytes", Duration::from_secs(60));
        let bytes = encode_entry(&e).unwrap();
        assert_eq!(bytes[0], ENTRY_FORMAT);
        assert_eq!(decode_entry(Bytes::from(bytes.clone())).unwrap(), e);
        for n in 0..(1 + 8 + 8 + 2 + 32 + 4 + 9) {
            assert!(
                decode_entry(Bytes::copy_from_slice(&bytes[..n])).is_none(),
                "prefix {n}"
            );
        }
        let mut other = bytes.clone();
        other[0] = 2;
        assert!(decode_entry(Bytes::from(other)).is_none());
        let empty = Entry {
            meta: Bytes::new(),
            body: Bytes::new(),
            prefixes: Vec::new().into(),
            decoded: Default::default(),
            ..e
        };
        assert_eq!(
            decode_entry(Bytes::from(encode_entry(&empty).unwrap())).unwrap(),
            empty
        );
    }

    #[test]
    fn message_wire_round_trip() {
        let msgs = [
            Invalidation::Remove {
                stage: "prod".into(),
                keys: vec![sk(1), sk(0xab)],
            },
            Invalidation::PurgePrefix {
                stage: "prod".into(),
                prefix: [9; 16],
                at_ms: 1_700_000_000_123,
            },
            Invalidation::Flush {
                stage: "dev".into(),
                at_ms: u64::MAX,
            },
        ];
        for m in msgs {
            let bytes = encode_message(7, &m).unwrap();
            assert_eq!(decode_message(&bytes).unwrap(), (7, m));
        }
        let flush = String::from_utf8(
            encode_message(
                7,
                &Invalidation::Flush {
                    stage: "s".into(),
                    at_ms: 5,
                },
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            flush,
            r#"{"v":1,"from":7,"msg":{"op":"flush","stage":"s","at_ms":5}}"#
        );
        assert!(decode_message(b"{}").is_none());
        assert!(
            decode_message(br#"{"v":2,"from":7,"msg":{"op":"flush","stage":"s","at_ms":5}}"#)
                .is_none()
        );
        assert!(decode_message(
            br#"{"v":1,"from":7,"msg":{"op":"remove","stage":"s","keys":["zz"]}}"#
        )
        .is_none());
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("redis://:hunter2@h:6379/0"),
            "redis://***@h:6379/0"
        );
        assert_eq!(redact_url("rediss://u:p@h/"), "rediss://***@h/");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(redact_url("redis://h/?password=x"), "redis://h/?***");
    }

    // ---- against redis-server ------------------------------------------------------------

    #[tokio::test(flavor = "multi_thread")]
    async fn put_get_ttl_expiry_and_delete() {
        let server = RedisServer::start();
        let tier = SharedTier::connect(&settings(&server.url()), 1).await;
        assert!(tier.is_connected());
        let mut raw = server.client().await;
        let dl = Duration::from_millis(500);

        assert!(tier.get("s", &sk(1), false, dl).await.is_none());
        let e = entry("hello", Duration::from_secs(60));
        tier.put("s", sk(1), Arc::new(e.clone()), false);
        let got = eventually("the write", Duration::from_secs(5), || {
            let (tier, k) = (&tier, sk(1));
            async move { tier.get("s", &k, false, dl).await }
        })
        .await;
        assert_eq!(got, e);

        // SET … PX: a TTL no longer than the entry's life.
        let pttl: i64 = redis::cmd("PTTL")
            .arg(tier.entry_key("s", &sk(1)))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(pttl > 0 && pttl <= 60_000, "pttl {pttl}");
        // Another stage, another key.
        assert!(tier.get("t", &sk(1), false, dl).await.is_none());
        // Stored plaintext is not handed to a caller that asked for encryption.
        assert!(tier.get("s", &sk(1), true, dl).await.is_none());

        // Already expired: never written.
        let mut old = entry("old", Duration::from_secs(1));
        old.expires_at = SystemTime::now() - Duration::from_secs(1);
        tier.put("s", sk(2), Arc::new(old.clone()), false);
        // An entry whose timestamp says expired (another instance's clock) is a miss.
        let rkey3 = tier.entry_key("s", &sk(3));
        let _: () = redis::cmd("SET")
            .arg(&rkey3)
            .arg(encode_entry(&old).unwrap())
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(tier.get("s", &sk(3), false, dl).await.is_none());
        // A short-lived entry disappears.
        tier.put(
            "s",
            sk(4),
            Arc::new(entry("short", Duration::from_millis(300))),
            false,
        );
        eventually("the short write", Duration::from_secs(5), || {
            let (tier, k) = (&tier, sk(4));
            async move { tier.get("s", &k, false, dl).await }
        })
        .await;
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(tier.get("s", &sk(4), false, dl).await.is_none());
        let exists: i64 = redis::cmd("EXISTS")
            .arg(tier.entry_key("s", &sk(2)))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(exists, 0);

        // Garbage is a miss and gets unlinked.
        let rkey5 = tier.entry_key("s", &sk(5));
        let _: () = redis::cmd("SET")
            .arg(&rkey5)
            .arg(b"\x01garbage")
            .query_async(&mut raw)
            .await
            .unwrap();
        let before = METRICS
            .redis_errors
            .with_label_values(&["get", "decode"])
            .get();
        assert!(tier.get("s", &sk(5), false, dl).await.is_none());
        assert!(
            METRICS
                .redis_errors
                .with_label_values(&["get", "decode"])
                .get()
                > before
        );
        eventually("the unlink", Duration::from_secs(5), || {
            let mut raw = raw.clone();
            let k = rkey5.clone();
            async move {
                let n: i64 = redis::cmd("EXISTS")
                    .arg(k)
                    .query_async(&mut raw)
                    .await
                    .unwrap();
                (n == 0).then_some(())
            }
        })
        .await;

        tier.delete("s", &[sk(1), sk(9)]).await.unwrap();
        assert!(tier.get("s", &sk(1), false, dl).await.is_none());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn encrypted_values_hold_no_plaintext_and_are_bound_to_their_key() {
        let server = RedisServer::start();
        let options = SharedOptions {
            sealer: Some(sealer()),
            ..SharedOptions::default()
        };
        let tier = SharedTier::connect_with(&settings(&server.url()), 1, options).await;
        let mut raw = server.client().await;
        let dl = Duration::from_millis(500);
        let canary = "CANARY-secret-user-data-0123456789";
        let e = entry(canary, Duration::from_secs(60));
        tier.put("s", sk(1), Arc::new(e.clone()), true);
        let got = eventually("the write", Duration::from_secs(5), || {
            let (tier, k) = (&tier, sk(1));
            async move { tier.get("s", &k, true, dl).await }
        })
        .await;
        assert_eq!(got, e);

        let rkey = tier.entry_key("s", &sk(1));
        let stored: Vec<u8> = redis::cmd("GET")
            .arg(&rkey)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(stored[0], SEALED_MARKER);
        let needle = &canary.as_bytes()[..12];
        assert!(
            !stored.windows(needle.len()).any(|w| w == needle),
            "plaintext in Redis"
        );
        assert!(
            !stored.windows(9).any(|w| w == b"meta-blob"),
            "meta in plaintext"
        );
        // Never decoded as plaintext.
        assert!(tier.get("s", &sk(1), false, dl).await.is_none());

        // Moved to another key: the seal does not open; a miss, and the copy is unlinked.
        let other = tier.entry_key("s", &sk(2));
        let _: () = redis::cmd("SET")
            .arg(&other)
            .arg(&stored)
            .query_async(&mut raw)
            .await
            .unwrap();
        let before = METRICS
            .redis_errors
            .with_label_values(&["get", "open"])
            .get();
        assert!(tier.get("s", &sk(2), true, dl).await.is_none());
        assert!(
            METRICS
                .redis_errors
                .with_label_values(&["get", "open"])
                .get()
                > before
        );
        eventually("the unlink", Duration::from_secs(5), || {
            let mut raw = raw.clone();
            let k = other.clone();
            async move {
                let n: i64 = redis::cmd("EXISTS")
                    .arg(k)
                    .query_async(&mut raw)
                    .await
                    .unwrap();
                (n == 0).then_some(())
            }
        })
        .await;
        // The original still opens.
        assert!(tier.get("s", &sk(1), true, dl).await.is_some());

        // A tier without keys drops encrypted writes rather than storing plaintext.
        let plain_tier = SharedTier::connect(&settings(&server.url()), 2).await;
        let before = dropped("no_key");
        plain_tier.put("s", sk(3), Arc::new(e.clone()), true);
        assert!(dropped("no_key") > before);
        assert!(plain_tier.get("s", &sk(1), true, dl).await.is_none());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_paused_redis_is_a_fast_miss() {
        let server = RedisServer::start();
        let tier = SharedTier::connect(&settings(&server.url()), 1).await;
        let dl = Duration::from_millis(50);
        tier.put(
            "s",
            sk(1),
            Arc::new(entry("x", Duration::from_secs(60))),
            false,
        );
        eventually("the write", Duration::from_secs(5), || {
            let (tier, k) = (&tier, sk(1));
            async move { tier.get("s", &k, false, dl).await }
        })
        .await;
        let mut raw = server.client().await;
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(800)
            .arg("ALL")
            .query_async(&mut raw)
            .await
            .unwrap();
        let start = Instant::now();
        assert!(tier.get("s", &sk(1), false, dl).await.is_none());
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(400),
            "get took {took:?} during the pause"
        );
        // purge_times honours its deadline too.
        let start = Instant::now();
        assert!(tier.purge_times("s", &[[1; 16]], dl).await.is_none());
        assert!(start.elapsed() < Duration::from_millis(400));
        // After the pause it works again (two timeouts do not open the breaker).
        eventually("the end of the pause", Duration::from_secs(5), || {
            let (tier, k) = (&tier, sk(1));
            async move { tier.get("s", &k, false, dl).await }
        })
        .await;
        assert!(!tier.breaker_open());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn outage_opens_the_breaker_loses_the_subscription_and_recovers() {
        let mut server = RedisServer::start();
        let port = server.port;
        let tier = SharedTier::connect(&settings(&server.url()), 1).await;
        assert!(tier.is_connected());
        let mut events = tier.subscribe();
        assert_eq!(
            next_event(&mut events, Duration::from_secs(5)).await,
            SubscriptionEvent::Subscribed
        );
        let lost_before = METRICS.redis_subscription_lost.get();

        server.kill();
        assert_eq!(
            next_event(&mut events, Duration::from_secs(5)).await,
            SubscriptionEvent::Lost
        );
        assert!(METRICS.redis_subscription_lost.get() > lost_before);

        let dl = Duration::from_millis(50);
        for _ in 0..(BREAKER_THRESHOLD * 3) {
            let start = Instant::now();
            assert!(tier.get("s", &sk(1), false, dl).await.is_none());
            assert!(
                start.elapsed() < Duration::from_millis(400),
                "slow miss: {:?}",
                start.elapsed()
            );
            if tier.breaker_open() {
                break;
            }
        }
        assert!(tier.breaker_open(), "breaker still closed");
        assert!(!tier.is_connected());
        assert!(METRICS.redis_breaker_open.get() >= 1);
        // While open: instant misses, dropped writes.
        let start = Instant::now();
        assert!(tier.get("s", &sk(1), false, dl).await.is_none());
        assert!(tier.purge_times("s", &[], dl).await.is_none());
        let before = dropped("breaker_open");
        for i in 0..100u8 {
            tier.put(
                "s",
                sk(i),
                Arc::new(entry("x", Duration::from_secs(60))),
                false,
            );
        }
        assert!(
            start.elapsed() < Duration::from_millis(50),
            "open breaker was slow: {:?}",
            start.elapsed()
        );
        assert!(dropped("breaker_open") >= before + 100);
        assert!(matches!(
            tier.record_flush("s", SystemTime::now()).await,
            Err(SharedError::BreakerOpen)
        ));

        // Nothing but `Subscribed` follows a `Lost`.
        let _server = RedisServer::start_on(port);
        eventually("the breaker to close", Duration::from_secs(10), || async {
            tier.is_connected().then_some(())
        })
        .await;
        assert!(!tier.breaker_open());
        assert_eq!(
            next_event(&mut events, Duration::from_secs(10)).await,
            SubscriptionEvent::Subscribed
        );
        let e = entry("back", Duration::from_secs(60));
        tier.put("s", sk(1), Arc::new(e.clone()), false);
        let got = eventually("a write after recovery", Duration::from_secs(5), || {
            let (tier, k) = (&tier, sk(1));
            async move { tier.get("s", &k, false, Duration::from_millis(500)).await }
        })
        .await;
        assert_eq!(got, e);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn starts_without_redis_and_connects_later() {
        let port = free_port();
        let start = Instant::now();
        let tier = SharedTier::connect(&settings(&format!("redis://127.0.0.1:{port}/")), 1).await;
        assert!(
            start.elapsed() < Duration::from_millis(1000),
            "connect blocked {:?}",
            start.elapsed()
        );
        assert!(!tier.is_connected());
        let start = Instant::now();
        assert!(tier
            .get("s", &sk(1), false, Duration::from_millis(50))
            .await
            .is_none());
        assert!(tier
            .purge_times("s", &[], Duration::from_millis(50))
            .await
            .is_none());
        let before = dropped("disconnected");
        tier.put(
            "s",
            sk(1),
            Arc::new(entry("x", Duration::from_secs(60))),
            false,
        );
        assert!(dropped("disconnected") > before);
        assert!(start.elapsed() < Duration::from_millis(20));
        assert!(matches!(
            tier.publish(&Invalidation::Flush {
                stage: "s".into(),
                at_ms: 1
            })
            .await,
            Err(SharedError::Disconnected)
        ));

        let _server = RedisServer::start_on(port);
        eventually("the connection", Duration::from_secs(8), || async {
            tier.is_connected().then_some(())
        })
        .await;
        let e = entry("late", Duration::from_secs(60));
        tier.put("s", sk(1), Arc::new(e.clone()), false);
        let got = eventually("the write", Duration::from_secs(5), || {
            let (tier, k) = (&tier, sk(1));
            async move { tier.get("s", &k, false, Duration::from_millis(500)).await }
        })
        .await;
        assert_eq!(got, e);

        // A password never shows in Debug output; an unparsable URL gives a disabled tier.
        let secret = SharedTier::connect(&settings("redis://:hunter2@127.0.0.1:1/"), 3).await;
        assert!(!format!("{secret:?}").contains("hunter2"));
        let broken = SharedTier::connect(&settings("not a url"), 4).await;
        assert!(!broken.is_connected());
        assert!(broken
            .get("s", &sk(1), false, Duration::from_millis(50))
            .await
            .is_none());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn invalidations_reach_other_instances_only() {
        let server = RedisServer::start();
        let a = SharedTier::connect(&settings(&server.url()), 1).await;
        let b = SharedTier::connect(&settings(&server.url()), 2).await;
        let mut rx_a = a.subscribe();
        let mut rx_b = b.subscribe();
        let w = Duration::from_secs(5);
        assert_eq!(
            next_event(&mut rx_a, w).await,
            SubscriptionEvent::Subscribed
        );
        assert_eq!(
            next_event(&mut rx_b, w).await,
            SubscriptionEvent::Subscribed
        );

        let msgs = vec![
            Invalidation::Remove {
                stage: "s".into(),
                keys: vec![sk(1), sk(2)],
            },
            Invalidation::PurgePrefix {
                stage: "s".into(),
                prefix: [7; 16],
                at_ms: 1_700_000_000_000,
            },
            Invalidation::Flush {
                stage: "t".into(),
                at_ms: 1_700_000_000_001,
            },
        ];
        for m in &msgs {
            a.publish(m).await.unwrap();
        }
        for m in &msgs {
            assert_eq!(
                next_event(&mut rx_b, w).await,
                SubscriptionEvent::Message(m.clone())
            );
        }
        // A skipped its own three messages: the next thing it sees is B's.
        let marker = Invalidation::Flush {
            stage: "marker".into(),
            at_ms: 9,
        };
        b.publish(&marker).await.unwrap();
        assert_eq!(
            next_event(&mut rx_a, w).await,
            SubscriptionEvent::Message(marker.clone())
        );
        // Garbage on the channel is ignored.
        let mut raw = server.client().await;
        let _: i64 = redis::cmd("PUBLISH")
            .arg("cgtest:invalidations")
            .arg("not json")
            .query_async(&mut raw)
            .await
            .unwrap();
        let last = Invalidation::Remove {
            stage: "s".into(),
            keys: vec![],
        };
        a.publish(&last).await.unwrap();
        assert_eq!(
            next_event(&mut rx_b, w).await,
            SubscriptionEvent::Message(last)
        );
        // The server dropping subscribers is a loss, followed by a resubscription.
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(next_event(&mut rx_b, w).await, SubscriptionEvent::Lost);
        assert_eq!(
            next_event(&mut rx_b, w).await,
            SubscriptionEvent::Subscribed
        );
        // Liveness pings keep a healthy subscription quiet…
        tokio::time::sleep(SUBSCRIPTION_PING * 2 + Duration::from_millis(300)).await;
        assert!(
            rx_b.try_recv().is_err(),
            "a healthy subscription sent an event"
        );
        a.publish(&marker).await.unwrap();
        assert_eq!(
            next_event(&mut rx_b, w).await,
            SubscriptionEvent::Message(marker.clone())
        );
        // …and notice a server that stopped answering without closing the connection.
        server.signal("STOP");
        assert_eq!(next_event(&mut rx_b, w).await, SubscriptionEvent::Lost);
        server.signal("CONT");
        assert_eq!(
            next_event(&mut rx_b, w).await,
            SubscriptionEvent::Subscribed
        );
    }

    #[test]
    fn futures_are_send() {
        fn send<T: Send>(_: &T) {}
        async fn uses(tier: SharedTier) {
            let key = sk(1);
            let get = tier.get("s", &key, false, Duration::from_millis(1));
            send(&get);
            let purge = tier.purge_times("s", &[], Duration::from_millis(1));
            send(&purge);
            let msg = Invalidation::Flush {
                stage: "s".into(),
                at_ms: 0,
            };
            let publish = tier.publish(&msg);
            send(&publish);
            let delete = tier.delete("s", &[]);
            send(&delete);
            let flush = tier.record_flush("s", SystemTime::now());
            send(&flush);
        }
        let _ = uses;
        fn sync<T: Send + Sync>() {}
        sync::<SharedTier>();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn purge_records_keep_the_latest_time() {
        let server = RedisServer::start();
        let tier = SharedTier::connect(&settings(&server.url()), 1).await;
        let mut raw = server.client().await;
        let dl = Duration::from_millis(500);
        let now = now_ms();
        let (p, q) = ([1u8; 16], [2u8; 16]);
        assert_eq!(
            tier.purge_times("s", &[p, q], dl).await.unwrap(),
            (vec![None, None], None)
        );

        tier.record_purge("s", p, now).await.unwrap();
        tier.record_purge("s", p, now - Duration::from_secs(10))
            .await
            .unwrap();
        let ms = unix_ms(now);
        assert_eq!(
            tier.purge_times("s", &[p, q], dl).await.unwrap(),
            (vec![Some(ms), None], None)
        );
        tier.record_purge("s", p, now + Duration::from_secs(1))
            .await
            .unwrap();
        tier.record_flush("s", now).await.unwrap();
        tier.record_flush("s", now - Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            tier.purge_times("s", &[q, p], dl).await.unwrap(),
            (vec![None, Some(ms + 1000)], Some(ms))
        );
        // Other stages are untouched.
        assert_eq!(
            tier.purge_times("t", &[p], dl).await.unwrap(),
            (vec![None], None)
        );
        // Records live as long as an entry they cover could.
        let pttl: i64 = redis::cmd("PTTL")
            .arg(tier.inner.purge_key("s", &p))
            .query_async(&mut raw)
            .await
            .unwrap();
        let max = i64::try_from(duration_ms(MAX_ENTRY_LIFETIME)).unwrap();
        assert!(pttl > max - 60_000 && pttl <= max + 1000, "pttl {pttl}");
        // A record too old to cover anything is not written.
        tier.record_purge("s", q, now - MAX_ENTRY_LIFETIME - Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(tier.purge_times("s", &[q], dl).await.unwrap().0, vec![None]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn one_round_trip_reads_the_entry_and_its_purge_records() {
        let server = RedisServer::start();
        let tier = SharedTier::connect(&settings(&server.url()), 1).await;
        let mut raw = server.client().await;
        let dl = Duration::from_millis(500);
        let (p, q) = ([1u8; 16], [2u8; 16]);
        assert!(tier
            .get_with_purges("s", &sk(1), &[p, q], false, dl)
            .await
            .is_none());
        let e = entry("hello", Duration::from_secs(60));
        let _: () = redis::cmd("SET")
            .arg(tier.entry_key("s", &sk(1)))
            .arg(encode_entry(&e).unwrap())
            .query_async(&mut raw)
            .await
            .unwrap();
        let now = now_ms();
        tier.record_purge("s", q, now).await.unwrap();
        tier.record_flush("s", now).await.unwrap();
        let (got, purges) = tier
            .get_with_purges("s", &sk(1), &[p, q], false, dl)
            .await
            .expect("the entry");
        assert_eq!(got, e);
        assert_eq!(purges, (vec![None, Some(unix_ms(now))], Some(unix_ms(now))));
        assert_eq!(
            Some(purges),
            tier.purge_times("s", &[p, q], dl).await,
            "the same records as purge_times reads"
        );
        // Encrypted-ness must match, as for `get`; garbage is a miss and is removed.
        assert!(tier
            .get_with_purges("s", &sk(1), &[p], true, dl)
            .await
            .is_none());
        let rkey = tier.entry_key("s", &sk(2));
        let _: () = redis::cmd("SET")
            .arg(&rkey)
            .arg("garbage")
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(tier
            .get_with_purges("s", &sk(2), &[p], false, dl)
            .await
            .is_none());
        eventually("the garbage is unlinked", Duration::from_secs(5), || {
            let mut raw = raw.clone();
            let rkey = rkey.clone();
            async move {
                let n: i64 = redis::cmd("EXISTS")
                    .arg(rkey)
                    .query_async(&mut raw)
                    .await
                    .unwrap();
                (n == 0).then_some(())
            }
        })
        .await;
    }

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

    #[tokio::test(flavor = "multi_thread")]
    async fn a_full_write_queue_drops_without_waiting() {
        let server = RedisServer::start();
        let options = SharedOptions {
            write_queue: 1,
            ..SharedOptions::default()
        };
        let tier = SharedTier::connect_with(&settings(&server.url()), 1, options).await;
        let mut raw = server.client().await;
        // Writes block in Redis: the writer sits on its first batch.
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(2000)
            .arg("WRITE")
            .query_async(&mut raw)
            .await
            .unwrap();
        let e = Arc::new(entry("x", Duration::from_secs(60)));
        tier.put("s", sk(0), Arc::clone(&e), false);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = dropped("queue_full");
        let start = Instant::now();
        for i in 1..=200u8 {
            tier.put("s", sk(i), Arc::clone(&e), false);
        }
        let took = start.elapsed();
        assert!(took < Duration::from_millis(50), "puts took {took:?}");
        assert!(
            dropped("queue_full") >= before + 190,
            "dropped {}",
            dropped("queue_full") - before
        );
        let _: () = redis::cmd("CLIENT")
            .arg("UNPAUSE")
            .query_async(&mut raw)
            .await
            .unwrap();
    }
}
