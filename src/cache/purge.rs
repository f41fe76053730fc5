//! Purges that cost O(1): prefix purges (`PurgeChildEntries`) and stage flushes are recorded as
//! times, and an entry is dead when it was created before a purge that covers it.
//!
//! Scanning the cache for matching keys would make a purge cost proportional to the cache size
//! (and be impossible in Redis without `SCAN`). Instead a purge records "everything under this
//! key prefix, created before now, is gone"; lookups compare the entry's creation time with the
//! purge times of the prefixes its key has. A flush is a floor: everything created before it.
//!
//! Records are bounded: each lives as long as the longest-lived entry it could cover (after that
//! every such entry has expired anyway), and the number per stage is capped. A record pushed out
//! by the cap raises the stage floor to its time — over-invalidating, never resurrecting.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moka::notification::RemovalCause;

/// Longest time an entry can live: the longest TTL (`ttl::POLICY_MAX_TTL_SECS`, Apigee's 30
/// days, which is not below the stage maximum) plus the largest stale window (one day), rounded
/// up. Purge records older than this cover nothing, so it must never be shorter than an entry's
/// life, or a purged entry could come back. Redis records live this long (they are separate
/// keys, not capped); a partition's local records live as long as its entries can
/// ([`SHORT_ENTRY_LIFETIME`] for most).
pub const MAX_ENTRY_LIFETIME: Duration =
    Duration::from_secs(crate::runtime::ttl::POLICY_MAX_TTL_SECS + 86_400 + 3600);

/// Longest life of an entry in a partition whose entries are kept at most an hour (stage
/// caching, and policies whose TTL cannot exceed 3600 s), plus the stale window, rounded up.
/// Local records of such a partition live this long: at 30 days, a stage with a few thousand
/// invalidations a day would fill its [`MAX_RECORDS_PER_STAGE`] and fold recent records into
/// the floor, flushing itself over and over.
pub const SHORT_ENTRY_LIFETIME: Duration =
    Duration::from_secs(crate::runtime::ttl::MAX_TTL_SECS + 86_400 + 3600);

/// Purge records kept per stage before the oldest are folded into the floor.
pub const MAX_RECORDS_PER_STAGE: u64 = 100_000;

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The purge records of one stage (or environment cache).
pub struct StagePurges {
    /// How long a record lives: the longest an entry of the partition can.
    lifetime: Duration,
    /// Prefix hash → purge time (ns since the epoch).
    records: moka::sync::Cache<[u8; 16], u64>,
    /// Everything created at or before this time (ns) is purged.
    floor: Arc<AtomicU64>,
    /// Set by the first prefix purge: until then lookups skip hashing key prefixes.
    any_prefix: AtomicBool,
}

impl std::fmt::Debug for StagePurges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagePurges")
            .field("lifetime", &self.lifetime)
            .field("records", &self.records.entry_count())
            .field("floor", &self.floor.load(Ordering::Relaxed))
            .finish()
    }
}

impl StagePurges {
    /// No purges yet; records live `lifetime` (the longest an entry of the partition can).
    pub fn new(lifetime: Duration) -> Self {
        let floor = Arc::new(AtomicU64::new(0));
        let on_evict = Arc::clone(&floor);
        let records = moka::sync::Cache::builder()
            .max_capacity(MAX_RECORDS_PER_STAGE)
            .time_to_live(lifetime)
            .eviction_listener(move |_key, time: u64, cause| {
                // A record dropped for room must not bring the entries it covered back.
                if cause == RemovalCause::Size {
                    on_evict.fetch_max(time, Ordering::Relaxed);
                }
            })
            .build();
        Self {
            lifetime,
            records,
            floor,
            any_prefix: AtomicBool::new(false),
        }
    }

    /// How long its records live.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The same records and floor with records living `lifetime` from now on (a reload that
    /// lets the partition keep entries longer must keep its records at least as long).
    pub fn with_lifetime(&self, lifetime: Duration) -> Self {
        let next = Self::new(lifetime);
        for (prefix, time) in self.records.iter() {
            next.records.insert(*prefix, time);
        }
        next.floor
            .fetch_max(self.floor.load(Ordering::Relaxed), Ordering::Relaxed);
        next.any_prefix
            .store(self.has_prefix_purges(), Ordering::Release);
        next
    }

    /// Records that every entry under `prefix` created before `at` is purged.
    pub fn purge_prefix(&self, prefix: [u8; 16], at: SystemTime) {
        let t = nanos(at);
        let current = self.records.get(&prefix).unwrap_or(0);
        self.records.insert(prefix, current.max(t));
        self.any_prefix.store(true, Ordering::Release);
    }

    /// Records that every entry of the stage created before `at` is purged.
    pub fn flush(&self, at: SystemTime) {
        self.floor.fetch_max(nanos(at), Ordering::Relaxed);
    }

    /// True when any prefix purge is recorded (lookups can skip hashing prefixes otherwise).
    pub fn has_prefix_purges(&self) -> bool {
        self.any_prefix.load(Ordering::Acquire)
    }

    /// Whether an entry created at `created`, whose key has the prefix hashes `prefixes`, is
    /// purged.
    pub fn is_purged(&self, prefixes: &[[u8; 16]], created: SystemTime) -> bool {
        let c = nanos(created);
        if c <= self.floor.load(Ordering::Relaxed) {
            return true;
        }
        prefixes
            .iter()
            .any(|p| self.records.get(p).is_some_and(|t| c <= t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn prefix_purge_covers_older_entries_only() {
        let p = StagePurges::new(SHORT_ENTRY_LIFETIME);
        assert!(!p.has_prefix_purges());
        p.purge_prefix([1; 16], t(100));
        assert!(p.has_prefix_purges());
        assert!(p.is_purged(&[[0; 16], [1; 16]], t(99)));
        assert!(p.is_purged(&[[1; 16]], t(100)));
        assert!(!p.is_purged(&[[1; 16]], t(101)));
        assert!(!p.is_purged(&[[2; 16]], t(50)));
        // An older purge never lowers a newer one.
        p.purge_prefix([1; 16], t(10));
        assert!(p.is_purged(&[[1; 16]], t(99)));
    }

    #[test]
    fn flush_is_a_floor() {
        let p = StagePurges::new(SHORT_ENTRY_LIFETIME);
        p.flush(t(100));
        assert!(p.is_purged(&[], t(100)));
        assert!(!p.is_purged(&[], t(101)));
        p.flush(t(50));
        assert!(p.is_purged(&[], t(99)));
    }

    #[test]
    fn a_longer_lifetime_keeps_every_record_and_the_floor() {
        let p = StagePurges::new(SHORT_ENTRY_LIFETIME);
        p.purge_prefix([1; 16], t(100));
        p.flush(t(50));
        let q = p.with_lifetime(MAX_ENTRY_LIFETIME);
        assert_eq!(q.lifetime(), MAX_ENTRY_LIFETIME);
        assert!(q.has_prefix_purges());
        assert!(q.is_purged(&[[1; 16]], t(99)), "prefix record kept");
        assert!(!q.is_purged(&[[1; 16]], t(101)));
        assert!(q.is_purged(&[[2; 16]], t(50)), "floor kept");
        assert!(!q.is_purged(&[[2; 16]], t(51)));
    }
}
