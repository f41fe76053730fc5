//! Unit tests of `pingora_bridge.rs` (kept apart so the module itself stays short).

use super::*;
use crate::runtime::key::KeySpec;
use pingora::http::ResponseHeader;

const STAGE: &str = "t-bridge-fast";

fn cache() -> GatewayCache {
    let cache = GatewayCache::new();
    cache.store().configure(&[(
        STAGE.to_owned(),
        1 << 20,
        crate::cache::purge::SHORT_ENTRY_LIFETIME,
    )]);
    cache
}

fn key(n: u8) -> CacheKey {
    let built = KeySpec::aws_default(STAGE, &[]).build(&std::collections::HashMap::new());
    cache_key(
        STAGE,
        StoreKey([n; 16]),
        Arc::new(built),
        LookupOptions::default(),
    )
}

/// Stores a response with `status`, `Content-Length` when `length`, fresh for `fresh_secs`
/// (negative: already stale), as the miss handler would.
fn store(cache: &GatewayCache, key: &CacheKey, status: u16, length: bool, fresh_secs: i64) {
    let now = SystemTime::now();
    let fresh_until = if fresh_secs >= 0 {
        now + Duration::from_secs(fresh_secs as u64)
    } else {
        now - Duration::from_secs(fresh_secs.unsigned_abs())
    };
    let mut header = ResponseHeader::build(status, None).unwrap();
    if length {
        header.insert_header("content-length", "5").unwrap();
    }
    let meta = CacheMeta::new(fresh_until, now - Duration::from_secs(3), 60, 60, header);
    let entry = Entry {
        meta: encode_meta(&meta).unwrap(),
        body: Bytes::from_static(b"hello"),
        created: now,
        expires_at: expires_at(&meta),
        prefixes: Arc::from(Vec::new()),
        decoded: Default::default(),
    };
    cache.store().put(STAGE, store_key(key), Arc::new(entry));
}

/// What the fast path makes of `key` now, and whether pingora's lookup was then limited
/// to the local tier.
fn fast(c: &GatewayCache, key: &CacheKey) -> (FastLookup, bool) {
    let mut key = key.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let found = rt.block_on(fresh_hit(c, &mut key, SystemTime::now()));
    (
        found,
        key.extensions.get::<KeyInfo>().unwrap().opts.local_only,
    )
}

fn is_other(c: &GatewayCache, key: &CacheKey) -> bool {
    matches!(fast(c, key), (FastLookup::Other, false))
}

#[test]
fn a_fresh_200_is_served_with_pingoras_hit_headers() {
    let c = cache();
    let k = key(1);
    store(&c, &k, 200, true, 60);
    let (FastLookup::Hit(hit), false) = fast(&c, &k) else {
        panic!("a fresh hit")
    };
    assert_eq!(hit.body, Bytes::from_static(b"hello"));
    assert_eq!(hit.tier, Tier::Local);
    assert_eq!(hit.header.status, 200);
    assert_eq!(hit.header.version, http::Version::HTTP_11);
    assert_eq!(hit.header.headers["accept-ranges"], "bytes");
    let age: u64 = hit.header.headers["age"].to_str().unwrap().parse().unwrap();
    assert!((3..=4).contains(&age), "age {age}");
    // The next hit answers from the parts the first one left in the entry's slot: the
    // same header, line for line.
    let (FastLookup::Hit(again), false) = fast(&c, &k) else {
        panic!("a fresh hit from the decoded slot")
    };
    assert_eq!(again.fresh_until, hit.fresh_until);
    assert_eq!(again.header.version, http::Version::HTTP_11);
    let lines = |h: &pingora::http::ResponseHeader| {
        let mut v: Vec<(String, String)> = h
            .headers
            .iter()
            .filter(|(n, _)| *n != "age")
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(lines(&again.header), lines(&hit.header));
    let again_age: u64 = again.header.headers["age"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3..=4).contains(&again_age), "age {again_age}");
}

#[test]
fn everything_else_is_left_to_pingora() {
    let c = cache();
    // Stale (within its stale windows: pingora decides whether to serve it).
    store(&c, &key(2), 200, true, -1);
    assert!(is_other(&c, &key(2)));
    // Not a 200, or no length to frame it with.
    store(&c, &key(3), 404, true, 60);
    assert!(is_other(&c, &key(3)));
    store(&c, &key(4), 200, false, 60);
    assert!(is_other(&c, &key(4)));
    // The same, a second time (from what the first lookup left in the entry's slot).
    for k in 2..=4 {
        assert!(is_other(&c, &key(k)), "key {k}");
    }
    // Invalidated: absent.
    store(&c, &key(5), 200, true, 60);
    assert!(matches!(fast(&c, &key(5)), (FastLookup::Hit(_), false)));
    c.store().invalidate_exact(STAGE, &store_key(&key(5)));
    assert!(matches!(fast(&c, &key(5)), (FastLookup::Absent, true)));
    // Flushed after it was stored.
    store(&c, &key(6), 200, true, 60);
    c.store().flush(STAGE);
    assert!(matches!(fast(&c, &key(6)), (FastLookup::Absent, true)));
    // Absent.
    assert!(matches!(fast(&c, &key(7)), (FastLookup::Absent, true)));
}

/// After the fast path found nothing, pingora's lookup asks the local tier only — and
/// still finds what this instance stored in between.
#[test]
fn a_local_only_lookup_still_sees_the_local_tier() {
    let c = cache();
    let (FastLookup::Absent, true) = fast(&c, &key(8)) else {
        panic!("absent")
    };
    let mut k = key(8);
    k.extensions.get_mut::<KeyInfo>().unwrap().opts.local_only = true;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(rt.block_on(find(c.store, &k)).is_none());
    store(&c, &k, 200, true, 60);
    let (_, tier) = rt.block_on(find(c.store, &k)).expect("stored meanwhile");
    assert_eq!(tier, Tier::Local);
}
