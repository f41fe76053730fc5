//! The request side of a request's steps, walked in Apigee's order, with the point where it
//! stopped kept so the rest can run later.
//!
//! Apigee runs the ProxyEndpoint's PreFlow, then picks the first conditional Flow whose
//! condition holds (so a flow condition sees what PreFlow set), runs it and the PostFlow, then
//! evaluates the RouteRules and runs the chosen TargetEndpoint's PreFlow, Flow and PostFlow the
//! same way. A ResponseCache step looks the response up *where it is attached*: its key is
//! built from the variables at that point, and on a hit the rest of the request path is skipped.
//! So the walk stops at the first ResponseCache step that applies ([`Cursor`] remembers where),
//! the cache is asked, and only a miss (or an uncacheable request) runs the rest
//! ([`resume`], from the proxy's `proxy_upstream_filter`).

use std::sync::Arc;

use pingora::http::RequestHeader;

use crate::cache::store::TieredStore;
use crate::engine::message::RequestMessage;
use crate::engine::state::{Cursor, Env, Mode, RequestState, Segment};
use crate::engine::steps::{self, Fault, Ran, StepContext};
use crate::runtime::flow::assign::MessageTarget;
use crate::runtime::policy::ResponseCachePolicy;
use crate::runtime::stage::{Endpoint, RouteTo, Stage, Step, StepPolicy};

/// How far to walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Stop at the first ResponseCache step that applies (enabled, condition true).
    ResponseCache,
    /// Run every remaining step (ResponseCache steps are passed: the lookup was made).
    End,
}

/// The request steps of `seg` for the request's selection, and whether the segment exists.
fn segment_steps<'s>(stage: &'s Stage, state: &RequestState, seg: Segment) -> &'s [Step] {
    let side = |e: &'s Endpoint, seg: Segment, flow: Option<usize>| -> &'s [Step] {
        match seg {
            Segment::ProxyPre | Segment::TargetPre => &e.preflow.request,
            Segment::ProxyPost | Segment::TargetPost => &e.postflow.request,
            _ => flow
                .and_then(|i| e.flows.get(i))
                .map_or(&[][..], |f| &f.steps.request),
        }
    };
    match seg {
        Segment::ProxyPre | Segment::ProxyFlow | Segment::ProxyPost => {
            side(&stage.proxy, seg, state.sel.flow)
        }
        Segment::TargetPre | Segment::TargetFlow | Segment::TargetPost => state
            .sel
            .target
            .and_then(|t| stage.targets.get(t))
            .map_or(&[][..], |t| side(&t.endpoint, seg, state.sel.target_flow)),
        Segment::Route | Segment::Done => &[],
    }
}

fn next(seg: Segment) -> Segment {
    match seg {
        Segment::ProxyPre => Segment::ProxyFlow,
        Segment::ProxyFlow => Segment::ProxyPost,
        Segment::ProxyPost => Segment::Route,
        Segment::Route => Segment::TargetPre,
        Segment::TargetPre => Segment::TargetFlow,
        Segment::TargetFlow => Segment::TargetPost,
        Segment::TargetPost | Segment::Done => Segment::Done,
    }
}

/// Makes the choice a segment starts with: the ProxyEndpoint flow, the route, the
/// TargetEndpoint flow. Conditions see every variable set so far.
fn enter(env: Env<'_>, req: &RequestHeader, state: &mut RequestState, seg: Segment) {
    let stage = env.stage;
    let params = state.params();
    let vars = env.vars(req, state, &params, None);
    match seg {
        Segment::ProxyFlow => {
            let flow = stage.proxy.select_flow(&vars);
            drop(params);
            state.sel.flow = flow;
            if state.resource.is_empty() {
                state.resource = state
                    .flow(stage)
                    .map_or_else(|| "other".to_owned(), |f| f.name.clone());
            }
        }
        Segment::Route => {
            let route = stage.select_route(&vars);
            drop(params);
            state.sel.route = route;
            state.sel.target = route
                .and_then(|r| stage.routes.get(r))
                .and_then(|r| match r.to {
                    RouteTo::Endpoint(i) => Some(i),
                    RouteTo::Url(_) | RouteTo::Null => None,
                });
        }
        Segment::TargetFlow => {
            let flow = state
                .sel
                .target
                .and_then(|t| stage.targets.get(t))
                .and_then(|t| t.endpoint.select_flow(&vars));
            drop(params);
            state.sel.target_flow = flow;
        }
        _ => {}
    }
}

