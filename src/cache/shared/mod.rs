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
//!
//! Files (imports point one way, down this list; `scripts/layers.py` checks for cycles):
//!
//! - `mod.rs`: the [`SharedTier`] API, its options, and [`redact_url`].
//! - `tasks.rs`: the background writer, connect and subscriber tasks, and [`SubscriptionEvent`].
//! - `breaker.rs`: the circuit breaker (how command outcomes move it, the probe that closes it).
//! - `value.rs`: stored values, plaintext or sealed, and the `encrypted` check.
//! - `conn.rs`: the tier's state (`Inner`), key names, connections and per-thread connections.
//! - `codec.rs`: the wire formats above (entries, purge records, [`Invalidation`] messages).
//! - `error.rs`: [`SharedError`], error classification and the error/drop counters.
//!
//! Unit tests sit next to the code they test; `tests.rs` exercises the whole tier against a
//! real `redis-server`, with fixtures in `test_support.rs`.

mod breaker;
mod codec;
mod conn;
mod error;
mod tasks;
#[cfg(test)]
mod test_support;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
mod value;

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, watch};

use super::entry::{Entry, StoreKey};
use super::purge::MAX_ENTRY_LIFETIME;
use super::seal::Sealer;
use crate::metrics::METRICS;
use crate::runtime::stage::RedisSettings;

pub use breaker::BREAKER_COOLDOWN;
#[cfg(test)]
use breaker::BREAKER_THRESHOLD;
#[cfg(test)]
use codec::SEALED_MARKER;
pub use codec::{Invalidation, PurgeTimes};
pub use error::SharedError;
pub use tasks::SubscriptionEvent;

use codec::{duration_ms, encode_message, parse_purge_times, unix_ms};
use conn::{Inner, STATE_CLOSED, STATE_CONNECTING, STATE_OPEN};
use error::{classify, count_dropped, count_error};
use tasks::{connect_task, subscriber_task, writer_task, WriteOp};
use value::DecodeError;

/// Default capacity of the write queue.
pub const DEFAULT_WRITE_QUEUE: usize = 1024;

/// Events buffered for a slow subscription consumer (the subscriber then stops reading; Redis
/// eventually drops it, which is reported as `Lost`).
const SUBSCRIPTION_BUFFER: usize = 1024;

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

pub use crate::util::redact_url;

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
