//! Fresh hits answered straight from `request_filter`.
//!
//! pingora-cache's hit path (lookup through boxed futures, a hit handler, the conditional and
//! range filters, header copies, its state machine's bookkeeping) roughly halved the requests per
//! second of a bare Pingora answer in `make bench`. The common hit — a plain `GET` whose entry
//! is fresh in this instance's memory or in the shared tier — needs none of it: it is written
//! here, after the same (purge-checked) lookup, with the same headers and metrics. Every other
//! request (conditional, ranged, with cache directives, `HEAD`, a stale or varied entry,
//! response steps to run) takes pingora's path unchanged. On a miss the lookup is not repeated
//! in full: pingora's lookup then asks only the local tier again (see
//! `pingora_bridge::fresh_hit`).

use std::time::SystemTime;

use http::header;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::Result;

use super::caching::{self, Outcome};
use super::{Ctx, Gateway};
use crate::cache::pingora_bridge::{self as bridge, FastLookup, FreshHit};
use crate::engine::state::Cursor;
use crate::runtime::stage::{Selection, Stage};

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

impl Gateway {
    /// Answers a fresh local-tier hit itself, with the headers, variables and metrics pingora's
    /// hit path and `response_filter` would give it. `Ok(false)`: pingora's cache path must run.
    pub(super) async fn answer_fresh_hit(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        stage: &Stage,
        sel: &Selection,
        has_body: bool,
    ) -> Result<bool> {
        let Some(plan) = ctx.plan.as_ref() else {
            return Ok(false);
        };
        // A background revalidation runs these hooks too: it must reach the target (and
        // release the cache lock it holds), whatever another request stored meanwhile.
        let plain = !ctx.refresh && ctx.warning.is_none() && session.subrequest_ctx.is_none();
        // The response path chooses its flows again once every request step has run (§4.2):
        // choose them now as it will — a hit the lane may answer runs no step in between.
        let mut sel = *sel;
        if let Some(snapshot) = ctx.snapshot.clone() {
            let params = ctx.state.params();
            let vars =
                ctx.env(stage, &snapshot)
                    .vars(session.req_header(), &ctx.state, &params, None);
            sel.flow = stage.proxy.select_flow(&vars);
            sel.target_flow = stage
                .target_endpoint(&sel)
                .and_then(|t| t.endpoint.select_flow(&vars));
        }
        let sel = &sel;
        if !eligible(
            session.req_header(),
            stage,
            HitPath {
                sel,
                cursor: ctx.state.cursor,
                policy: plan.policy.as_ref().map(|p| p.common.name.as_str()),
            },
            plan.skip_lookup,
            has_body,
            plain,
        ) {
            return Ok(false);
        }
        let now = SystemTime::now();
        let mut key = self.lookup_key(plan, ctx.refresh);
        let FreshHit {
            mut header,
            body,
            fresh_until,
            tier,
        } = match bridge::fresh_hit(&self.cache, &mut key, now).await {
            FastLookup::Hit(hit) => hit,
            FastLookup::Absent | FastLookup::Other => {
                // pingora's lookup uses this key (built once, and marked when both tiers were
                // just asked).
                ctx.cache_key = Some(key);
                return Ok(false);
            }
        };
        header.insert_header("x-cache", Outcome::Hit.header())?;
        header.insert_header("cache-status", caching::hit_status(fresh_until, now))?;
        if let Some(p) = &plan.policy {
            ctx.state.vars.insert(
                format!("responsecache.{}.cachehit", p.common.name),
                "true".to_owned(),
            );
        }
        ctx.outcome = Some(Outcome::Hit);
        ctx.tier = Some(tier);
        // Failures here are the client's (gone, or not reading): marked as such, as pingora's
        // hit path does, so they are not answered or logged as a gateway error.
        session
            .write_response_header(Box::new(header), false)
            .await
            .map_err(|e| e.into_down())?;
        session
            .write_response_body(Some(body), true)
            .await
            .map_err(|e| e.into_down())?;
        Ok(true)
    }
}

