//! What the store holds: an opaque metadata blob, a body, and when it may be dropped.

use std::time::SystemTime;

use bytes::Bytes;

/// The storage key type (defined with the key builder, which produces it).
pub use crate::runtime::key::StoreKey;

/// One cached object. Cloning is cheap (`Bytes`); the store keeps entries in an `Arc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Metadata owned by the writer (the pingora bridge stores the serialized `CacheMeta`;
    /// the KV policies store a small header). The store does not interpret it.
    pub meta: Bytes,
    /// The body (or the cached value, for LookupCache/PopulateCache).
    pub body: Bytes,
    /// When the entry was written.
    pub created: SystemTime,
    /// After this instant the entry is useless (fresh window + stale windows): the store drops
    /// it by then at the latest.
    pub expires_at: SystemTime,
    /// Hashes of the key's prefixes (see `BuiltKey::prefix_hashes`), so an admin prefix purge
    /// can count and drop the local entries it covers. Empty when unknown.
    pub prefixes: std::sync::Arc<[[u8; 16]]>,
    /// A decoded form of `meta` the reader may cache (the bridge keeps pingora's parsed cache
    /// header here, so a hit does not decompress and re-parse it every time).
    pub decoded: DecodedSlot,
}

/// A write-once slot for a decoded form of an entry's metadata. Held inline (entries are
/// already behind an `Arc`; a separate allocation cost 48 bytes per entry): a clone copies what
/// was decoded so far. A new entry (new metadata) must get a new slot.
#[derive(Clone, Default)]
pub struct DecodedSlot(std::sync::OnceLock<std::sync::Arc<dyn std::any::Any + Send + Sync>>);

impl DecodedSlot {
    /// The decoded value, if a reader stored one.
    pub fn get(&self) -> Option<&(dyn std::any::Any + Send + Sync)> {
        self.0.get().map(|v| &**v)
    }

    /// Stores the decoded value (the first one wins).
    pub fn set(&self, value: std::sync::Arc<dyn std::any::Any + Send + Sync>) {
        let _ = self.0.set(value);
    }
}

impl PartialEq for DecodedSlot {
    /// A cache of `meta`, which is compared itself: never a difference of its own.
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for DecodedSlot {}

impl std::fmt::Debug for DecodedSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "DecodedSlot(set)"
        } else {
            "DecodedSlot(empty)"
        })
    }
}

impl Entry {
    /// Bytes the entry costs in the local tier (key + meta + body), saturating at `u32::MAX`
    /// (moka's weigher type).
    pub fn weight(&self) -> u32 {
        let total = 16usize
            .saturating_add(self.meta.len())
            .saturating_add(self.body.len())
            .saturating_add(self.prefixes.len().saturating_mul(16));
        u32::try_from(total).unwrap_or(u32::MAX)
    }
}

/// Which tier served an entry (the `tier` metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// This instance's in-memory tier.
    Local,
    /// The shared (Redis) tier.
    Shared,
}

impl Tier {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Local => "local",
            Tier::Shared => "shared",
        }
    }
}