/// Walks the request steps from `state.cursor`. Returns the ResponseCache the walk stopped at
/// (with [`Until::ResponseCache`]), or `None` when every step has run.
pub async fn walk(
    env: Env<'_>,
    store: &TieredStore,
    req: &mut RequestHeader,
    state: &mut RequestState,
    mode: Mode,
    until: Until,
) -> Result<Option<Arc<ResponseCachePolicy>>, Fault> {
    let stage = env.stage;
    loop {
        let cursor = state.cursor;
        if cursor.done() {
            return Ok(None);
        }
        if cursor.i == 0 && cursor.seg != Segment::ProxyPre {
            enter(env, req, state, cursor.seg);
        }
        let Some(step) = segment_steps(stage, state, cursor.seg).get(cursor.i) else {
            state.cursor = Cursor {
                seg: next(cursor.seg),
                i: 0,
            };
            continue;
        };
        state.cursor.i += 1;
        if let Some(rc) = stage.response_caches.get(&step.policy) {
            if until == Until::ResponseCache && rc.common.enabled && holds(env, req, state, step) {
                return Ok(Some(Arc::clone(rc)));
            }
            continue;
        }
        // The TTL rule reads the method and resource as the earlier steps left them.
        let cx = StepContext {
            stage,
            store,
            stage_ttl: env.stage_ttl(req, state),
            dry_run: mode == Mode::DryRun,
        };
        let result = run_request_step(env, &cx, req, state, step);
        let (pass, lookup) = steps::after(step, result)?;
        state.cursor.i += pass;
        if let Some(lookup) = lookup {
            for (k, v) in lookup.finish(&stage.name, store).await {
                state.vars.insert(k, v);
            }
        }
    }
}

/// Whether a step's condition holds (no condition: always).
fn holds(env: Env<'_>, req: &RequestHeader, state: &RequestState, step: &Step) -> bool {
    let params = state.params();
    let vars = crate::engine::plan::KeyVars(&env.vars(req, state, &params, None));
    step.condition.as_ref().is_none_or(|c| c.eval(&vars))
}

/// Runs the request steps a ResponseCache lookup left for a miss: the rest of the request path,
/// the RouteRules and the TargetEndpoint's request steps.
pub async fn resume(
    env: Env<'_>,
    store: &TieredStore,
    req: &mut RequestHeader,
    state: &mut RequestState,
) -> Result<(), Fault> {
    walk(env, store, req, state, Mode::Run, Until::End)
        .await
        .map(|_| ())
}

/// Runs one request step; `Err` when it failed without `continueOnError`.
fn run_request_step(
    env: Env<'_>,
    cx: &StepContext<'_>,
    req: &mut RequestHeader,
    state: &mut RequestState,
    step: &Step,
) -> Result<Ran, Fault> {
    let Some(policy) = steps::enabled_policy(env.stage, step) else {
        return Ok(Ran::Skipped);
    };
    let params = state.params();
    let vars = env.vars(req, state, &params, None);
    if step.condition.as_ref().is_some_and(|c| !c.eval(&vars)) {
        return Ok(Ran::Skipped);
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
        return Ok(Ran::Done(None));
    };
    if let Some((header, suffix)) = changed {
        *req = header;
        if let Some(s) = suffix {
            state.suffix = s;
        }
    }
    steps::apply(&mut state.vars, &mut fx);
    Ok(Ran::Done(fx.lookup.take()))
}