/// Whether this request may be answered by [`crate::cache::pingora_bridge::fresh_hit`]:
/// a bodiless `GET` without [`DEFERRED`] headers, a plain lookup (no refresh, no warning to
/// add), on a path whose response steps do nothing (only ResponseCache or disabled policies).
pub(super) fn eligible(
    req: &RequestHeader,
    stage: &Stage,
    path: HitPath<'_>,
    skip_lookup: bool,
    has_body: bool,
    plain: bool,
) -> bool {
    req.method == http::Method::GET
        && plain
        && !has_body
        && !skip_lookup
        && !DEFERRED.iter().any(|h| req.headers.contains_key(h))
        && response_steps_inert(stage, path.sel, path.cursor, path.policy)
}

/// Where a hit would resume: what the request selected, where its request steps stopped, and
/// the ResponseCache it looks up through (none for stage caching).
#[derive(Clone, Copy)]
pub(super) struct HitPath<'a> {
    /// The request's selection.
    pub sel: &'a Selection,
    /// Where the request steps stopped.
    pub cursor: Cursor,
    /// The ResponseCache, if any.
    pub policy: Option<&'a str>,
}

/// No response step would run: every one names a ResponseCache (which acts on the request side
/// and through the store) or a disabled policy. A hit through a ResponseCache runs only the
/// steps after its response attachment.
fn response_steps_inert(
    stage: &Stage,
    sel: &Selection,
    cursor: Cursor,
    policy: Option<&str>,
) -> bool {
    crate::engine::response::hit_is_inert(stage, sel, cursor, policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> crate::config::RuntimeConfig {
        crate::config::load(std::path::Path::new("policies"))
            .config
            .expect("the shipped policies load")
    }

    /// Without a ResponseCache every request step has run (the walk stops only at one); with
    /// one, the walk stopped at its lookup in the PreFlow.
    fn path<'a>(sel: &'a Selection, policy: Option<&'a str>) -> HitPath<'a> {
        let cursor = match policy {
            None => Cursor {
                seg: crate::engine::state::Segment::Done,
                i: 0,
            },
            Some(_) => Cursor::default(),
        };
        HitPath {
            sel,
            cursor,
            policy,
        }
    }

    fn get(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/items/1", None).unwrap();
        for (n, v) in headers {
            req.insert_header(n.to_string(), *v).unwrap();
        }
        req
    }

    #[test]
    fn only_plain_bodiless_gets_without_deferred_headers() {
        let config = config();
        let dev = config.stage("dev").unwrap();
        let sel = Selection {
            route: Some(0),
            target: Some(0),
            ..Selection::default()
        };
        assert!(eligible(
            &get(&[]),
            dev,
            path(&sel, None),
            false,
            false,
            true
        ));
        assert!(eligible(
            &get(&[("accept", "application/json"), ("x-tenant", "a")]),
            dev,
            path(&sel, None),
            false,
            false,
            true
        ));
        for h in &DEFERRED {
            let req = get(&[(h.as_str(), "x")]);
            assert!(
                !eligible(&req, dev, path(&sel, None), false, false, true),
                "{h}"
            );
        }
        let mut head = get(&[]);
        head.set_method(http::Method::HEAD);
        assert!(!eligible(&head, dev, path(&sel, None), false, false, true));
        assert!(
            !eligible(&get(&[]), dev, path(&sel, None), true, false, true),
            "skip lookup"
        );
        assert!(
            !eligible(&get(&[]), dev, path(&sel, None), false, true, true),
            "body"
        );
        assert!(
            !eligible(&get(&[]), dev, path(&sel, None), false, false, false),
            "not plain"
        );
    }

    #[test]
    fn flows_with_response_steps_take_pingoras_path() {
        let config = config();
        let prod = config.stage("prod").unwrap();
        let flow = |name: &str| Selection {
            flow: prod.proxy.flows.iter().position(|f| f.name == name),
            route: Some(0),
            target: Some(0),
            target_flow: None,
        };
        // items-read runs PopulateCache and AssignMessage on the response (hits included).
        assert!(!eligible(
            &get(&[]),
            prod,
            path(&flow("items-read"), Some("ResponseCache-items")),
            false,
            false,
            true
        ));
        // items-write has request steps only; the ResponseCache steps act on the request side.
        assert!(eligible(
            &get(&[]),
            prod,
            path(&flow("items-write"), None),
            false,
            false,
            true
        ));
    }
}
