//! The bridge to pingora-cache: the only module that imports `pingora::cache`.
//!
//! pingora-cache runs the HTTP cache state machine (request collapsing through the cache lock,
//! stale-while-revalidate, stale-if-error, revalidation with the target, 304s, HEAD, `Age`);
//! this module plugs the project's [`TieredStore`] into it as a `Storage`, and re-exports the few
//! pingora-cache types the proxy's hook signatures need. Its API changes between Pingora
//! versions, so keeping it here means an upgrade touches one file.
//!
//! Entries are keyed by the 16-byte hash pingora computes for a `CacheKey` (`combined_bin`, which
//! includes the Vary variance); the proxy sets the primary hash to the project's own framed-key
//! hash (`set_primary_bin_override`) so the KV policies and invalidation can address the same
//! entries. The stage name travels in the key's `user_tag` and selects the stage's local tier.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use once_cell::sync::Lazy;
pub use pingora::cache::key::HashBinary;
use pingora::cache::key::{CacheHashKey, CompactCacheKey};
use pingora::cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora::cache::storage::{
    HandleHit, HandleMiss, MissFinishType, PurgeOutcome, PurgeTarget, PurgeType,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{MissHandler, Storage, VarianceBuilder};
use pingora::{Error, ErrorType, Result};

pub use pingora::cache::{
    CacheKey, CacheMeta, CacheOptionOverrides, CachePhase, ForcedFreshness, HitHandler,
    NoCacheReason, RespCacheable,
};

use super::entry::{Entry, StoreKey, Tier};
use super::store::TieredStore;
use crate::runtime::key::BuiltKey;

/// How long a cache-lock holder may take before waiters give up on it (a writer that died).
const LOCK_AGE_TIMEOUT: Duration = Duration::from_secs(30);

static LOCK: Lazy<Box<CacheKeyLockImpl>> = Lazy::new(|| CacheLock::new_boxed(LOCK_AGE_TIMEOUT));

/// A gateway's cache: its store and the `Storage` over it that pingora-cache uses.
///
/// pingora-cache requires `&'static` storage, so one is leaked per gateway started — never per
/// reload: reloads reconfigure the tiers inside the same store. Several gateways in one process
/// (tests, embedding) each get their own.
#[derive(Clone, Copy)]
pub struct GatewayCache {
    store: &'static TieredStore,
    bridge: &'static Bridge,
}

impl GatewayCache {
    /// A new, empty cache for one gateway.
    pub fn new() -> Self {
        Self::with_store(TieredStore::new())
    }

    /// A cache over `store` (e.g. one whose local entries are capped for a shared tier).
    pub fn with_store(store: TieredStore) -> Self {
        let store: &'static TieredStore = Box::leak(Box::new(store));
        let bridge: &'static Bridge = Box::leak(Box::new(Bridge { store }));
        Self { store, bridge }
    }

    /// The store (for the KV policies, invalidation and configuration).
    pub fn store(&self) -> &'static TieredStore {
        self.store
    }

    /// The `Storage` to pass to `HttpCache::enable`.
    pub fn storage(&self) -> &'static (dyn Storage + Sync) {
        self.bridge
    }
}

impl Default for GatewayCache {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for GatewayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayCache")
    }
}

/// The cache lock to pass to `HttpCache::enable`: it collapses concurrent misses for one key
/// into one upstream request and is what makes stale-while-revalidate possible.
pub fn lock() -> &'static CacheKeyLockImpl {
    &**LOCK
}

/// Lock options: how long a waiter waits for the request that is filling the entry before it
/// goes to the target itself.
pub fn overrides(wait_timeout: Duration) -> CacheOptionOverrides {
    let mut o = CacheOptionOverrides::default();
    o.wait_timeout = Some(wait_timeout);
    o
}

