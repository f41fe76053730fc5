//! `prepare`: what a request means — its resource, flow, request steps, cache plan and client
//! invalidation — decided in one place for the proxy, the admin API and `explain`.
//!
//! The proxy calls [`route`] when the request arrives and [`prepare`] before the cache lookup,
//! then only acts on the answer (Pingora glue). The admin API calls the same two functions
//! with [`Mode::DryRun`] to find the entry a request would be served from, so it builds the key
//! the proxy built: same HEAD→GET, same Host, same steps.

use std::sync::Arc;

use pingora::http::RequestHeader;

use crate::cache::store::TieredStore;
use crate::engine::client_invalidation::{self, Decision};
use crate::engine::facts::{resource_path, RequestFacts};
use crate::engine::plan::{self, Bypass, CachePlan};
use crate::engine::state::{Env, Mode, RequestState};
use crate::engine::steps::Fault;
use crate::engine::walk;
use crate::runtime::stage::{RuntimeConfig, Stage};

/// A request's stage and the path below its base path.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The matched stage.
    pub stage: Arc<Stage>,
    /// The path below the base path as received (may be empty: the base path itself).
    pub suffix: String,
}

/// The stage whose base path `path` is under (`path` is already normalised: no dot segments).
pub fn route(config: &RuntimeConfig, path: &str) -> Option<Routed> {
    config.route(path).map(|(stage, suffix)| Routed {
        stage: Arc::clone(stage),
        suffix: suffix.to_owned(),
    })
}

/// Everything decided about a request before the cache lookup.
#[derive(Debug)]
pub struct Prepared {
    /// Where the request matched and what its steps set.
    pub state: RequestState,
    /// How the request uses the cache, or why it does not.
    pub cache: Result<CachePlan, Bypass>,
    /// A client invalidation request (`Cache-Control: max-age=0`) and what it gets.
    pub invalidation: Decision,
    /// A request step that failed without `continueOnError`: the request is answered with it.
    pub fault: Option<Fault>,
    /// The request announces a body (read from the facts the plan was made from).
    pub has_body: bool,
}

impl Prepared {
    /// An authorized client invalidation: the entry is refetched and replaced.
    pub fn refresh(&self) -> bool {
        matches!(self.invalidation, Decision::Refresh { .. })
    }
}

/// Decides what `req` means: matches its resource and flow, runs the request steps (which may
/// change `req` and set variables), plans its cache use and checks a client invalidation.
///
/// `req` is the request as it will be forwarded; on a client invalidation its `Authorization`
/// (the gateway's token) is removed.
pub async fn prepare(
    env: Env<'_>,
    store: &TieredStore,
    req: &mut RequestHeader,
    suffix: &str,
    mode: Mode,
) -> Prepared {
    let stage = env.stage;
    let mut state = RequestState::new(suffix.to_owned());
    let rpath = resource_path(suffix);
    let resource = stage.resource_for(rpath);
    state.path_params = resource
        .and_then(|r| r.captures(rpath))
        .map(|c| {
            c.into_iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    state.resource = resource.map(|r| r.as_str().to_owned()).unwrap_or_default();

    // Request steps (LookupCache, PopulateCache, InvalidateCache, AssignMessage) run before
    // the cache lookup, so what they set can be part of the key — up to the ResponseCache
    // step that looks the response up; the rest runs on a miss (`walk::resume`).
    let attached = match walk::walk(
        env,
        store,
        req,
        &mut state,
        mode,
        walk::Until::ResponseCache,
    )
    .await
    {
        Ok(rc) => rc,
        Err(fault) => return faulted(state, fault),
    };
    if state.resource.is_empty() {
        state.resource = "other".to_owned();
    }

    let (cache, invalidation, invalidation_request, has_body) = {
        let params = state.params();
        let vars = env.vars(req, &state, &params, None);
        // AWS token flow for aws mode and policies; RFC 9111 request directives in http mode.
        let facts = if client_invalidation::token_flow(stage, attached.is_some()) {
            RequestFacts::of(req, &state.suffix)
        } else {
            RequestFacts::of_standard(req, &state.suffix)
        };
        let invalidation_request = facts.invalidation_request;
        let cache = plan::plan(stage, attached, &facts, &vars);
        // A client asking to invalidate its entry (AWS `Cache-Control: max-age=0`) is checked
        // against the stage's grants.
        let invalidation = match &cache {
            Ok(_) if invalidation_request => client_invalidation::decide(
                &stage.cache.invalidation,
                &req.headers,
                facts.method,
                facts.suffix,
            ),
            _ => Decision::None,
        };
        (cache, invalidation, invalidation_request, facts.has_body)
    };
    let mut prepared = Prepared {
        state,
        cache,
        invalidation,
        fault: None,
        has_body,
    };
    if let Ok(plan) = prepared.cache.as_mut() {
        if invalidation_request {
            req.remove_header(&http::header::AUTHORIZATION);
        }
        if matches!(prepared.invalidation, Decision::Refresh { .. }) {
            plan.skip_lookup = true;
        }
        if let Some(p) = &plan.policy {
            let prefix = format!("responsecache.{}.", p.common.name);
            let vars = &mut prepared.state.vars;
            vars.insert(format!("{prefix}cachekey"), plan.key.readable.clone());
            vars.insert(
                format!("{prefix}cachename"),
                p.common.cache_resource.clone().unwrap_or_default(),
            );
            vars.insert(format!("{prefix}cachehit"), "false".to_owned());
            vars.insert(format!("{prefix}invalidentry"), "false".to_owned());
        }
    }
    prepared
}

/// A request whose step failed: it is answered with the fault, nothing is cached.
fn faulted(state: RequestState, fault: Fault) -> Prepared {
    Prepared {
        state,
        cache: Err(Bypass::Off),
        invalidation: Decision::None,
        fault: Some(fault),
        has_body: false,
    }
}
