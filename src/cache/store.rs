//! `TieredStore`: the process-wide cache store, one local tier per stage, with the shared Redis
//! tier (when configured) behind it.
//!
//! The API is synchronous on purpose. The hit path is a moka read, which is lock-free and never
//! blocks (no lock is waited on, no I/O happens), so an `async fn` would only add a future per
//! lookup and an `.await` point without ever yielding. The stage → tier map is read through
//! `ArcSwap`, so a lookup takes no lock either, even while a reload reconfigures the tiers.
//! The shared tier's network round trip happens only after a local miss (`get_tiered`); the local
//! hit path never waits on Redis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use super::entry::{Entry, StoreKey, Tier};
use super::local::LocalTier;
use super::purge::StagePurges;
use super::shared::{Invalidation, SharedTier};

/// The cache store shared by ResponseCache (through the pingora bridge) and the KV policies.
/// One instance per process, because tiers are per stage and must survive configuration
/// reloads; it is reconfigured in place by [`TieredStore::configure`].
pub struct TieredStore {
    /// Stage name → its local tier. Replaced wholesale by `configure`; read without locking.
    tiers: ArcSwap<HashMap<String, Arc<LocalTier>>>,
    /// Stage name → its purge records (prefix purges and flushes); kept across reloads like the
    /// tiers, so a reload never brings purged entries back.
    purges: ArcSwap<HashMap<String, Arc<StagePurges>>>,
    /// Serialises `configure` so two reloads cannot interleave their read-modify-swap.
    configure_lock: Mutex<()>,
    /// Cap on local lifetimes given to newly created tiers. `None` without a shared tier; with
    /// one it bounds how stale one instance can be relative to the others (a lost invalidation
    /// message cannot keep an entry longer).
    max_local_ttl: Option<Duration>,
    /// The shared (Redis) tier, once connected (it connects in the background so the gateway
    /// starts and serves with Redis down).
    shared: OnceLock<SharedTier>,
}

impl std::fmt::Debug for TieredStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tiers = self.tiers.load();
        f.debug_struct("TieredStore")
            .field("tiers", &tiers.values().collect::<Vec<_>>())
            .field("max_local_ttl", &self.max_local_ttl)
            .finish()
    }
}

impl Default for TieredStore {
    fn default() -> Self {
        Self::new()
    }
}

impl TieredStore {
    /// An empty store: every stage is unknown (gets miss, puts are dropped) until the first
    /// [`TieredStore::configure`], so the store can be created before the configuration loads.
    /// A store whose local tiers keep entries at most `max_local_ttl` (use with a shared tier).
    pub fn with_max_local_ttl(max_local_ttl: Duration) -> Self {
        Self {
            max_local_ttl: Some(max_local_ttl),
            ..Self::new()
        }
    }

    /// Attaches the shared tier (once; later calls are ignored).
    pub fn attach_shared(&self, shared: SharedTier) {
        let _ = self.shared.set(shared);
    }

    /// The shared tier, if attached.
    pub fn shared(&self) -> Option<&SharedTier> {
        self.shared.get()
    }

    pub fn new() -> Self {
        Self {
            tiers: ArcSwap::from_pointee(HashMap::new()),
            purges: ArcSwap::from_pointee(HashMap::new()),
            configure_lock: Mutex::new(()),
            max_local_ttl: None,
            shared: OnceLock::new(),
        }
    }