/// What the bridge needs to know about a key beyond its hash, carried from the proxy to the
/// `Storage` calls in the key's extensions: the built key (its prefix hashes are computed only
/// when needed: on a miss, to store them, and on lookups once the stage has purges).
#[derive(Debug, Clone)]
struct KeyInfo {
    built: Arc<BuiltKey>,
    opts: LookupOptions,
    /// When the request looked the key up: a body fetched for it can be no newer, so an
    /// invalidation after this moment must cover it (see `BufferingMiss`).
    requested: SystemTime,
}

/// How a request's entry is looked up and stored.
#[derive(Debug, Clone, Copy, Default)]
pub struct LookupOptions {
    /// The stage has purge records, so lookups must check the key's prefixes.
    pub check_purges: bool,
    /// A lookup slower than this is a miss (ResponseCache `<CacheLookupTimeoutInSeconds>`; the
    /// shared tier's own deadline applies too).
    pub deadline: Option<Duration>,
    /// The entry is sealed in the shared tier.
    pub encrypted: bool,
    /// The stored entry replaces the current one on every instance (an authorized refresh).
    pub replaces: bool,
    /// Only the local tier is asked: the proxy's fast path asked both tiers for this request a
    /// moment before and found nothing (see [`fresh_hit`]).
    pub local_only: bool,
}

/// The pingora cache key for an entry of `stage` whose framed key hashes to `key`.
pub fn cache_key(
    stage: &str,
    key: StoreKey,
    built: Arc<BuiltKey>,
    opts: LookupOptions,
) -> CacheKey {
    let mut k = CacheKey::new(Vec::new(), stage);
    k.set_primary_bin_override(key.0);
    k.extensions.insert(KeyInfo {
        built,
        opts,
        requested: SystemTime::now(),
    });
    k
}

/// Which tier served a hit (for the `tier` metrics label).
pub fn hit_tier(hit: &HitHandler) -> Option<Tier> {
    hit.as_any().downcast_ref::<BodyHit>().map(|h| h.tier)
}

/// The store key pingora uses for `key` (primary plus Vary variance).
pub fn store_key(key: &CacheKey) -> StoreKey {
    StoreKey(key.combined_bin())
}

fn compact_store_key(key: &CompactCacheKey) -> StoreKey {
    StoreKey(key.combined_bin())
}

/// Metadata of a cached response: pingora's two serialized parts, length-prefixed.
fn encode_meta(meta: &CacheMeta) -> Result<Bytes> {
    let (internal, header) = meta.serialize()?;
    let len = u32::try_from(internal.len())
        .map_err(|_| Error::explain(ErrorType::InternalError, "cache meta too large"))?;
    let mut out = BytesMut::with_capacity(4 + internal.len() + header.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&internal);
    out.extend_from_slice(&header);
    Ok(out.freeze())
}

/// Bytes to reserve for a body about to be buffered: its `Content-Length` when it has one (up
/// to 1 MiB; larger bodies grow as they arrive), so the stored body carries no slack.
fn expected_body_len(meta: &CacheMeta) -> usize {
    crate::util::content_length(meta.headers()).map_or(0, |n| n.min(1 << 20) as usize)
}

/// The buffered body as stored: a body that grew in steps (no `Content-Length`) can hold up to
/// twice its length in capacity, which the tier would keep for the entry's lifetime; it is
/// copied into an exact allocation when the slack is over an eighth.
fn exact(body: BytesMut) -> Bytes {
    if body.capacity() - body.len() > body.len() / 8 {
        Bytes::copy_from_slice(&body)
    } else {
        body.freeze()
    }
}

fn decode_meta(bytes: &[u8]) -> Option<CacheMeta> {
    let len_bytes: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    let len = usize::try_from(u32::from_be_bytes(len_bytes)).ok()?;
    let internal = bytes.get(4..4usize.checked_add(len)?)?;
    let header = bytes.get(4 + len..)?;
    CacheMeta::deserialize(internal, header).ok()
}

