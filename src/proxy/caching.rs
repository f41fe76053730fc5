//! The cache side of the proxy hooks: turning decisions (`cache::decide`) into pingora-cache
//! calls, `X-Cache` / `Cache-Status` headers and metrics.

use std::time::{Duration, SystemTime};

use pingora::http::ResponseHeader;
use pingora::Result;

use crate::cache::pingora_bridge::{self as bridge, CacheMeta, CachePhase, NoCacheReason};
use crate::engine::plan::{Bypass, CachePlan, Freshness, Reject};

/// What the client is told about the cache (`X-Cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served from the cache while fresh (or after a 304 from the target).
    Hit,
    /// Fetched from the target.
    Miss,
    /// A stale entry was served (while refreshing, or because the target failed).
    Stale,
    /// The lookup was skipped on purpose and the entry re-populated.
    Refresh,
    /// The cache was not used.
    Bypass,
}

impl Outcome {
    /// `X-Cache` value.
    pub fn header(self) -> &'static str {
        match self {
            Outcome::Hit => "HIT",
            Outcome::Miss => "MISS",
            Outcome::Stale => "STALE",
            Outcome::Refresh => "REFRESH",
            Outcome::Bypass => "BYPASS",
        }
    }

    /// Metrics label value.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Stale => "stale",
            Outcome::Refresh => "refresh",
            Outcome::Bypass => "bypass",
        }
    }
}

/// Maps pingora's cache phase (at response time) to the outcome. `decided` is true when the
/// response went through the store decision: pingora then reports a response it declined to
/// store as "disabled", but for the client it was a miss.
pub fn outcome(phase: CachePhase, plan: Option<&CachePlan>, decided: bool) -> Outcome {
    let Some(plan) = plan else {
        return Outcome::Bypass;
    };
    let fetched = if plan.skip_lookup {
        Outcome::Refresh
    } else {
        Outcome::Miss
    };
    match phase {
        CachePhase::Disabled(_) if decided => fetched,
        // Waited on another request's fetch that could not be shared (it timed out or was not
        // cacheable): this request went to the target itself.
        CachePhase::Disabled(
            NoCacheReason::CacheLockTimeout
            | NoCacheReason::CacheLockGiveUp
            | NoCacheReason::CacheLockRetryLimit,
        ) => fetched,
        CachePhase::RevalidatedNoCache(_) => Outcome::Hit,
        CachePhase::Hit | CachePhase::Revalidated => Outcome::Hit,
        CachePhase::Stale | CachePhase::StaleUpdating => Outcome::Stale,
        CachePhase::Miss | CachePhase::Expired => {
            if plan.skip_lookup {
                Outcome::Refresh
            } else {
                Outcome::Miss
            }
        }
        CachePhase::Disabled(_)
        | CachePhase::Bypass
        | CachePhase::Uninit
        | CachePhase::CacheKey => Outcome::Bypass,
    }
}

/// `Cache-Status` of a fresh hit whose window ends at `fresh_until`.
pub fn hit_status(fresh_until: SystemTime, now: SystemTime) -> String {
    format!("cachegate; hit; ttl={}", ttl_secs(fresh_until, now))
}

