//! A token bucket for mutating admin requests (SEC-19: a flush storm or token guessing gets
//! `429`, not a purge per request).
//!
//! One bucket per process, refilled at `[admin] mutations_per_second` and holding as many: an
//! operator's script purging a handful of keys is never slowed, 100 requests in a second are.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The bucket: tokens left and when they were counted.
#[derive(Debug)]
pub struct Limiter {
    state: Mutex<Option<(f64, Instant)>>,
}

impl Limiter {
    /// A full bucket (filled on first use).
    pub fn new() -> Self {
        Self {
            state: Mutex::new(None),
        }
    }

    /// Takes one token at `now` with a refill rate of `per_second` (the current configuration's;
    /// a reload changes it on the fly). `Err` carries how long until one is available.
    pub fn admit(&self, per_second: u32, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(per_second.max(1));
        // A poisoned lock only means another admin request panicked mid-update: the numbers
        // are still usable.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = state.unwrap_or((rate, now));
        let elapsed = now.saturating_duration_since(last).as_secs_f64();
        let tokens = (tokens + elapsed * rate).min(rate);
        if tokens >= 1.0 {
            *state = Some((tokens - 1.0, now));
            Ok(())
        } else {
            *state = Some((tokens, now));
            Err(Duration::from_secs_f64((1.0 - tokens) / rate))
        }
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_the_rate_then_one_per_interval() {
        let l = Limiter::new();
        let t0 = Instant::now();
        for i in 0..5 {
            assert!(l.admit(5, t0).is_ok(), "request {i} of the burst");
        }
        let wait = l.admit(5, t0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        // 200 ms later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(200);
        assert!(l.admit(5, t1).is_ok());
        assert!(l.admit(5, t1).is_err());
        // Idle time never banks more than one second's worth.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(l.admit(5, t2).is_ok());
        }
        assert!(l.admit(5, t2).is_err());
    }
}