/// The variance of a request for a stored response that has `Vary`: the values of the request
/// headers it names. Entries of different variance are different variants (pingora-cache looks
/// the right one up). `None` when the response does not vary.
pub fn variance(meta: &CacheMeta, req: &pingora::http::RequestHeader) -> Option<HashBinary> {
    let mut names: Vec<String> = meta
        .headers()
        .get_all(http::header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return None;
    }
    names.sort();
    names.dedup();
    let values: Vec<(String, Vec<u8>)> = names
        .into_iter()
        .map(|n| {
            let mut v = Vec::new();
            for (i, value) in req.headers.get_all(n.as_str()).iter().enumerate() {
                if i > 0 {
                    v.extend_from_slice(b", ");
                }
                v.extend_from_slice(value.as_bytes());
            }
            (n, v)
        })
        .collect();
    let mut builder = VarianceBuilder::new();
    for (n, v) in &values {
        builder.add_value(n, v);
    }
    builder.finalize()
}

/// A minimum lifetime in the store, carried in the meta's (unpersisted) extensions from the
/// proxy's store decision to the miss handler.
#[derive(Debug, Clone, Copy)]
struct KeepUntil(SystemTime);

/// Asks the store to keep the entry until `t` even if it is no longer fresh (so it can be
/// revalidated with the target instead of fetched again).
pub fn keep_until(meta: &mut CacheMeta, t: SystemTime) {
    meta.extensions_mut().insert(KeepUntil(t));
}

/// The parts of a decoded `CacheMeta` from which an identical one can be rebuilt without
/// decompressing and parsing the stored header again (pingora's header serialisation is zstd:
/// decoding it was a fifth of the instructions of a cache hit).
struct MetaParts {
    fresh_until: SystemTime,
    created: SystemTime,
    /// What the entry's age counts from, when not its creation: a response that was already
    /// old when it arrived (RFC 9111 §4.2.3).
    epoch: Option<SystemTime>,
    stale_while_revalidate_sec: u32,
    stale_if_error_sec: u32,
    header: pingora::http::ResponseHeader,
    /// `header` as the fast path answers with it (HTTP/1.1, `Accept-Ranges: bytes`), built
    /// once: only a `200` with a `Content-Length` has one (see [`fresh_hit`]). A hit then
    /// costs one header copy and the `Age` line, not a `CacheMeta` rebuilt, copied again and
    /// dropped, plus the `Accept-Ranges` line: 62.4k -> 58.7k instructions per hit (callgrind,
    /// 2,000 keep-alive hits). The price is a second header copy held by entries that were hit.
    answer: Option<pingora::http::ResponseHeader>,
}

impl MetaParts {
    /// Only for metadata `CacheMeta::new` reproduces exactly: never revalidated (`updated` =
    /// `created`), no Vary variance, default provenance (an epoch override is carried). Anything
    /// else keeps taking the full decoding path.
    fn of(meta: &CacheMeta) -> Option<Self> {
        let plain = meta.updated() == meta.created()
            && meta.variance().is_none()
            && meta.provenance() == meta.created();
        plain.then(|| Self {
            fresh_until: meta.fresh_until(),
            created: meta.created(),
            epoch: meta.epoch_override(),
            stale_while_revalidate_sec: meta.stale_while_revalidate_sec(),
            stale_if_error_sec: meta.stale_if_error_sec(),
            header: meta.response_header().clone(),
            answer: fast_answer(meta.response_header()),
        })
    }

    /// The fast path's header at `now` and the end of the fresh window, when still fresh and
    /// answerable (see [`fresh_hit`]).
    fn answer_at(&self, now: SystemTime) -> Option<(pingora::http::ResponseHeader, SystemTime)> {
        if self.fresh_until < now {
            return None;
        }
        let mut header = self.answer.clone()?;
        // A plain entry was never revalidated: its age counts from its creation, or from the
        // earlier moment its initial age puts it at.
        let age = now
            .duration_since(self.epoch.unwrap_or(self.created))
            .unwrap_or_default();
        header
            .insert_header(http::header::AGE, age.as_secs())
            .ok()?;
        Some((header, self.fresh_until))
    }

