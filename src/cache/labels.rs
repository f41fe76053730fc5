//! The metric labels of a local tier. A stage's tier (AWS stage caching, and the policies of a
//! stage outside an environment) is labelled `stage="<stage>"`, like every per-stage metric. An
//! environment cache is no stage: its tier has metrics of its own,
//! `cachegate_environment_cache_*`, labelled `environment="<env>"` and `cache="<name>"`
//! (`cache=""` for the default cache, which has no name, so that a cache named `default` is
//! another one). `stage` never holds anything but a stage's name, and the stages' series keep
//! their label sets.

use prometheus::{IntCounter, IntGauge};

use crate::metrics::METRICS;
use crate::runtime::key::env_partition_parts;

/// The eviction counter of the tier of `partition` for `cause` (`size`, `expired`).
pub(super) fn evictions(partition: &str, cause: &str) -> IntCounter {
    match env_partition_parts(partition) {
        Some((env, cache)) => METRICS
            .env_cache_evictions
            .with_label_values(&[env, cache, cause]),
        None => METRICS
            .cache_evictions
            .with_label_values(&[partition, cause]),
    }
}

/// The size gauges (bytes, entries) of the tier of `partition`.
pub(super) fn sizes(partition: &str) -> (IntGauge, IntGauge) {
    match env_partition_parts(partition) {
        Some((env, cache)) => (
            METRICS
                .env_cache_local_bytes
                .with_label_values(&[env, cache]),
            METRICS
                .env_cache_local_entries
                .with_label_values(&[env, cache]),
        ),
        None => (
            METRICS.cache_local_bytes.with_label_values(&[partition]),
            METRICS.cache_local_entries.with_label_values(&[partition]),
        ),
    }
}

/// Removes the size gauges of a tier that is gone (absent ones are not an error: no refresh may
/// have set them).
pub(super) fn remove_sizes(partition: &str) {
    let _ = match env_partition_parts(partition) {
        Some((env, cache)) => METRICS
            .env_cache_local_bytes
            .remove_label_values(&[env, cache])
            .and(
                METRICS
                    .env_cache_local_entries
                    .remove_label_values(&[env, cache]),
            ),
        None => METRICS
            .cache_local_bytes
            .remove_label_values(&[partition])
            .and(
                METRICS
                    .cache_local_entries
                    .remove_label_values(&[partition]),
            ),
    };
}