    /// Aligns the tiers with a (re)loaded configuration, given each stage's name and local
    /// capacity in bytes. Tiers of stages whose capacity did not change are kept, so a reload
    /// does not empty the cache. A tier whose capacity changed is rebuilt (moka cannot be
    /// resized) and receives as many of the old tier's live entries as fit, newest first.
    /// Tiers of stages that disappeared are dropped and their gauges removed. If a stage is
    /// listed twice, the last capacity wins.
    ///
    /// Writes that reach an old tier while it is being copied are lost (a later miss refills
    /// them); readers are never blocked.
    pub fn configure(&self, stages: &[(String, u64, Duration)]) {
        // A poisoned lock only means an earlier configure panicked; the map it guards is
        // swapped atomically, so it is still consistent.
        let _guard = self
            .configure_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.tiers.load_full();
        let wanted: HashMap<&str, u64> = stages
            .iter()
            .map(|(name, capacity, _)| (name.as_str(), *capacity))
            .collect();
        let lifetimes: HashMap<&str, Duration> = stages
            .iter()
            .map(|(name, _, lifetime)| (name.as_str(), *lifetime))
            .collect();

        let mut next: HashMap<String, Arc<LocalTier>> = HashMap::with_capacity(wanted.len());
        for (&name, &capacity) in &wanted {
            let tier = match current.get(name) {
                Some(old) if old.capacity() == capacity => Arc::clone(old),
                Some(old) => {
                    let (tier, copied) = resized(old, capacity);
                    tracing::info!(
                        stage = name,
                        old_capacity_bytes = old.capacity(),
                        capacity_bytes = capacity,
                        copied_entries = copied,
                        "local cache tier resized"
                    );
                    Arc::new(tier)
                }
                None => {
                    tracing::info!(
                        stage = name,
                        capacity_bytes = capacity,
                        "local cache tier created"
                    );
                    Arc::new(LocalTier::new(name, capacity, self.max_local_ttl))
                }
            };
            next.insert(name.to_owned(), tier);
        }
        self.tiers.store(Arc::new(next));
        let old_purges = self.purges.load_full();
        let purges: HashMap<String, Arc<StagePurges>> = wanted
            .keys()
            .map(|&name| {
                let lifetime = lifetimes
                    .get(name)
                    .copied()
                    .unwrap_or(crate::cache::purge::MAX_ENTRY_LIFETIME);
                let p = match old_purges.get(name) {
                    // Entries may now live longer: so must the records that cover them.
                    Some(old) if old.lifetime() < lifetime => Arc::new(old.with_lifetime(lifetime)),
                    Some(old) => Arc::clone(old),
                    None => Arc::new(StagePurges::new(lifetime)),
                };
                (name.to_owned(), p)
            })
            .collect();
        self.purges.store(Arc::new(purges));

        for name in current.keys() {
            if !wanted.contains_key(name.as_str()) {
                tracing::info!(stage = name.as_str(), "local cache tier dropped");
                super::labels::remove_sizes(name);
            }
        }
    }

    /// The live entry for `key` in `stage`, or `None` (also for an unknown stage, so a request
    /// racing a reload that removed its stage simply misses).
    pub fn get(&self, stage: &str, key: &StoreKey) -> Option<Arc<Entry>> {
        let tiers = self.tiers.load();
        let local = tiers.get(stage)?;
        if let Some(entry) = local.get(key) {
            return Some(entry);
        }
        // Shared tier: on a local miss, look the key up in Redis here and, on a hit, promote it
        // with `local.insert(*key, Arc::clone(&entry))` (bounded by the tier's max_local_ttl).
        None
    }

    /// Stores `entry` under `key` in `stage`'s tier. A no-op for an unknown stage: the entry
    /// belongs to a configuration that is gone.
    pub fn put(&self, stage: &str, key: StoreKey, entry: Arc<Entry>) {
        if let Some(local) = self.tiers.load().get(stage) {
            local.insert(key, entry);
            // Shared tier: write-through to Redis goes here.
        }
    }

    /// Removes `key` from `stage` (explicit invalidation); true if a live entry was there.
    pub fn remove(&self, stage: &str, key: &StoreKey) -> bool {
        // Shared tier: delete in Redis too.
        self.tiers
            .load()
            .get(stage)
            .is_some_and(|local| local.remove(key))
    }

    /// Replaces the live entry under `key` with `f(entry)` (e.g. refreshed metadata after a
    /// revalidation) without the caller re-sending the body. True if the stage now holds the
    /// result; see [`LocalTier::update`].
    pub fn update(&self, stage: &str, key: &StoreKey, f: impl FnOnce(&Entry) -> Entry) -> bool {
        self.tiers
            .load()
            .get(stage)
            .is_some_and(|local| local.update(key, f))
    }