    fn build(&self) -> CacheMeta {
        let mut meta = CacheMeta::new(
            self.fresh_until,
            self.created,
            self.stale_while_revalidate_sec,
            self.stale_if_error_sec,
            self.header.clone(),
        );
        if let Some(epoch) = self.epoch {
            meta.set_epoch_override(epoch);
        }
        meta
    }
}

/// What a previous hit left in the entry's decoded slot.
fn meta_parts(entry: &Entry) -> Option<&MetaParts> {
    entry.decoded.get()?.downcast_ref::<MetaParts>()
}

/// The entry's metadata from its decoded slot, when a previous hit left it there.
fn cached_meta(entry: &Entry) -> Option<CacheMeta> {
    meta_parts(entry).map(MetaParts::build)
}

/// Decodes the entry's metadata and leaves the parts in its slot for the next hit.
fn decode_and_remember(entry: &Entry) -> Option<CacheMeta> {
    let meta = decode_meta(&entry.meta)?;
    if let Some(parts) = MetaParts::of(&meta) {
        entry.decoded.set(Arc::new(parts));
    }
    Some(meta)
}

/// When an entry stops being useful: the end of its fresh window plus the longer stale window,
/// or the keep time asked for, whichever is later.
fn expires_at(meta: &CacheMeta) -> SystemTime {
    let stale = meta
        .stale_while_revalidate_sec()
        .max(meta.stale_if_error_sec());
    let end = meta.fresh_until() + Duration::from_secs(u64::from(stale));
    match meta.extensions().get::<KeepUntil>() {
        Some(KeepUntil(keep)) if *keep > end => *keep,
        _ => end,
    }
}

/// The hashes a purge of this key may be recorded under: exact invalidations under the primary
/// key, prefix purges under the key's prefixes.
fn purge_candidates(key: &CacheKey) -> Vec<[u8; 16]> {
    match key.extensions.get::<KeyInfo>() {
        Some(info) => {
            let mut p = info.built.prefix_hashes();
            p.push(key.primary_bin());
            p
        }
        None => vec![key.primary_bin()],
    }
}

/// A fresh entry the proxy can answer with directly (see [`fresh_hit`]).
pub struct FreshHit {
    /// The header exactly as pingora's hit path sends it before the proxy's response filter:
    /// the stored header as HTTP/1.1, with `Age` and `Accept-Ranges: bytes`.
    pub header: pingora::http::ResponseHeader,
    /// The stored body.
    pub body: Bytes,
    /// The end of the entry's fresh window (for `Cache-Status`).
    pub fresh_until: SystemTime,
    /// The tier that held it.
    pub tier: Tier,
}

/// What [`fresh_hit`] found.
// Returned once per request and matched at once: a box would cost an allocation per hit.
#[allow(clippy::large_enum_variant)]
pub enum FastLookup {
    /// A fresh entry the proxy can answer with itself.
    Hit(FreshHit),
    /// Neither tier has the key (or the lookup timed out): a miss. The key has been marked so
    /// that pingora's own lookup only asks the local tier again (see [`LookupOptions`]).
    Absent,
    /// An entry only pingora's cache path can serve (stale, varied, not a `200` with a length,
    /// unreadable): it looks the key up again and decides.
    Other,
}

