//! `prepare`: what a request means — its resource, flow, request steps, cache plan and client
//! invalidation — decided in one place for the proxy, the admin API and `explain`.
//!
//! The proxy calls [`route`] when the request arrives and [`prepare`] before the cache lookup,
//! then only acts on the answer (Pingora glue). The admin API calls the same two functions
//! with [`Mode::DryRun`] to find the entry a request would be served from, so it builds the key
//! the proxy built: same HEAD→GET, same Host, same steps.

use std::collections::HashMap;
use std::sync::Arc;

use pingora::http::{RequestHeader, ResponseHeader};

use crate::cache::store::TieredStore;
use crate::engine::client_invalidation::{self, Decision};
use crate::engine::facts::{cache_method, resource_path, RequestFacts};
use crate::engine::message::RequestMessage;
use crate::engine::plan::{self, Bypass, CachePlan};
use crate::engine::steps::{self, Fault, PendingLookup, StepContext};
use crate::runtime::flow::assign::MessageTarget;
use crate::runtime::flow::vars::RequestVars;
use crate::runtime::stage::{Flow, RuntimeConfig, Selection, Side, Stage, Step, StepPolicy};

/// Whether a request's steps act on the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Serving the request: PopulateCache stores and InvalidateCache purges.
    Run,
    /// Asking what the request means (admin API, `explain`): every decision is made and
    /// LookupCache reads, but nothing is stored or purged.
    DryRun,
}

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

/// What a request has gathered so far: where it matched, and the variables its steps set.
#[derive(Debug, Default)]
pub struct RequestState {
    /// The path below the base path (AssignMessage `<Set><Path>` may change it).
    pub suffix: String,
    /// Metrics label of the matched resource template (or flow), never the raw path.
    pub resource: String,
    /// Path parameters bound by the matched resource template.
    pub path_params: Vec<(String, String)>,
    /// The flows and route the request selected.
    pub sel: Selection,
    /// Variables set by policies during this request.
    pub vars: HashMap<String, String>,
    /// `messageid`, made when first read.
    pub message_id: std::sync::OnceLock<String>,
}

impl RequestState {
    /// The state of a request just routed.
    pub fn new(suffix: String) -> Self {
        Self {
            suffix,
            ..Self::default()
        }
    }

    /// The bound path parameters, borrowed in the shape `RequestVars` takes.
    pub fn params(&self) -> Vec<(&str, &str)> {
        self.path_params
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    /// The matched ProxyEndpoint flow.
    pub fn flow<'s>(&self, stage: &'s Stage) -> Option<&'s Flow> {
        self.sel.flow.and_then(|i| stage.proxy.flows.get(i))
    }
}

/// What does not change while a request is decided: the configuration, the stage, the client.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    /// The configuration snapshot the request started with.
    pub config: &'a RuntimeConfig,
    /// The request's stage.
    pub stage: &'a Stage,
    /// The client's address (`client.ip`).
    pub client_ip: &'a str,
}

