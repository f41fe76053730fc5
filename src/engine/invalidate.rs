//! Invalidating an entry, or an entry and all its children, everywhere: the local tier, the
//! shared tier and every other instance. Used by InvalidateCache steps and the admin API.

use crate::cache::store::TieredStore;
use crate::metrics::METRICS;
use crate::runtime::key::BuiltKey;

/// Removes (or purges under) a key in both namespaces. Returns how many entries were removed
/// (prefix purges from policies report 0: on the request path they are O(1) records; the
/// admin API also counts the local entries they cover). `source`/`who` go to the audit
/// log and the invalidation metric.
pub fn invalidate_key(
    stage: &str,
    store: &TieredStore,
    value_key: &BuiltKey,
    response_key: &BuiltKey,
    children: bool,
    source: &str,
    who: &str,
) -> u64 {
    // The entries live in the key's partition (the stage's cache, or an environment cache);
    // `stage` labels the metrics and the audit line.
    let partition = value_key.partition();
    let removed = if children {
        // Namespace-neutral: one record covers responses and values. Only the admin API pays
        // for counting (a scan of the local tier); the request path records and moves on.
        let hash = value_key.children_hash();
        if source == "admin" {
            store.purge_children_counted(partition, hash)
        } else {
            store.purge_prefix(partition, hash);
            0
        }
    } else {
        let mut n = 0;
        for key in [value_key, response_key] {
            // Also records a purge so a write that started before this invalidation cannot
            // bring the entry back, and fans out to Redis and the other instances.
            n += u64::from(store.invalidate_exact(partition, &key.store_key()));
        }
        n
    };
    METRICS
        .cache_invalidations
        .with_label_values(&[stage, source, "done"])
        .inc();
    tracing::info!(
        target: "cachegate::audit",
        stage,
        source,
        who,
        key = %value_key.readable,
        children,
        removed,
        "Cache invalidated."
    );
    removed
}
