//! The metrics catalog: every metric cachegate exports, declared once, in one registry.
//!
//! Labels are bounded: stage and flow names come from the configuration, methods are folded into
//! a fixed set, status codes into classes. Never a raw path, key, client address or token.

use once_cell::sync::Lazy;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// All metrics, registered in their own registry (not the process-global default one, so a
/// dependency registering metrics cannot collide with ours).
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by stage, method and status class.
    pub requests: IntCounterVec,
    /// Whole-request latency, by stage and cache outcome.
    pub request_duration: HistogramVec,
    /// Requests served from the cache (AWS `CacheHitCount`).
    pub cache_hits: IntCounterVec,
    /// Cacheable requests that went to the target (AWS `CacheMissCount`).
    pub cache_misses: IntCounterVec,
    /// Stale entries served, by why (`revalidate` while refreshing, `error` when the target failed).
    pub cache_stale: IntCounterVec,
    /// Responses stored.
    pub cache_stores: IntCounterVec,
    /// Responses not stored, by reason (status, size, cookie, private, authorization, skip, …).
    pub cache_store_rejections: IntCounterVec,
    /// Entries evicted from the local tier, by cause (`size`, `expired`).
    pub cache_evictions: IntCounterVec,
    /// Invalidations by source (`client`, `policy`, `admin`) and outcome.
    pub cache_invalidations: IntCounterVec,
    /// LookupCache lookups by policy and result (`hit`, `miss`).
    pub kv_lookups: IntCounterVec,
    /// Bytes held by the local tier.
    pub cache_local_bytes: IntGaugeVec,
    /// Entries held by the local tier.
    pub cache_local_entries: IntGaugeVec,
    /// Entries evicted from an environment cache's local tier, by cause.
    pub env_cache_evictions: IntCounterVec,
    /// Bytes held by an environment cache's local tier.
    pub env_cache_local_bytes: IntGaugeVec,
    /// Entries held by an environment cache's local tier.
    pub env_cache_local_entries: IntGaugeVec,
    /// Failures talking to a target, by stage and kind.
    pub upstream_errors: IntCounterVec,
    /// Time from sending a request to a target to its response header, by stage.
    pub upstream_duration: HistogramVec,
    /// Configuration reload attempts by outcome (`accepted`, `rejected`).
    pub config_reloads: IntCounterVec,
    /// Generation number of the configuration being served.
    pub config_generation: IntGauge,
    /// Unix time of the last accepted configuration.
    pub config_last_success: IntGauge,
    /// Failed shared-tier (Redis) operations, by operation and kind (`timeout`, `io`, `decode`,
    /// `open`, `breaker_open`, …). Every one of them was treated as a miss or a dropped write.
    pub redis_errors: IntCounterVec,
    /// Redis lookup latency, by operation (`get`, `purge_times`).
    pub redis_lookup_duration: HistogramVec,
    /// Open Redis circuit breakers (0 or 1 per process).
    pub redis_breaker_open: IntGauge,
    /// Shared-tier writes dropped, by reason (`queue_full`, `breaker_open`, `disconnected`, …).
    pub redis_write_dropped: IntCounterVec,
    /// Invalidation subscriptions lost (each one clears the local tier).
    pub redis_subscription_lost: IntCounter,
    /// Connections closed because the client was too slow, by phase (`header`, `body`).
    pub client_timeouts: IntCounterVec,
    /// Mutating admin requests refused with `429`.
    pub admin_throttled: IntCounter,
    /// Access log lines dropped: the writer was behind (its queue full) or could not write.
    pub access_log_dropped: IntCounter,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let requests = IntCounterVec::new(
        Opts::new(
            "cachegate_requests_total",
            "Requests answered by the gateway.",
        ),
        &["stage", "method", "status_class"],
    )?;
    let request_duration = HistogramVec::new(
        HistogramOpts::new(
            "cachegate_request_duration_seconds",
            "Time from request to the end of the response.",
        )
        .buckets(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]),
        &["stage", "cache"],
    )?;
    let cache_labels = ["stage", "resource", "method", "policy", "tier"];
    let cache_hits = IntCounterVec::new(
        Opts::new(
            "cachegate_cache_hits_total",
            "Requests served from the cache (AWS CacheHitCount).",
        ),
        &cache_labels,
    )?;
    let cache_misses = IntCounterVec::new(
        Opts::new(
            "cachegate_cache_misses_total",
            "Cacheable requests answered by the target (AWS CacheMissCount).",
        ),
        &cache_labels,
    )?;
    let cache_stale = IntCounterVec::new(
        Opts::new(
            "cachegate_cache_stale_served_total",
            "Stale entries served.",
        ),
        &["stage", "resource", "policy", "reason"],
    )?;
    let cache_stores = IntCounterVec::new(
        Opts::new(
            "cachegate_cache_stores_total",
            "Responses stored in the cache.",
        ),
        &["stage", "policy"],
    )?;
    let cache_store_rejections = IntCounterVec::new(
        Opts::new(
            "cachegate_cache_store_rejections_total",
            "Responses not stored, by reason.",
        ),
        &["stage", "policy", "reason"],
    )?;
    let cache_evictions = IntCounterVec::new(
        Opts::new(
            "cachegate_cache_evictions_total",
            "Entries removed from the local tier, by cause.",
        ),
        &["stage", "cause"],
    )?;
    let cache_invalidations = IntCounterVec::new(
        Opts::new(
            "cachegate_cache_invalidations_total",
            "Cache invalidations by source and outcome.",
        ),
        &["stage", "source", "outcome"],
    )?;
    let kv_lookups = IntCounterVec::new(
        Opts::new(
            "cachegate_kv_lookups_total",
            "LookupCache lookups by result.",
        ),
        &["stage", "policy", "result"],
    )?;
    let cache_local_bytes = IntGaugeVec::new(
        Opts::new(
            "cachegate_cache_local_bytes",
            "Bytes held by the local (in-process) tier.",
        ),
        &["stage"],
    )?;
    let cache_local_entries = IntGaugeVec::new(
        Opts::new(
            "cachegate_cache_local_entries",
            "Entries held by the local (in-process) tier.",
        ),
        &["stage"],
    )?;
    // An environment cache is no stage: its tier has metrics of its own (see `cache::labels`).
    let env_cache = ["environment", "cache"];
    let env_cache_evictions = IntCounterVec::new(
        Opts::new(
            "cachegate_environment_cache_evictions_total",
            "Entries removed from an environment cache's local tier, by cause.",
        ),
        &["environment", "cache", "cause"],
    )?;
    let env_cache_local_bytes = IntGaugeVec::new(
        Opts::new(
            "cachegate_environment_cache_local_bytes",
            "Bytes held by an environment cache's local (in-process) tier.",
        ),
        &env_cache,
    )?;
    let env_cache_local_entries = IntGaugeVec::new(
        Opts::new(
            "cachegate_environment_cache_local_entries",
            "Entries held by an environment cache's local (in-process) tier.",
        ),
        &env_cache,
    )?;
    let upstream_duration = HistogramVec::new(
        HistogramOpts::new(
            "cachegate_upstream_duration_seconds",
            "Time from sending a request to a stage's target to receiving its response header.",
        )
        .buckets(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0,
        ]),
        &["stage"],
    )?;
    let upstream_errors = IntCounterVec::new(
        Opts::new(
            "cachegate_upstream_errors_total",
            "Failures talking to a stage's target.",
        ),
        &["stage", "kind"],
    )?;
    let client_timeouts = IntCounterVec::new(
        Opts::new(
            "cachegate_client_timeouts_total",
            "Requests refused because the client sent its header or body too slowly.",
        ),
        &["phase"],
    )?;
    let admin_throttled = IntCounter::new(
        "cachegate_admin_throttled_total",
        "Mutating admin requests refused with 429 ([admin] mutations_per_second).",
    )?;
    let access_log_dropped = IntCounter::new(
        "cachegate_access_log_dropped_total",
        "Access log lines dropped because the writer was behind (queue full) or could not write.",
    )?;
    let config_reloads = IntCounterVec::new(
        Opts::new(
            "cachegate_config_reloads_total",
            "Configuration reload attempts.",
        ),
        &["outcome"],
    )?;
    let config_generation = IntGauge::new(
        "cachegate_config_generation",
        "Generation number of the configuration being served.",
    )?;
    let config_last_success = IntGauge::new(
        "cachegate_config_last_success_timestamp_seconds",
        "Unix time at which the configuration being served was loaded.",
    )?;
    let redis_errors = IntCounterVec::new(
        Opts::new(
            "cachegate_redis_errors_total",
            "Failed shared-tier (Redis) operations, each treated as a miss or a dropped write.",
        ),
        &["op", "kind"],
    )?;
    let redis_lookup_duration = HistogramVec::new(
        HistogramOpts::new(
            "cachegate_redis_lookup_duration_seconds",
            "Time taken by shared-tier (Redis) lookups, including those that timed out.",
        )
        .buckets(vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
        ]),
        &["op"],
    )?;
    let redis_breaker_open = IntGauge::new(
        "cachegate_redis_breaker_open",
        "1 while the Redis circuit breaker is open (shared tier bypassed), else 0.",
    )?;
    let redis_write_dropped = IntCounterVec::new(
        Opts::new(
            "cachegate_redis_write_dropped_total",
            "Shared-tier (Redis) writes dropped instead of written.",
        ),
        &["reason"],
    )?;
    let redis_subscription_lost = IntCounter::new(
        "cachegate_redis_subscription_lost_total",
        "Invalidation subscriptions lost; each one clears the local tier.",
    )?;
    let build_info = IntGaugeVec::new(
        Opts::new(
            "cachegate_build_info",
            "Always 1; the labels say which cachegate (and Pingora) this is.",
        ),
        &["version", "pingora"],
    )?;
    build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION"), PINGORA_VERSION])
        .set(1);
    registry.register(Box::new(build_info.clone()))?;
    // CPU, memory, file descriptors and start time of this process (`process_*`, Linux).
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(request_duration.clone()))?;
    registry.register(Box::new(upstream_errors.clone()))?;
    registry.register(Box::new(upstream_duration.clone()))?;
    registry.register(Box::new(cache_hits.clone()))?;
    registry.register(Box::new(cache_misses.clone()))?;
    registry.register(Box::new(cache_stale.clone()))?;
    registry.register(Box::new(cache_stores.clone()))?;
    registry.register(Box::new(cache_store_rejections.clone()))?;
    registry.register(Box::new(cache_evictions.clone()))?;
    registry.register(Box::new(cache_invalidations.clone()))?;
    registry.register(Box::new(kv_lookups.clone()))?;
    registry.register(Box::new(cache_local_bytes.clone()))?;
    registry.register(Box::new(cache_local_entries.clone()))?;
    registry.register(Box::new(env_cache_evictions.clone()))?;
    registry.register(Box::new(env_cache_local_bytes.clone()))?;
    registry.register(Box::new(env_cache_local_entries.clone()))?;
    registry.register(Box::new(config_reloads.clone()))?;
    registry.register(Box::new(config_generation.clone()))?;
    registry.register(Box::new(config_last_success.clone()))?;
    registry.register(Box::new(redis_errors.clone()))?;
    registry.register(Box::new(redis_lookup_duration.clone()))?;
    registry.register(Box::new(redis_breaker_open.clone()))?;
    registry.register(Box::new(redis_write_dropped.clone()))?;
    registry.register(Box::new(redis_subscription_lost.clone()))?;
    registry.register(Box::new(client_timeouts.clone()))?;
    registry.register(Box::new(admin_throttled.clone()))?;
    registry.register(Box::new(access_log_dropped.clone()))?;
    Ok(Metrics {
        registry,
        requests,
        request_duration,
        cache_hits,
        cache_misses,
        cache_stale,
        cache_stores,
        cache_store_rejections,
        cache_evictions,
        cache_invalidations,
        kv_lookups,
        cache_local_bytes,
        cache_local_entries,
        env_cache_evictions,
        env_cache_local_bytes,
        env_cache_local_entries,
        upstream_errors,
        upstream_duration,
        config_reloads,
        config_generation,
        config_last_success,
        redis_errors,
        redis_lookup_duration,
        redis_breaker_open,
        redis_write_dropped,
        redis_subscription_lost,
        client_timeouts,
        admin_throttled,
        access_log_dropped,
    })
}