    /// Like [`TieredStore::update`], and the updated entry is queued for the shared tier too (a
    /// revalidated entry: other instances then find it fresh instead of revalidating it again).
    pub fn update_tiered(
        &self,
        stage: &str,
        key: &StoreKey,
        encrypted: bool,
        f: impl FnOnce(&Entry) -> Entry,
    ) -> bool {
        let mut updated = None;
        let stored = self.update(stage, key, |old| {
            let entry = f(old);
            updated = Some(entry.clone());
            entry
        });
        if let (true, Some(shared), Some(entry)) = (stored, self.shared.get(), updated) {
            shared.put(stage, *key, Arc::new(entry), encrypted);
        }
        stored
    }

    /// Drops every entry of `stage` (admin purge). A no-op for an unknown stage.
    pub fn clear_stage(&self, stage: &str) {
        if let Some(local) = self.tiers.load().get(stage) {
            local.clear();
        }
    }

    /// The local tier of `stage`, for callers that do many operations on one stage and for
    /// tests. The returned tier may be replaced by a later reload; do not keep it around.
    pub fn tier(&self, stage: &str) -> Option<Arc<LocalTier>> {
        self.tiers.load().get(stage).cloned()
    }

    /// The purge records of `stage`, if it exists.
    pub fn purges(&self, stage: &str) -> Option<Arc<StagePurges>> {
        self.purges.load().get(stage).cloned()
    }

    /// Whether `stage` has any prefix purge, i.e. whether lookups must check key prefixes.
    pub fn has_prefix_purges(&self, stage: &str) -> bool {
        self.purges
            .load()
            .get(stage)
            .is_some_and(|p| p.has_prefix_purges())
    }

    /// Looks `key` up in the local tier, then (when configured) the shared tier within
    /// `deadline`; an entry covered by a purge is a miss. A shared hit refills the local tier
    /// with the entry's remaining lifetime. Returns the tier that served it.
    pub async fn get_tiered(
        &self,
        stage: &str,
        key: &StoreKey,
        local_prefixes: &[[u8; 16]],
        all_prefixes: impl FnOnce() -> Vec<[u8; 16]>,
        deadline: Option<Duration>,
        encrypted: bool,
    ) -> Option<(Arc<Entry>, Tier)> {
        if let Some(e) = self.get_checked(stage, key, local_prefixes) {
            return Some((e, Tier::Local));
        }
        self.shared.get()?;
        let prefixes = all_prefixes();
        match self
            .get_shared(stage, key, &prefixes, deadline, encrypted)
            .await
        {
            Some(e) => Some((e, Tier::Shared)),
            // The shared lookup took a round trip, during which this instance's own fetch of
            // the key may have finished: pingora takes the cache lock right after a miss with
            // no further look, so a miss here would become a second fetch (two upstream
            // requests for one cold key under a burst). The local tier is asked again — with
            // every prefix, since a first purge may also have landed meanwhile. (This narrows
            // the window to the instant between this look and pingora's lock; it does not
            // close it.)
            None => self
                .get_checked(stage, key, &prefixes)
                .map(|e| (e, Tier::Local)),
        }
    }

    /// The shared tier's entry for `key`, unless a purge (recorded in Redis or known here)
    /// covers it; refills the local tier with it.
    async fn get_shared(
        &self,
        stage: &str,
        key: &StoreKey,
        prefixes: &[[u8; 16]],
        deadline: Option<Duration>,
        encrypted: bool,
    ) -> Option<Arc<Entry>> {
        let shared = self.shared.get()?;
        let deadline = deadline.map_or(shared.lookup_timeout(), |d| d.min(shared.lookup_timeout()));
        // Another instance may have purged what Redis still holds: its purge records are read
        // in the same round trip as the entry.
        let (entry, (times, floor)) = shared
            .get_with_purges(stage, key, prefixes, encrypted, deadline)
            .await?;
        let created = millis(entry.created);
        if floor.is_some_and(|f| created <= f) || times.iter().flatten().any(|t| created <= *t) {
            return None;
        }
        // Purges this instance knows of (its own, and those other instances published) count
        // too: Redis may have refused to record one (full, or briefly unreachable).
        let known = self.purges.load();
        if known
            .get(stage)
            .is_some_and(|p| p.is_purged(prefixes, entry.created))
        {
            return None;
        }
        let entry = Arc::new(entry);
        // Refill the local tier with the entry's remaining lifetime (never a fresh one).
        self.put(stage, *key, Arc::clone(&entry));
        Some(entry)
    }

