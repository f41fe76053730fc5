//! Fresh local-tier hits answered straight from `request_filter`.
//!
//! pingora-cache's hit path (lookup through boxed futures, a hit handler, the conditional and
//! range filters, header copies, its state machine's bookkeeping) roughly halved the requests per
//! second of a bare Pingora answer in `make bench`. The common hit — a plain `GET` whose entry
//! is fresh in this instance's memory — needs none of it: it is written here, with the same
//! headers, metrics and purge checks. Every other request (conditional, ranged, with cache
//! directives, `HEAD`, a stale or varied entry, a shared-tier hit, response steps to run) takes
//! pingora's path unchanged.

use http::header;
use pingora::http::RequestHeader;

use crate::cache::decide::CachePlan;
use crate::config::runtime::{Flow, Stage};

/// Request headers that make a hit pingora's business: validators and ranges (304/206),
/// and request cache directives (RFC 9111 `no-cache`, `max-age`, client invalidation).
const DEFERRED: [header::HeaderName; 8] = [
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
    header::RANGE,
    header::CACHE_CONTROL,
    header::PRAGMA,
];

/// Whether this request may be answered by [`crate::cache::pingora_bridge::fresh_local_hit`]:
/// a bodiless `GET` without [`DEFERRED`] headers, a plain lookup (no refresh, no warning to
/// add), on a path whose response steps do nothing (only ResponseCache or disabled policies).
pub(super) fn eligible(
    req: &RequestHeader,
    stage: &Stage,
    flow: Option<&Flow>,
    plan: &CachePlan,
    has_body: bool,
    plain: bool,
) -> bool {
    req.method == http::Method::GET
        && plain
        && !has_body
        && !plan.skip_lookup
        && !DEFERRED.iter().any(|h| req.headers.contains_key(h))
        && response_steps_inert(stage, flow)
}

/// No response step would run: every one names a ResponseCache (which acts on the request side
/// and through the store) or a disabled policy.
fn response_steps_inert(stage: &Stage, flow: Option<&Flow>) -> bool {
    let flow_steps = flow.map(|f| f.steps.response.as_slice()).unwrap_or(&[]);
    stage
        .preflow
        .response
        .iter()
        .chain(flow_steps)
        .chain(&stage.postflow.response)
        .all(|s| {
            stage
                .step_policies
                .get(&s.policy)
                .is_none_or(|p| !p.enabled())
        })
}
