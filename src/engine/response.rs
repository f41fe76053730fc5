//! The response side of a request's steps: PreFlow, flow and PostFlow response steps, run for
//! hits and misses alike (Apigee runs the response flow on a cache hit too).

use std::time::Duration;

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};

use crate::cache::store::TieredStore;
use crate::engine::message::ResponseMessage;
use crate::engine::state::{Cursor, Segment};
use crate::engine::state::{Env, RequestState};
use crate::engine::steps::{self, Fault, FaultOrigin, Ran, StepContext};
use crate::runtime::flow::assign::MessageTarget;
use crate::runtime::key::BuiltKey;
use crate::runtime::stage::{Selection, Side, Stage, Step};

/// A PopulateCache whose source is the response body: store it once the body is complete.
#[derive(Debug)]
pub struct BodyPopulate {
    /// The policy.
    pub policy: String,
    /// Its key.
    pub key: BuiltKey,
    /// The entry's TTL.
    pub ttl: Duration,
}

/// What the response steps want done with the response beyond its header.
#[derive(Debug, Default)]
pub struct ResponseEffects {
    /// A PopulateCache waiting for the whole response body.
    pub populate: Option<BodyPopulate>,
    /// A body replacing the response's (AssignMessage `<Set><Payload>`).
    pub replacement: Option<Bytes>,
    /// A step failed without `continueOnError` (or raised), in the endpoint given: the
    /// response is to be the error flow's (`engine::fault`).
    pub fault: Option<(Fault, FaultOrigin)>,
}

/// The TargetEndpoint whose response steps hold ResponseCache `rc`'s attachment: where a hit
/// resumes when the request path was cut short at the lookup (no route was chosen).
fn attachment_target(stage: &Stage, rc: &str) -> Option<usize> {
    stage.targets.iter().position(|t| {
        let e = &t.endpoint;
        e.preflow
            .response
            .iter()
            .chain(e.flows.iter().flat_map(|f| &f.steps.response))
            .chain(&e.postflow.response)
            .any(|s| s.policy == rc)
    })
}

/// The response steps of a hit served through ResponseCache `rc`: Apigee resumes right after
/// the policy's response attachment, so the steps before it (and it) do not run. When `rc` is
/// not on the response path, every step runs.
fn after_attachment<'s>(steps: Vec<&'s Step>, rc: &str) -> Vec<&'s Step> {
    match steps.iter().position(|s| s.policy == rc) {
        Some(i) => steps[i + 1..].to_vec(),
        None => steps,
    }
}

/// Whether every step after the first one naming `rc` (every step, when none does) satisfies
/// `ok`: [`after_attachment`] without collecting, for the fast-hit check.
fn all_after<'s>(
    steps: impl Iterator<Item = &'s Step>,
    rc: &str,
    ok: impl Fn(&Step) -> bool,
) -> bool {
    let (mut seen, mut before, mut after) = (false, true, true);
    for s in steps {
        if seen {
            after &= ok(s);
        } else if s.policy == rc {
            seen = true;
        } else {
            before &= ok(s);
        }
    }
    after && (seen || before)
}

/// Whether a hit through `rc` runs no response step (every one after its attachment names a
/// ResponseCache or a disabled policy), counting every conditional flow of the TargetEndpoint
/// the hit resumes in — and of the ProxyEndpoint when the walk stopped before choosing one
/// (`cursor`) — since those flows are chosen when the response is there.
pub fn hit_is_inert(stage: &Stage, sel: &Selection, cursor: Cursor, rc: &str) -> bool {
    let inert = |s: &Step| crate::engine::steps::enabled_policy(stage, s).is_none();
    let open = cursor.seg == Segment::ProxyPre;
    let p = &stage.proxy;
    let proxy = p
        .preflow
        .response
        .iter()
        .chain(
            p.flows
                .iter()
                .enumerate()
                .filter(move |(i, _)| open || sel.flow == Some(*i))
                .flat_map(|(_, f)| &f.steps.response),
        )
        .chain(&p.postflow.response);
    match attachment_target(stage, rc).and_then(|t| stage.targets.get(t)) {
        Some(t) => {
            let e = &t.endpoint;
            let target = e
                .preflow
                .response
                .iter()
                .chain(e.flows.iter().flat_map(|f| &f.steps.response))
                .chain(&e.postflow.response);
            all_after(target.chain(proxy), rc, inert)
        }
        None => all_after(proxy, rc, inert),
    }
}