impl<'a> Env<'a> {
    /// The flow variables of a request (and of its response, once there is one).
    pub fn vars<'b>(
        &self,
        req: &'b RequestHeader,
        state: &'b RequestState,
        params: &'b [(&'b str, &'b str)],
        response: Option<&'b ResponseHeader>,
    ) -> RequestVars<'b>
    where
        'a: 'b,
    {
        let uri = &req.uri;
        RequestVars {
            method: req.method.as_str(),
            uri: uri.path_and_query().map_or("/", |pq| pq.as_str()),
            path: uri.path(),
            query: uri.query().unwrap_or(""),
            headers: &req.headers,
            base_path: &self.stage.base_path,
            path_suffix: &state.suffix,
            path_params: params,
            client_ip: self.client_ip,
            stage: &self.stage.name,
            organization: &self.config.gateway.organization,
            api_name: &self.stage.api_name,
            revision: self.stage.revision,
            flow: state.flow(self.stage).map(|f| f.name.as_str()),
            response_status: response.map(|r| r.status.as_u16()),
            response_headers: response.map(|r| &r.headers),
            custom: &state.vars,
            message_id: &state.message_id,
        }
    }

    /// The stage TTL for this request's method and resource (see `plan::ttl_for`).
    pub fn stage_ttl(&self, req: &RequestHeader, state: &RequestState) -> u64 {
        let cache = &self.stage.cache;
        cache
            .override_ttl(
                cache_method(req.method.as_str()),
                resource_path(&state.suffix),
            )
            .unwrap_or(cache.ttl_secs)
    }
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
    state.sel.flow = {
        let params = state.params();
        let vars = env.vars(req, &state, &params, None);
        stage.proxy.select_flow(&vars)
    };
    state.resource = match resource {
        Some(r) => r.as_str().to_owned(),
        None => state
            .flow(stage)
            .map_or_else(|| "other".to_owned(), |f| f.name.clone()),
    };

    // Request steps (LookupCache, PopulateCache, InvalidateCache, AssignMessage) run before
    // the cache lookup, so what they set can be part of the key: the ProxyEndpoint's, then
    // (RouteRules are evaluated after them, as in Apigee) the chosen TargetEndpoint's.
    let proxy_steps: Vec<&Step> = stage.proxy.steps(state.sel.flow, Side::Request).collect();
    if let Err(fault) = run_request_steps(env, store, req, &mut state, &proxy_steps, mode).await {
        return faulted(state, fault);
    }
    let (route, target_flow) = {
        let params = state.params();
        let vars = env.vars(req, &state, &params, None);
        let route = stage.select_route(&vars);
        let sel = Selection { route, ..state.sel };
        let target_flow = stage
            .target_endpoint(&sel)
            .and_then(|t| t.endpoint.select_flow(&vars));
        (route, target_flow)
    };
    state.sel.route = route;
    state.sel.target_flow = target_flow;
    if let Some(target) = stage.target_endpoint(&state.sel) {
        let target_steps: Vec<&Step> = target
            .endpoint
            .steps(state.sel.target_flow, Side::Request)
            .collect();
        if let Err(fault) =
            run_request_steps(env, store, req, &mut state, &target_steps, mode).await
        {
            return faulted(state, fault);
        }
    }
    let (cache, invalidation, invalidation_request, has_body) = {
        let params = state.params();
        let vars = env.vars(req, &state, &params, None);
        let facts = RequestFacts::of(req, &state.suffix);
        let invalidation_request = facts.invalidation_request;
        let cache = plan::plan(stage, &state.sel, &facts, &vars);
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

/// Runs request steps in order, awaiting LookupCache reads between them so later conditions
/// see their results; stops at the first that fails without `continueOnError`.
async fn run_request_steps(
    env: Env<'_>,
    store: &TieredStore,
    req: &mut RequestHeader,
    state: &mut RequestState,
    steps: &[&Step],
    mode: Mode,
) -> Result<(), Fault> {
    let stage = env.stage;
    for step in steps {
        // The TTL rule reads the method and resource as the earlier steps left them.
        let cx = StepContext {
            stage,
            store,
            stage_ttl: env.stage_ttl(req, state),
            dry_run: mode == Mode::DryRun,
        };
        if let Some(lookup) = run_request_step(env, &cx, req, state, step)? {
            for (k, v) in lookup.finish(&stage.name, store).await {
                state.vars.insert(k, v);
            }
        }
    }
    Ok(())
}

/// Runs one request step; `Err` when it failed without `continueOnError`.
fn run_request_step(
    env: Env<'_>,
    cx: &StepContext<'_>,
    req: &mut RequestHeader,
    state: &mut RequestState,
    step: &Step,
) -> Result<Option<PendingLookup>, Fault> {
    let Some(policy) = steps::enabled_policy(env.stage, step) else {
        return Ok(None);
    };
    let params = state.params();
    let vars = env.vars(req, state, &params, None);
    if step.condition.as_ref().is_some_and(|c| !c.eval(&vars)) {
        return Ok(None);
    }
    let changes_request = matches!(&**policy, StepPolicy::AssignMessage(p) if p.assign.target(MessageTarget::Request) == MessageTarget::Request);
    let (result, changed) = if changes_request {
        // The variables read the request being changed: change a copy, then swap it in.
        let mut header = req.clone();
        let mut msg = RequestMessage {
            header: &mut header,
            new_suffix: None,
            payload_ignored: false,
        };
        let r = steps::run(policy, cx, &vars, Some(&mut msg), MessageTarget::Request);
        if msg.payload_ignored {
            tracing::warn!(
                policy = policy.name(),
                "AssignMessage cannot change a request body; ignored."
            );
        }
        let suffix = msg.new_suffix.take();
        (r, Some((header, suffix)))
    } else {
        (
            steps::run(policy, cx, &vars, None, MessageTarget::Request),
            None,
        )
    };
    drop(params);
    let Some(mut fx) = steps::tolerate(policy, result)? else {
        return Ok(None);
    };
    if let Some((header, suffix)) = changed {
        *req = header;
        if let Some(s) = suffix {
            state.suffix = s;
        }
    }
    steps::apply(&mut state.vars, &mut fx);
    Ok(fx.lookup.take())
}
