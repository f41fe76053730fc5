//! The `logging` hook: request, latency and cache metrics, counted once per client request.

use pingora::proxy::Session;
use pingora::Error;

use super::caching::Outcome;
use super::{Ctx, Gateway};
use crate::cache::pingora_bridge::CachePhase;
use crate::metrics::{method_label, status_class, METRICS};

/// Records the metrics of a finished request.
pub(super) fn record(gw: &Gateway, session: &Session, e: Option<&Error>, ctx: &Ctx) {
    // A background revalidation re-runs every hook with its own context: count the
    // client's request once, not the refresh.
    if session.subrequest_ctx.is_some() {
        return;
    }
    super::access_log::write(gw, session, ctx);
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let stage = ctx.stage_label();
    let method = method_label(session.req_header().method.as_str());
    METRICS
        .requests
        .with_label_values(&[stage, method, status_class(status)])
        .inc();
    let outcome = ctx.outcome.map_or("none", Outcome::label);
    METRICS
        .request_duration
        .with_label_values(&[stage, outcome])
        .observe(ctx.started.elapsed().as_secs_f64());
    let (Some(plan), Some(o)) = (&ctx.plan, ctx.outcome) else {
        return;
    };
    let policy = plan.policy_label();
    // A miss consulted every configured tier; a hit says which one served it.
    let tier = match (o, ctx.tier) {
        (Outcome::Hit | Outcome::Stale, Some(t)) => t.as_str(),
        _ if gw.cache.store().has_shared() => "shared",
        _ => "local",
    };
    let labels = [stage, ctx.state.resource.as_str(), method, policy, tier];
    match o {
        Outcome::Hit => METRICS.cache_hits.with_label_values(&labels).inc(),
        Outcome::Stale => {
            METRICS.cache_hits.with_label_values(&labels).inc();
            let reason = if session.cache.phase() == CachePhase::StaleUpdating {
                "revalidate"
            } else {
                "error"
            };
            METRICS
                .cache_stale
                .with_label_values(&[stage, ctx.state.resource.as_str(), policy, reason])
                .inc();
        }
        Outcome::Miss | Outcome::Refresh => METRICS.cache_misses.with_label_values(&labels).inc(),
        Outcome::Bypass => {}
    }
    // Stored only if pingora kept the cache enabled to the end (a body over the size limit
    // that had no Content-Length disables it while streaming).
    let still_caching = !matches!(session.cache.phase(), CachePhase::Disabled(_));
    if e.is_none()
        && still_caching
        && matches!(ctx.store, Some(Ok(_)))
        && matches!(o, Outcome::Miss | Outcome::Refresh)
    {
        METRICS
            .cache_stores
            .with_label_values(&[stage, policy])
            .inc();
    }
}