/// Runs the response steps on `resp`, awaiting LookupCache reads between steps so later
/// conditions see their results. Stops at the first step that fails without `continueOnError`.
/// `hit`: the response is a cache hit through this ResponseCache (see [`after_attachment`]).
pub async fn run_response_steps(
    env: Env<'_>,
    store: &TieredStore,
    req: &RequestHeader,
    resp: &mut ResponseHeader,
    state: &mut RequestState,
    hit: Option<&str>,
) -> ResponseEffects {
    let stage = env.stage;
    let mut out = ResponseEffects::default();
    if let Some(rc) = hit.filter(|_| !state.cursor.done()) {
        // The request path stopped at the lookup: the hit resumes in the TargetEndpoint where
        // the ResponseCache stores, with its flow chosen now.
        state.sel.target = attachment_target(stage, rc);
        let params = state.params();
        let vars = env.vars(req, state, &params, Some(resp));
        let flow = stage
            .target_endpoint(&state.sel)
            .and_then(|t| t.endpoint.select_flow(&vars));
        // Stopped in the ProxyEndpoint's PreFlow: its flow is chosen now too.
        let proxy_flow = if state.cursor.seg == Segment::ProxyPre {
            stage.proxy.select_flow(&vars)
        } else {
            state.sel.flow
        };
        drop(params);
        state.sel.target_flow = flow;
        state.sel.flow = proxy_flow;
    }
    let sel = state.sel;
    let all: Vec<&Step> = stage.steps(&sel, Side::Response).collect();
    // The TargetEndpoint's steps come first: a fault before `boundary` is the target's.
    let on_target = stage.target_endpoint(&sel).map_or(0, |t| {
        t.endpoint.steps(sel.target_flow, Side::Response).count()
    });
    let (steps, boundary) = match hit {
        Some(rc) => {
            let before = all.len();
            let rest = after_attachment(all, rc);
            let cut = before - rest.len();
            (rest, on_target.saturating_sub(cut))
        }
        None => (all, on_target),
    };
    let mut i = 0;
    while let Some(step) = steps.get(i) {
        i += 1;
        // The same TTL rule as on the request side, whether or not the request was cacheable
        // (read per step: nothing is computed for a response without steps).
        let cx = StepContext {
            stage,
            store,
            stage_ttl: env.stage_ttl(req, state),
            dry_run: false,
        };
        let result = run_response_step(env, &cx, req, resp, state, step, &mut out);
        match steps::after(step, result) {
            Ok((pass, lookup)) => {
                i += pass;
                if let Some(lookup) = lookup {
                    for (k, v) in lookup.finish(&stage.name, store).await {
                        state.vars.insert(k, v);
                    }
                }
            }
            Err(fault) => {
                let origin = match sel.target {
                    Some(t) if i <= boundary => FaultOrigin::Target(t),
                    _ => FaultOrigin::Proxy,
                };
                out.fault = Some((fault, origin));
                break;
            }
        }
    }
    out
}

/// Runs one response step; `Err` when it failed without `continueOnError`.
pub(super) fn run_response_step(
    env: Env<'_>,
    cx: &StepContext<'_>,
    req: &RequestHeader,
    resp: &mut ResponseHeader,
    state: &mut RequestState,
    step: &Step,
    out: &mut ResponseEffects,
) -> Result<Ran, Fault> {
    let Some(policy) = steps::enabled_policy(env.stage, step) else {
        return Ok(Ran::Skipped);
    };
    // The variables read a snapshot of the response as it is before this step.
    let before = resp.clone();
    let params = state.params();
    let vars = env.vars(req, state, &params, Some(&before));
    if step.condition.as_ref().is_some_and(|c| !c.eval(&vars)) {
        return Ok(Ran::Skipped);
    }
    let mut msg = ResponseMessage {
        header: resp,
        payload: None,
    };
    let result = steps::run(policy, cx, &vars, Some(&mut msg), MessageTarget::Response);
    let payload = msg.payload.take();
    drop(params);
    let Some(mut fx) = steps::tolerate(policy, result)? else {
        return Ok(Ran::Done(None));
    };
    if let Some((policy, key, ttl)) = fx.populate_from_body.take() {
        out.populate = Some(BodyPopulate { policy, key, ttl });
    }
    if let Some(p) = payload {
        out.replacement = Some(p);
    }
    steps::apply(&mut state.vars, &mut fx);
    Ok(Ran::Done(fx.lookup.take()))
}