    /// Whether a shared tier is configured.
    pub fn has_shared(&self) -> bool {
        self.shared.get().is_some()
    }

    /// Stores `entry` in the local tier and (when configured) queues it for the shared tier,
    /// sealed when `encrypted`. Never waits for the shared tier.
    pub fn put_tiered(&self, stage: &str, key: StoreKey, entry: Arc<Entry>, encrypted: bool) {
        if let Some(shared) = self.shared.get() {
            shared.put(stage, key, Arc::clone(&entry), encrypted);
        }
        self.put(stage, key, entry);
    }

    /// Like [`TieredStore::put_tiered`], for an entry that replaces the current one everywhere
    /// (an authorized client refresh): written to Redis at once, after which every other
    /// instance drops its local copy.
    pub fn put_replacing(&self, stage: &str, key: StoreKey, entry: Arc<Entry>, encrypted: bool) {
        if let Some(shared) = self.shared.get().cloned() {
            let (stage, entry) = (stage.to_owned(), Arc::clone(&entry));
            spawn(async move {
                let _ = shared.replace(&stage, key, entry, encrypted).await;
            });
        }
        self.put(stage, key, entry);
    }

    /// Invalidates one entry everywhere: this instance's tier, Redis, and (by a message) every
    /// other instance's tier; a purge record stops an in-flight write from bringing it back.
    /// Returns whether this instance held it.
    pub fn invalidate_exact(&self, stage: &str, key: &StoreKey) -> bool {
        let removed = self.remove(stage, key);
        self.purge_prefix(stage, key.0);
        if let Some(shared) = self.shared.get().cloned() {
            let (stage, key) = (stage.to_owned(), *key);
            spawn(async move {
                let _ = shared.delete(&stage, &[key]).await;
                let _ = shared
                    .publish(&Invalidation::Remove {
                        stage,
                        keys: vec![key],
                    })
                    .await;
            });
        }
        removed
    }

    /// Applies another instance's invalidation to this instance's local state only.
    pub fn apply_remote(&self, msg: &Invalidation) {
        match msg {
            Invalidation::Remove { stage, keys } => {
                for k in keys {
                    self.remove(stage, k);
                }
            }
            Invalidation::PurgePrefix {
                stage,
                prefix,
                at_ms,
            } => {
                if let Some(p) = self.purges(stage) {
                    p.purge_prefix(*prefix, from_millis(*at_ms));
                }
            }
            Invalidation::Flush { stage, at_ms } => {
                if let Some(p) = self.purges(stage) {
                    p.flush(from_millis(*at_ms));
                }
                if let Some(t) = self.tier(stage) {
                    t.clear();
                }
            }
        }
    }

    /// Drops every local entry of every stage (the invalidation subscription was lost, so
    /// messages may have been missed).
    pub fn clear_local(&self) {
        for t in self.tiers.load().values() {
            t.clear();
        }
    }

    /// Like [`TieredStore::get`], but an entry covered by a flush or by a purge of one of
    /// `prefixes` (created before it) is a miss and is dropped.
    pub fn get_checked(
        &self,
        stage: &str,
        key: &StoreKey,
        prefixes: &[[u8; 16]],
    ) -> Option<Arc<Entry>> {
        let entry = self.get(stage, key)?;
        let purged = self
            .purges
            .load()
            .get(stage)
            .is_some_and(|p| p.is_purged(prefixes, entry.created));
        if purged {
            self.remove(stage, key);
            return None;
        }
        Some(entry)
    }