/// The entry for `key` when it can be served without pingora's cache state machine: found by
/// the same lookup as [`Storage::lookup`] (local tier, then the shared tier; purge-checked),
/// fresh at `now` (no stale serving, no revalidation), without Vary variants, a `200` with a
/// `Content-Length`. The request itself must not be conditional, ranged, or carry cache
/// directives (the caller checks): those are pingora's to answer.
pub async fn fresh_hit(cache: &GatewayCache, key: &mut CacheKey, now: SystemTime) -> FastLookup {
    let Some((entry, tier)) = find(cache.store, key).await else {
        // The shared tier was asked just now: pingora's lookup, a moment later, need not ask
        // it again (a second round trip per miss). The local tier still is (this instance's
        // own fill may land in between).
        if let Some(info) = key.extensions.get_mut::<KeyInfo>() {
            info.opts.local_only = true;
        }
        return FastLookup::Absent;
    };
    match servable(&entry, now) {
        Some((header, fresh_until)) => FastLookup::Hit(FreshHit {
            header,
            body: entry.body.clone(),
            fresh_until,
            tier,
        }),
        None => FastLookup::Other,
    }
}

/// The header to answer `entry` with at `now`, and the end of its fresh window, when it is
/// fresh, unvaried, and a `200` with a `Content-Length` (see [`fresh_hit`]).
fn servable(entry: &Entry, now: SystemTime) -> Option<(pingora::http::ResponseHeader, SystemTime)> {
    if let Some(p) = meta_parts(entry) {
        return p.answer_at(now);
    }
    let meta = decode_and_remember(entry)?;
    if let Some(p) = meta_parts(entry) {
        return p.answer_at(now);
    }
    // Metadata the slot does not hold (revalidated, varied): decoded on every hit.
    if !meta.is_fresh(now) || meta.variance().is_some() {
        return None;
    }
    let mut header = fast_answer(meta.response_header())?;
    header
        .insert_header(http::header::AGE, meta.age().as_secs())
        .ok()?;
    Some((header, meta.fresh_until()))
}

/// `stored` as pingora's hit path sends it before the `Age` line, when the fast path may send
/// it: pingora adds `Accept-Ranges` to a `200` whose length it can parse, and frames a body
/// without one as chunked; only the first case is taken here.
fn fast_answer(stored: &pingora::http::ResponseHeader) -> Option<pingora::http::ResponseHeader> {
    if stored.status != http::StatusCode::OK
        || crate::util::content_length(&stored.headers).is_none()
    {
        return None;
    }
    let mut header = stored.clone();
    header.set_version(http::Version::HTTP_11);
    header
        .insert_header(http::header::ACCEPT_RANGES, "bytes")
        .ok()?;
    Some(header)
}

/// Looks `key` up as its options say: the local tier, then (unless `local_only`) the shared
/// tier within the lookup deadline; purge-checked. Shared by [`Storage::lookup`] and
/// [`fresh_hit`], so both paths see exactly the same entries.
async fn find(store: &TieredStore, key: &CacheKey) -> Option<(Arc<Entry>, Tier)> {
    let sk = store_key(key);
    let opts = key
        .extensions
        .get::<KeyInfo>()
        .map(|i| i.opts)
        .unwrap_or_default();
    let all = || purge_candidates(key);
    if opts.local_only {
        // With every prefix, as the re-check after a shared-tier miss does.
        return store
            .get_checked(&key.user_tag, &sk, &all())
            .map(|e| (e, Tier::Local));
    }
    let local: Vec<[u8; 16]> = if opts.check_purges { all() } else { Vec::new() };
    let found = store.get_tiered(
        &key.user_tag,
        &sk,
        &local,
        all,
        opts.deadline,
        opts.encrypted,
    );
    match opts.deadline {
        // `<CacheLookupTimeoutInSeconds>`: a lookup that takes longer is a miss.
        Some(d) => tokio::time::timeout(d, found).await.ok().flatten(),
        None => found.await,
    }
}

/// `Storage` over the tiered store.
struct Bridge {
    store: &'static TieredStore,
}