/// The Pingora release cachegate is built and tested against (pinned in Cargo.toml).
const PINGORA_VERSION: &str = "0.9.1";

/// The process-wide catalog.
pub static METRICS: Lazy<Metrics> = Lazy::new(|| match build() {
    Ok(m) => m,
    // Registration only fails on duplicate or malformed names, which the unit test below
    // rules out; there is no sensible way to run without metrics.
    Err(e) => panic!("metrics catalog is invalid: {e}"),
});

impl Metrics {
    /// Creates the zero series of every family for the label values known before any request:
    /// fixed sets (timeout phases, Redis drop reasons) and each stage of the configuration. A
    /// labelled family has no series until its first event, so on a fresh gateway a dashboard
    /// would show "No data" where the truth is 0, and `rate()`/`increase()` would miss the first
    /// event. Called at start and after every accepted reload.
    pub fn prime<'a>(&self, stages: impl IntoIterator<Item = &'a str>) {
        for phase in ["header", "body", "send"] {
            self.client_timeouts.with_label_values(&[phase]);
        }
        for reason in [
            "queue_full",
            "breaker_open",
            "disconnected",
            "closed",
            "no_key",
        ] {
            self.redis_write_dropped.with_label_values(&[reason]);
        }
        for op in ["get", "purge_times"] {
            self.redis_lookup_duration.with_label_values(&[op]);
            self.redis_errors.with_label_values(&[op, "timeout"]);
        }
        for outcome in ["accepted", "rejected"] {
            self.config_reloads.with_label_values(&[outcome]);
        }
        for stage in stages {
            self.requests.with_label_values(&[stage, "GET", "2xx"]);
            for cache in ["hit", "miss", "bypass"] {
                self.request_duration.with_label_values(&[stage, cache]);
            }
            self.upstream_duration.with_label_values(&[stage]);
            self.upstream_errors
                .with_label_values(&[stage, "ConnectRefused"]);
            // Stage caching of a request matching no resource template or flow: the series the
            // first such request creates.
            let cache = [stage, "other", "GET", "stage", "local"];
            self.cache_hits.with_label_values(&cache);
            self.cache_misses.with_label_values(&cache);
            for reason in ["revalidate", "error"] {
                self.cache_stale
                    .with_label_values(&[stage, "other", "stage", reason]);
            }
            self.cache_stores.with_label_values(&[stage, "stage"]);
            self.cache_store_rejections
                .with_label_values(&[stage, "stage", "status"]);
            for cause in ["size", "expired"] {
                self.cache_evictions.with_label_values(&[stage, cause]);
            }
            self.cache_invalidations
                .with_label_values(&[stage, "admin", "done"]);
            self.kv_lookups.with_label_values(&[stage, "", "miss"]);
            self.cache_local_bytes.with_label_values(&[stage]);
            self.cache_local_entries.with_label_values(&[stage]);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// Folds a method into a bounded label value.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

/// `2xx`, `4xx`, …
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_registers_and_renders() {
        METRICS
            .requests
            .with_label_values(&["s", "GET", "2xx"])
            .inc();
        let text = METRICS.render();
        assert!(text
            .contains("cachegate_requests_total{method=\"GET\",stage=\"s\",status_class=\"2xx\"}"));
        assert!(text.contains("# HELP cachegate_config_generation"));
        // Exported from the start, before any line is dropped.
        assert!(text.contains("cachegate_access_log_dropped_total "));
    }
}