    /// Purges every entry of `stage` whose key starts with `prefix` (O(1): a record, not a scan).
    pub fn purge_prefix(&self, stage: &str, prefix: [u8; 16]) {
        let now = SystemTime::now();
        if let Some(p) = self.purges.load().get(stage) {
            p.purge_prefix(prefix, now);
        }
        if let Some(shared) = self.shared.get().cloned() {
            let stage = stage.to_owned();
            spawn(async move {
                let _ = shared.record_purge(&stage, prefix, now).await;
                let _ = shared
                    .publish(&Invalidation::PurgePrefix {
                        stage,
                        prefix,
                        at_ms: millis(now),
                    })
                    .await;
            });
        }
    }

    /// Purges every entry under `prefix` (the O(1) record) and also removes, and counts, the
    /// matching entries the local tier holds. The count needs a scan of the local tier, so it
    /// is for the admin API, never the request path.
    pub fn purge_children_counted(&self, stage: &str, prefix: [u8; 16]) -> u64 {
        self.purge_prefix(stage, prefix);
        let Some(tier) = self.tier(stage) else {
            return 0;
        };
        tier.live_entries()
            .into_iter()
            .filter(|(_, e)| e.prefixes.contains(&prefix))
            .map(|(k, _)| u64::from(tier.remove(&k)))
            .sum()
    }

    /// Removes every entry of `stage`; returns how many the local tier held. O(1) for lookups
    /// (a floor time); the local tier's memory is released by moka in the background.
    pub fn flush(&self, stage: &str) -> u64 {
        let now = SystemTime::now();
        if let Some(p) = self.purges.load().get(stage) {
            p.flush(now);
        }
        if let Some(shared) = self.shared.get().cloned() {
            let stage = stage.to_owned();
            spawn(async move {
                let _ = shared.record_flush(&stage, now).await;
                let _ = shared
                    .publish(&Invalidation::Flush {
                        stage,
                        at_ms: millis(now),
                    })
                    .await;
            });
        }
        match self.tier(stage) {
            Some(tier) => {
                tier.sync();
                let n = tier.entry_count();
                tier.clear();
                n
            }
            None => 0,
        }
    }

    /// Brings every tier's counters up to date and publishes them as the `cache_local_bytes` /
    /// `cache_local_entries` gauges. Called before rendering `/metrics`, because moka's counters
    /// are only exact after pending maintenance has run.
    pub fn refresh_metrics(&self) {
        // Under the configure lock, so a concurrent reload cannot drop a stage's gauges between
        // our snapshot and our `set`, which would resurrect them.
        let _guard = self
            .configure_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tiers = self.tiers.load();
        for (name, tier) in tiers.iter() {
            tier.sync();
            let (bytes, entries) = super::labels::sizes(name);
            bytes.set(saturating_i64(tier.weighted_size()));
            entries.set(saturating_i64(tier.entry_count()));
        }
    }
}