#[async_trait]
impl Storage for Bridge {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let found = find(self.store, key).await;
        let Some((entry, tier)) = found else {
            return Ok(None);
        };
        match cached_meta(&entry).or_else(|| decode_and_remember(&entry)) {
            Some(meta) => {
                let hit = BodyHit {
                    tier,
                    body: entry.body.clone(),
                    pos: 0,
                    end: entry.body.len(),
                };
                Ok(Some((meta, Box::new(hit))))
            }
            None => {
                // An entry we cannot read (a format from another version): drop it, miss.
                self.store.remove(&key.user_tag, &store_key(key));
                Ok(None)
            }
        }
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        Ok(Box::new(BufferingMiss {
            store: self.store,
            stage: key.user_tag.clone(),
            key: store_key(key),
            meta: encode_meta(meta)?,
            // Purge records compare against this: an invalidation that lands while the target
            // is still answering must cover the body it answers with (its response time is
            // after the invalidation, its content may be from before it).
            created: key
                .extensions
                .get::<KeyInfo>()
                .map_or(meta.created(), |i| i.requested.min(meta.created())),
            expires_at: expires_at(meta),
            body: BytesMut::with_capacity(expected_body_len(meta)),
            encrypted: key
                .extensions
                .get::<KeyInfo>()
                .is_some_and(|i| i.opts.encrypted),
            replaces: key
                .extensions
                .get::<KeyInfo>()
                .is_some_and(|i| i.opts.replaces),
            prefixes: key
                .extensions
                .get::<KeyInfo>()
                .map_or_else(|| Arc::from([]), |i| Arc::from(i.built.prefix_hashes())),
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let key = target.key();
        Ok(
            if self.store.remove(&key.user_tag, &compact_store_key(key)) {
                PurgeOutcome::Purged(None)
            } else {
                PurgeOutcome::NotFound
            },
        )
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let encoded = encode_meta(meta)?;
        let expires = expires_at(meta);
        let encrypted = key
            .extensions
            .get::<KeyInfo>()
            .is_some_and(|info| info.opts.encrypted);
        Ok(self
            .store
            .update_tiered(&key.user_tag, &store_key(key), encrypted, |old| Entry {
                meta: encoded.clone(),
                body: old.body.clone(),
                created: old.created,
                expires_at: expires,
                prefixes: Arc::clone(&old.prefixes),
                decoded: Default::default(),
            }))
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// Serves a whole cached body; seekable so range requests are answered from the cache.
struct BodyHit {
    tier: Tier,
    body: Bytes,
    pos: usize,
    end: usize,
}

#[async_trait]
impl HandleHit for BodyHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let chunk = self.body.slice(self.pos..self.end);
        self.pos = self.end;
        Ok(Some(chunk))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.body.len();
        let end = end.map_or(len, |e| e.min(len));
        if start > end {
            return Error::e_explain(ErrorType::InternalError, "seek start past the end");
        }
        self.pos = start;
        self.end = end;
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

/// Buffers a response body and stores it whole when the response completed. An aborted
/// response never reaches `finish`, so a partial body is never stored.
struct BufferingMiss {
    store: &'static TieredStore,
    stage: String,
    key: StoreKey,
    meta: Bytes,
    created: SystemTime,
    expires_at: SystemTime,
    body: BytesMut,
    prefixes: Arc<[[u8; 16]]>,
    encrypted: bool,
    replaces: bool,
}

#[async_trait]
impl HandleMiss for BufferingMiss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        self.body.extend_from_slice(&data);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let size = self.body.len();
        let entry = Entry {
            meta: self.meta,
            body: exact(self.body),
            created: self.created,
            expires_at: self.expires_at,
            prefixes: self.prefixes,
            decoded: Default::default(),
        };
        let entry = Arc::new(entry);
        if self.replaces {
            self.store
                .put_replacing(&self.stage, self.key, entry, self.encrypted);
        } else {
            self.store
                .put_tiered(&self.stage, self.key, entry, self.encrypted);
        }
        Ok(MissFinishType::Created(size))
    }
}

#[cfg(test)]
#[path = "pingora_bridge_tests.rs"]
mod tests;