/// Seconds left in a fresh window (negative once past it), as `Cache-Status` reports them.
fn ttl_secs(fresh_until: SystemTime, now: SystemTime) -> i64 {
    match fresh_until.duration_since(now) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// The RFC 9211 `Cache-Status` value.
pub fn cache_status(
    phase: CachePhase,
    outcome: Outcome,
    meta: Option<&CacheMeta>,
    store: Option<&std::result::Result<Freshness, Reject>>,
    bypass: Option<Bypass>,
    now: SystemTime,
) -> String {
    let ttl = |m: &CacheMeta| ttl_secs(m.fresh_until(), now);
    let stored = match store {
        Some(Ok(_)) => "; stored".to_owned(),
        Some(Err(r)) => format!("; detail={}", r.as_str()),
        None => String::new(),
    };
    match outcome {
        Outcome::Hit
            if matches!(
                phase,
                CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_)
            ) =>
        {
            "cachegate; fwd=stale; fwd-status=304".to_owned()
        }
        Outcome::Hit => match meta {
            Some(m) => hit_status(m.fresh_until(), now),
            None => "cachegate; hit".to_owned(),
        },
        Outcome::Stale => {
            let why = if phase == CachePhase::StaleUpdating {
                "stale-while-revalidate"
            } else {
                "stale-if-error"
            };
            match meta {
                Some(m) => format!("cachegate; hit; ttl={}; detail={why}", ttl(m)),
                None => format!("cachegate; hit; detail={why}"),
            }
        }
        Outcome::Miss if phase == CachePhase::Expired => format!("cachegate; fwd=stale{stored}"),
        Outcome::Miss => match phase {
            CachePhase::Disabled(
                r @ (NoCacheReason::CacheLockTimeout
                | NoCacheReason::CacheLockGiveUp
                | NoCacheReason::CacheLockRetryLimit),
            ) => {
                format!("cachegate; fwd=uri-miss; detail={}", lock_detail(r))
            }
            _ => format!("cachegate; fwd=uri-miss{stored}"),
        },
        Outcome::Refresh => format!("cachegate; fwd=request{stored}"),
        Outcome::Bypass => format!(
            "cachegate; fwd=bypass; detail={}",
            bypass.map_or("off", Bypass::as_str)
        ),
    }
}

fn lock_detail(r: NoCacheReason) -> &'static str {
    match r {
        NoCacheReason::CacheLockTimeout => "lock-timeout",
        NoCacheReason::CacheLockRetryLimit => "lock-retry-limit",
        _ => "lock-give-up",
    }
}

/// Adds a weak `ETag` to a cacheable 200 that has none, so clients can revalidate against the
/// cache. Done on the upstream response, so the stored copy and the first client see the same.
pub fn synthesize_etag(resp: &mut ResponseHeader, plan: &CachePlan) -> Result<()> {
    if resp.status.as_u16() != 200 || resp.headers.contains_key(http::header::ETAG) {
        return Ok(());
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let hex = plan.store_key.to_hex();
    let tag = format!(
        "W/\"{}-{:x}\"",
        hex.get(..12).unwrap_or(&hex),
        now & 0xffff_ffff_ffff
    );
    resp.insert_header(http::header::ETAG, tag)
}

/// Builds the metadata of a response being stored: freshness and stale windows, and how long
/// the store must keep it (a `no-cache` entry stays for revalidation although never fresh).
pub fn cache_meta(resp: &ResponseHeader, f: &Freshness) -> CacheMeta {
    let now = SystemTime::now();
    let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    let mut header = resp.clone();
    // Even when a stage stores responses with Set-Cookie, the cookie itself is never replayed
    // to other clients.
    header.remove_header(&http::header::SET_COOKIE);
    // A hit's `Age` is computed from the meta (below); a stored one would otherwise be sent
    // after a revalidation, when pingora adds none.
    header.remove_header(&http::header::AGE);
    for name in &f.not_stored {
        header.remove_header(name);
    }
    let mut meta = CacheMeta::new(
        now + f.ttl,
        now,
        secs(f.stale_while_revalidate),
        secs(f.stale_if_error),
        header,
    );
    if !f.keep.is_zero() {
        bridge::keep_until(&mut meta, now + f.keep);
    }
    // RFC 9111 §4.2.3: the entry was already `initial_age` old on arrival, so its age (and
    // pingora's `Age` on every hit) counts from that much earlier. Freshness was computed net of
    // it, so `fresh_until` is unchanged.
    if !f.initial_age.is_zero() {
        meta.set_epoch_override(now.checked_sub(f.initial_age).unwrap_or(now));
    }
    meta
}
