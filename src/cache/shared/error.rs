//! Redis failures: the [`SharedError`] callers see, how a `redis` error is classified (a metric
//! label, and whether it says Redis is unhealthy, which feeds the circuit breaker), and the
//! error and dropped-write counters. Separate because every other file of the tier reports
//! failures this same way, and it needs none of them.

use crate::metrics::METRICS;

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

/// Error kind label, and whether it says something about Redis's health (feeds the breaker).
pub(super) fn classify(e: &redis::RedisError) -> (&'static str, bool) {
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

pub(super) fn count_error(op: &str, kind: &str) {
    METRICS.redis_errors.with_label_values(&[op, kind]).inc();
}

pub(super) fn count_dropped(reason: &str, n: u64) {
    METRICS
        .redis_write_dropped
        .with_label_values(&[reason])
        .inc_by(n);
}
