//! The circuit breaker: how the outcome of each command feeds it, opening it after
//! [`BREAKER_THRESHOLD`] connection-level failures in a row, and the probe that closes it again
//! once one `PING` per cool-down answers. Separate because it is one state machine with its own
//! tuning; its state word lives in [`Inner`], and the calls it guards are everywhere else.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::codec::duration_ms;
use super::conn::{Inner, STATE_CLOSED, STATE_OPEN};
use super::error::{classify, count_error, SharedError};
use crate::metrics::METRICS;

/// Consecutive connection-level failures that open the breaker.
pub const BREAKER_THRESHOLD: u32 = 5;
/// First cool-down of an open breaker.
pub const BREAKER_COOLDOWN: Duration = Duration::from_secs(2);
/// Longest cool-down of an open breaker.
pub const BREAKER_MAX_COOLDOWN: Duration = Duration::from_secs(30);

impl Inner {
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
    pub(super) fn outcome<T>(
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
