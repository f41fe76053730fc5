//! The proxy side of http-mode (RFC 9111) stage caching's request semantics: request
//! directives on hits and misses (`engine::request_directives`) and invalidation after unsafe
//! methods (`engine::unsafe_methods`). Each hook calls one function here.

use std::time::SystemTime;

use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use super::{respond, Ctx, Gateway};
use crate::cache::pingora_bridge::{CacheMeta, CachePhase, ForcedFreshness, NoCacheReason};
use crate::engine::plan::Reject;
use crate::engine::request_directives::{self as directives, EntryState, HitVerdict};
use crate::engine::{unsafe_methods, Env};
use crate::metrics::METRICS;
use crate::runtime::stage::{CacheMode, Stage};
use crate::runtime::ttl;

/// The stage, when this request's cache use follows RFC 9111 request directives: http-mode
/// stage caching (no ResponseCache policy planned) that does not ignore them.
fn honouring(ctx: &Ctx) -> Option<&Stage> {
    let stage = ctx.stage.as_deref()?;
    let c = &stage.cache;
    let standard = c.enabled && c.mode == CacheMode::Http && !c.ignore_request_directives;
    (standard && ctx.plan.as_ref().is_none_or(|p| p.policy.is_none())).then_some(stage)
}

/// `cache_hit_filter` for http mode: `no-cache`, `max-age`, `min-fresh` force a revalidation
/// (Pingora then sends the stored validators under the cache lock, so concurrent clients share
/// one conditional request, and a 304 refreshes the entry for everyone); `max-stale` may serve
/// a stale entry. `None` leaves the entry to its freshness.
pub(super) fn hit_freshness(
    session: &Session,
    meta: &CacheMeta,
    ctx: &Ctx,
) -> Option<ForcedFreshness> {
    let stage = honouring(ctx)?;
    let d = directives::parse(&session.req_header().headers);
    if !d.any() {
        return None;
    }
    let now = SystemTime::now();
    let arrived = now.checked_sub(ctx.started.elapsed()).unwrap_or(now);
    let fresh_left = match meta.fresh_until().duration_since(now) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    let cc = ttl::cache_control(meta.headers());
    let entry = EntryState {
        age: meta.age().as_secs(),
        fresh_left,
        validated_since_arrival: meta.updated() >= arrived,
        // `s-maxage` implies `proxy-revalidate` for a shared cache (RFC 9111 §5.2.2.10).
        may_serve_stale: !(cc.must_revalidate || cc.no_cache || cc.s_maxage.is_some()),
    };
    match directives::on_hit(&d, &entry) {
        HitVerdict::AsIs => None,
        HitVerdict::Revalidate => {
            if session.subrequest_ctx.is_none() {
                METRICS
                    .cache_invalidations
                    .with_label_values(&[stage.name.as_str(), "client", "revalidate"])
                    .inc();
            }
            Some(ForcedFreshness::ForceExpired)
        }
        HitVerdict::ServeStale => Some(ForcedFreshness::ForceFresh),
    }
}

impl Gateway {
    /// `proxy_upstream_filter` for http mode: `only-if-cached` with nothing usable stored is
    /// answered 504 and never reaches the target (RFC 9111 §5.2.1.7). `Ok(true)` when answered.
    pub(super) async fn only_if_cached(&self, session: &mut Session, ctx: &Ctx) -> Result<bool> {
        // A background revalidation carries its client's request: it must still go.
        if session.subrequest_ctx.is_some() || honouring(ctx).is_none() {
            return Ok(false);
        }
        if !directives::parse(&session.req_header().headers).only_if_cached {
            return Ok(false);
        }
        let body = bytes::Bytes::from_static(
            br#"{"error":"gateway_timeout","message":"only-if-cached: no stored response"}"#,
        );
        respond::bytes(session, 504, body).await?;
        Ok(true)
    }

    /// `response_filter` for http mode, before anything else reads the response: a request's
    /// `no-store` keeps its response out of the cache (it may still have been answered from
    /// it); a non-error response to an unsafe method invalidates its target and same-origin
    /// `Location`/`Content-Location` (`engine::unsafe_methods`).
    pub(super) fn http_response(
        &self,
        session: &mut Session,
        resp: &ResponseHeader,
        ctx: &mut Ctx,
    ) {
        let phase = session.cache.phase();
        // Not for a background refresh, which carries its client's request but stores for all.
        if matches!(phase, CachePhase::Miss | CachePhase::Expired)
            && session.subrequest_ctx.is_none()
            && honouring(ctx).is_some()
            && directives::parse(&session.req_header().headers).no_store
        {
            session
                .cache
                .disable(NoCacheReason::Custom("request_no_store"));
            ctx.store = Some(Err(Reject::NoStore));
        }
        let from_target = !matches!(
            phase,
            CachePhase::Hit
                | CachePhase::Stale
                | CachePhase::StaleUpdating
                | CachePhase::Revalidated
                | CachePhase::RevalidatedNoCache(_)
        );
        let (Some(stage), Some(snapshot)) = (ctx.stage.as_deref(), ctx.snapshot.as_deref()) else {
            return;
        };
        if !from_target || stage.cache.mode != CacheMode::Http {
            return;
        }
        let env = Env {
            config: &snapshot.config,
            stage,
            client_ip: &ctx.client_ip,
            request_body: ctx.request_body.view(),
        };
        unsafe_methods::after_response(
            env,
            self.cache.store(),
            session.req_header(),
            &ctx.state,
            resp.status.as_u16(),
            &resp.headers,
        );
    }
}
