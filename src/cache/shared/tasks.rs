//! The background tasks of a tier: the writer that drains the write queue into pipelines, the
//! connect task that retries until Redis first answers, and the subscriber that keeps the
//! invalidation channel subscribed and reports what it delivers. Separate because they run
//! apart from any caller until the tier is dropped; the API (`mod.rs`) only starts them and
//! feeds the writer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::codec::{decode_message, duration_ms, Invalidation};
use super::conn::{Inner, STATE_CLOSED, STATE_OPEN};
use super::error::{classify, count_dropped, count_error};
use crate::cache::entry::{Entry, StoreKey};
use crate::metrics::METRICS;

/// Writes sent in one pipeline.
const WRITE_BATCH: usize = 64;
/// Connect/resubscribe backoff.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often the subscriber checks its connection is alive.
pub(super) const SUBSCRIPTION_PING: Duration = Duration::from_secs(1);

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

pub(super) enum WriteOp {
    Set {
        stage: String,
        key: StoreKey,
        entry: Arc<Entry>,
        encrypted: bool,
    },
    /// Drop a value that failed to decode or open.
    Unlink(String),
}

impl Inner {
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

/// Runs until the first successful `PING`.
pub(super) async fn connect_task(inner: Arc<Inner>) {
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

pub(super) async fn writer_task(inner: Arc<Inner>, mut rx: mpsc::Receiver<WriteOp>) {
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

pub(super) async fn subscriber_task(inner: Arc<Inner>, tx: mpsc::Sender<SubscriptionEvent>) {
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