/// A new tier of `capacity` for `old`'s stage, filled with as many of `old`'s live entries as
/// fit (newest first, skipping ones too large for the remaining room). Staying within capacity
/// keeps moka's admission policy out of the copy, so nothing copied is evicted straight away.
/// Returns the tier and the number of entries copied.
fn resized(old: &LocalTier, capacity: u64) -> (LocalTier, usize) {
    let tier = LocalTier::new(old.stage(), capacity, old.max_local_ttl());
    let mut entries = old.live_entries();
    entries.sort_by_key(|(_, entry)| std::cmp::Reverse(entry.created));
    let mut room = capacity;
    let mut copied = 0;
    for (key, entry) in entries {
        let weight = u64::from(entry.weight());
        if weight <= room {
            room -= weight;
            tier.insert(key, entry);
            copied += 1;
        }
    }
    (tier, copied)
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Unix milliseconds.
fn millis(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn from_millis(ms: u64) -> SystemTime {
    std::time::UNIX_EPOCH + Duration::from_millis(ms)
}

/// Runs shared-tier side effects in the background when a runtime is there (always, in the
/// gateway; unit tests of the local tier may call without one).
fn spawn(f: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        h.spawn(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::METRICS;
    use bytes::Bytes;
    use std::time::SystemTime;

    fn key(n: u64) -> StoreKey {
        let mut k = [0u8; 16];
        k[8..].copy_from_slice(&n.to_be_bytes());
        StoreKey(k)
    }

    fn entry(body_len: usize) -> Arc<Entry> {
        let now = SystemTime::now();
        Arc::new(Entry {
            meta: Bytes::from_static(b"m"),
            body: Bytes::from(vec![1u8; body_len]),
            created: now,
            expires_at: now + Duration::from_secs(600),
            prefixes: Default::default(),
            decoded: Default::default(),
        })
    }

    fn stages(list: &[(&str, u64)]) -> Vec<(String, u64, Duration)> {
        list.iter()
            .map(|(n, c)| {
                (
                    (*n).to_owned(),
                    *c,
                    crate::cache::purge::SHORT_ENTRY_LIFETIME,
                )
            })
            .collect()
    }

    #[test]
    fn unknown_stage_misses_and_ignores_puts() {
        let store = TieredStore::default();
        store.put("t-store-nowhere", key(1), entry(10));
        assert_eq!(store.get("t-store-nowhere", &key(1)), None);
        assert!(!store.remove("t-store-nowhere", &key(1)));
        assert!(!store.update("t-store-nowhere", &key(1), |e| e.clone()));
        store.clear_stage("t-store-nowhere");
        assert!(store.tier("t-store-nowhere").is_none());
        store.refresh_metrics();
    }

    #[test]
    fn put_get_update_remove_clear() {
        let store = TieredStore::new();
        store.configure(&stages(&[
            ("t-store-basic", 1 << 20),
            ("t-store-other", 1 << 20),
        ]));
        let e = entry(10);
        store.put("t-store-basic", key(1), e.clone());
        assert_eq!(store.get("t-store-basic", &key(1)), Some(e.clone()));
        // Stages are isolated.
        assert_eq!(store.get("t-store-other", &key(1)), None);

        assert!(store.update("t-store-basic", &key(1), |e| Entry {
            meta: Bytes::from_static(b"new"),
            ..e.clone()
        }));
        assert_eq!(
            store.get("t-store-basic", &key(1)).unwrap().meta,
            Bytes::from_static(b"new")
        );

        assert!(store.remove("t-store-basic", &key(1)));
        assert_eq!(store.get("t-store-basic", &key(1)), None);

        store.put("t-store-basic", key(2), e.clone());
        store.put("t-store-other", key(2), e);
        store.clear_stage("t-store-basic");
        assert_eq!(store.get("t-store-basic", &key(2)), None);
        assert!(store.get("t-store-other", &key(2)).is_some());
    }

    #[test]
    fn configure_keeps_resizes_and_drops() {
        let store = TieredStore::new();
        store.configure(&stages(&[
            ("t-store-keep", 1 << 20),
            ("t-store-resize", 1 << 20),
            ("t-store-drop", 1 << 20),
        ]));
        for i in 0..8 {
            store.put("t-store-keep", key(i), entry(1000));
            store.put("t-store-resize", key(i), entry(1000));
            store.put("t-store-drop", key(i), entry(1000));
        }
        store.refresh_metrics();
        let dropped_gauge = || {
            METRICS
                .render()
                .contains("cachegate_cache_local_bytes{stage=\"t-store-drop\"}")
        };
        assert!(dropped_gauge());
        let kept_before = store.tier("t-store-keep").unwrap();

        // Shrink "t-store-resize" to room for 4 entries (weight 16 + 1 + 1000 each).
        let small = 4 * 1017 + 500;
        store.configure(&stages(&[
            ("t-store-keep", 1 << 20),
            ("t-store-resize", small),
            ("t-store-new", 4096),
        ]));

        // Unchanged stage: the very same tier, entries intact.
        assert!(Arc::ptr_eq(
            &kept_before,
            &store.tier("t-store-keep").unwrap()
        ));
        assert!((0..8).all(|i| store.get("t-store-keep", &key(i)).is_some()));

        // Resized stage: new capacity, as many entries as fit copied over.
        let resized = store.tier("t-store-resize").unwrap();
        assert_eq!(resized.capacity(), small);
        let present = (0..8)
            .filter(|i| store.get("t-store-resize", &key(*i)).is_some())
            .count();
        assert_eq!(present, 4);
        // The new bound is in effect.
        for i in 100..120 {
            store.put("t-store-resize", key(i), entry(1000));
        }
        resized.sync();
        assert!(resized.weighted_size() <= small);

        // Dropped stage: gone, gauges removed.
        assert!(store.tier("t-store-drop").is_none());
        assert_eq!(store.get("t-store-drop", &key(0)), None);
        assert!(!dropped_gauge());

        // New stage exists and works.
        store.put("t-store-new", key(1), entry(10));
        assert!(store.get("t-store-new", &key(1)).is_some());

        store.refresh_metrics();
        let keep_bytes = METRICS
            .cache_local_bytes
            .with_label_values(&["t-store-keep"])
            .get();
        assert_eq!(keep_bytes, 8 * 1017);
        let keep_entries = METRICS
            .cache_local_entries
            .with_label_values(&["t-store-keep"])
            .get();
        assert_eq!(keep_entries, 8);
    }

    /// An environment cache's tier is labelled by environment and cache, never as a stage
    /// (see `cache::labels`); a stage's keeps `stage`.
    #[test]
    fn environment_cache_tiers_have_their_own_labels() {
        let store = TieredStore::new();
        let env = |cache| crate::runtime::key::env_partition("t-labels", cache);
        let (default, named) = (env(None), env(Some("tokens")));
        store.configure(&stages(&[
            (&default, 1 << 20),
            (&named, 1 << 20),
            ("t-labels-stage", 1 << 20),
        ]));
        for p in [&default, &named, "t-labels-stage"] {
            store.put(p, key(1), entry(100));
        }
        store.refresh_metrics();
        let text = METRICS.render();
        for series in [
            "cachegate_environment_cache_local_entries{cache=\"\",environment=\"t-labels\"} 1",
            "cachegate_environment_cache_local_entries{cache=\"tokens\",environment=\"t-labels\"} 1",
            "cachegate_environment_cache_local_bytes{cache=\"tokens\",environment=\"t-labels\"} 117",
            "cachegate_environment_cache_evictions_total{cache=\"tokens\",cause=\"size\",environment=\"t-labels\"} 0",
            "cachegate_cache_local_entries{stage=\"t-labels-stage\"} 1",
        ] {
            assert!(text.contains(series), "no `{series}` in:\n{text}");
        }
        assert!(!text.contains("stage=\"@"), "{text}");
        // A cache the environment no longer has loses its gauges.
        store.configure(&stages(&[("t-labels-stage", 1 << 20)]));
        let text = METRICS.render();
        let gauges = ["local_bytes", "local_entries"].map(|g| {
            format!("cachegate_environment_cache_{g}{{cache=\"tokens\",environment=\"t-labels\"}}")
        });
        assert!(gauges.iter().all(|g| !text.contains(g.as_str())), "{text}");
    }

    #[test]
    fn concurrent_access_during_reconfigure() {
        let store = Arc::new(TieredStore::new());
        store.configure(&stages(&[("t-store-race", 64 << 10)]));
        let workers: Vec<_> = (0..6u64)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for i in 0..3_000u64 {
                        let k = key((t + i) % 200);
                        if i % 4 == 0 {
                            store.put("t-store-race", k, entry(512));
                        } else {
                            let _ = store.get("t-store-race", &k);
                        }
                    }
                })
            })
            .collect();
        for cap in [32 << 10, 128 << 10, 64 << 10] {
            store.configure(&stages(&[("t-store-race", cap)]));
            store.refresh_metrics();
        }
        for w in workers {
            w.join().unwrap();
        }
        let tier = store.tier("t-store-race").unwrap();
        tier.sync();
        assert!(tier.weighted_size() <= tier.capacity());
    }
}
