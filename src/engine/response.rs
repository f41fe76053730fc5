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
use crate::runtime::stage::{Endpoint, Selection, Stage, Step};

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

/// Whether every step after the first one naming `rc` (every step, when none does) satisfies
/// `ok`.
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

/// The response steps of an endpoint: of the flow `chosen` (`Some`), or of every conditional
/// flow (`None`: the flow is yet to be chosen).
fn response_steps(e: &Endpoint, chosen: Option<Option<usize>>) -> impl Iterator<Item = &Step> {
    e.preflow
        .response
        .iter()
        .chain(
            e.flows
                .iter()
                .enumerate()
                .filter(move |(i, _)| chosen.is_none_or(|c| c == Some(*i)))
                .flat_map(|(_, f)| &f.steps.response),
        )
        .chain(&e.postflow.response)
}

/// Whether a hit runs no response step: every step it could run names a ResponseCache or a
/// disabled policy — after the ResponseCache `rc`'s response attachment when the hit is
/// through one. The response path chooses its flows again (§4.2); with inert steps only the
/// response itself can make that choice differ from the request's, so every flow counts where
/// a flow condition reads the response (`Endpoint::flows_read_response`) or the flow is not
/// chosen yet, and the request's choice otherwise. The TargetEndpoint is the route's when the
/// request path was walked (`cursor` done), else the one where `rc` stores (its flow is chosen
/// on the response).
pub fn hit_is_inert(stage: &Stage, sel: &Selection, cursor: Cursor, rc: Option<&str>) -> bool {
    let inert = |s: &Step| crate::engine::steps::enabled_policy(stage, s).is_none();
    let walked = cursor.done();
    let target = match rc {
        Some(rc) if stopped_before_route(cursor) => attachment_target(stage, rc),
        _ => sel.target,
    };
    let chosen = |e: &Endpoint, flow: Option<usize>, known: bool| {
        (known && !e.flows_read_response).then_some(flow)
    };
    let target_steps = target
        .and_then(|t| stage.targets.get(t))
        .into_iter()
        .flat_map(|t| response_steps(&t.endpoint, chosen(&t.endpoint, sel.target_flow, walked)));
    let proxy_known = cursor.seg != Segment::ProxyPre;
    let steps = target_steps.chain(response_steps(
        &stage.proxy,
        chosen(&stage.proxy, sel.flow, proxy_known),
    ));
    match rc {
        Some(rc) => all_after(steps, rc, inert),
        None => steps.into_iter().all(inert),
    }
}

/// Whether the request path stopped before the RouteRules chose a target (a ResponseCache
/// lookup in the ProxyEndpoint's request steps).
fn stopped_before_route(cursor: Cursor) -> bool {
    matches!(
        cursor.seg,
        Segment::ProxyPre | Segment::ProxyFlow | Segment::ProxyPost | Segment::Route
    )
}

/// A part of the response path, in the order it runs (apigee-bundles.md §4.1, steps 11–17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    TargetPre,
    TargetFlow,
    TargetPost,
    ProxyPre,
    ProxyFlow,
    ProxyPost,
    Done,
}

impl Part {
    fn next(self) -> Part {
        match self {
            Part::TargetPre => Part::TargetFlow,
            Part::TargetFlow => Part::TargetPost,
            Part::TargetPost => Part::ProxyPre,
            Part::ProxyPre => Part::ProxyFlow,
            Part::ProxyFlow => Part::ProxyPost,
            Part::ProxyPost | Part::Done => Part::Done,
        }
    }

    const ALL: [Part; 6] = [
        Part::TargetPre,
        Part::TargetFlow,
        Part::TargetPost,
        Part::ProxyPre,
        Part::ProxyFlow,
        Part::ProxyPost,
    ];

    fn on_target(self) -> bool {
        matches!(self, Part::TargetPre | Part::TargetFlow | Part::TargetPost)
    }

    /// The endpoint this part belongs to, for the request's selection.
    fn endpoint<'s>(self, stage: &'s Stage, sel: &Selection) -> Option<&'s Endpoint> {
        if self.on_target() {
            stage.target_endpoint(sel).map(|t| &t.endpoint)
        } else {
            Some(&stage.proxy)
        }
    }

    /// The steps of this part, with the flow `flow` where it is a flow part.
    fn steps(self, e: &Endpoint, flow: Option<usize>) -> &[Step] {
        match self {
            Part::TargetPre | Part::ProxyPre => &e.preflow.response,
            Part::TargetPost | Part::ProxyPost => &e.postflow.response,
            Part::TargetFlow | Part::ProxyFlow => flow
                .and_then(|i| e.flows.get(i))
                .map_or(&[][..], |f| &f.steps.response),
            Part::Done => &[],
        }
    }

    /// The flow of this part in the request's selection.
    fn flow(self, sel: &Selection) -> Option<usize> {
        match self {
            Part::TargetFlow => sel.target_flow,
            Part::ProxyFlow => sel.flow,
            _ => None,
        }
    }

    fn set_flow(self, sel: &mut Selection, flow: Option<usize>) {
        match self {
            Part::TargetFlow => sel.target_flow = flow,
            Part::ProxyFlow => sel.flow = flow,
            _ => {}
        }
    }
}

/// Where a hit through ResponseCache `rc` resumes: right after its response attachment
/// (§4.3), with the flow that holds it chosen. `None` when `rc` is not on the response path
/// (every step runs).
fn resume_point(stage: &Stage, state: &mut RequestState, rc: &str) -> Option<(Part, usize)> {
    for part in Part::ALL {
        let Some(e) = part.endpoint(stage, &state.sel) else {
            continue;
        };
        match part {
            Part::TargetFlow | Part::ProxyFlow => {
                // The flow the request took, when it holds the attachment; else the first that
                // does (the same ResponseCache may be attached in several flows).
                let holds = |f: usize| {
                    e.flows
                        .get(f)
                        .and_then(|x| x.steps.response.iter().position(|s| s.policy == rc))
                };
                if let Some((f, i)) = part.flow(&state.sel).and_then(|f| holds(f).map(|i| (f, i))) {
                    part.set_flow(&mut state.sel, Some(f));
                    return Some((part, i + 1));
                }
                for (f, flow) in e.flows.iter().enumerate() {
                    if let Some(i) = flow.steps.response.iter().position(|s| s.policy == rc) {
                        part.set_flow(&mut state.sel, Some(f));
                        return Some((part, i + 1));
                    }
                }
            }
            _ => {
                if let Some(i) = part.steps(e, None).iter().position(|s| s.policy == rc) {
                    return Some((part, i + 1));
                }
            }
        }
    }
    None
}

/// Runs the response steps on `resp` part by part (TargetEndpoint PreFlow, Flow, PostFlow, then
/// the ProxyEndpoint's), awaiting LookupCache reads between steps so later conditions see their
/// results. Each conditional flow is chosen again when its part starts, with the response
/// there (apigee-bundles.md §4.2: the response part of a flow is chosen per direction). Stops at
/// the first step that fails without `continueOnError`, or raises. `hit`: the response is a
/// cache hit through this ResponseCache, and resumes after its response attachment (§4.3).
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
    if let Some(rc) = hit.filter(|_| stopped_before_route(state.cursor)) {
        // The request path stopped at the lookup before a route was chosen: the hit resumes in
        // the TargetEndpoint where the ResponseCache stores.
        state.sel.target = attachment_target(stage, rc);
    }
    let (mut part, mut i, mut entered) = match hit.and_then(|rc| resume_point(stage, state, rc)) {
        Some((part, i)) => (part, i, true),
        None => (Part::TargetPre, 0, false),
    };
    while part != Part::Done {
        if !entered {
            entered = true;
            if matches!(part, Part::TargetFlow | Part::ProxyFlow) {
                let params = state.params();
                let vars = env.vars(req, state, &params, Some(resp));
                let flow = part
                    .endpoint(stage, &state.sel)
                    .and_then(|e| e.select_flow(&vars));
                drop(params);
                part.set_flow(&mut state.sel, flow);
            }
        }
        let sel = state.sel;
        let Some(step) = part
            .endpoint(stage, &sel)
            .and_then(|e| part.steps(e, part.flow(&sel)).get(i))
        else {
            (part, i, entered) = (part.next(), 0, false);
            continue;
        };
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
                    Some(t) if part.on_target() => FaultOrigin::Target(t),
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

/// Runs the ProxyEndpoint's PostClientFlow after the response was sent (Apigee §4.1 step 20,
/// also after an error): its steps read the response as sent (`resp`); what they change on it
/// goes nowhere, and a failure is only logged — there is no one left to answer.
pub async fn run_post_client_flow(
    env: Env<'_>,
    store: &TieredStore,
    req: &RequestHeader,
    resp: &ResponseHeader,
    state: &mut RequestState,
) {
    let steps = &env.stage.proxy.post_client_flow;
    let mut resp = resp.clone();
    let mut out = ResponseEffects::default();
    let mut i = 0;
    while let Some(step) = steps.get(i) {
        i += 1;
        let cx = StepContext {
            stage: env.stage,
            store,
            stage_ttl: env.stage_ttl(req, state),
            dry_run: false,
        };
        let result = run_response_step(env, &cx, req, &mut resp, state, step, &mut out);
        match steps::after(step, result) {
            Ok((pass, lookup)) => {
                i += pass;
                if let Some(lookup) = lookup {
                    for (k, v) in lookup.finish(&env.stage.name, store).await {
                        state.vars.insert(k, v);
                    }
                }
            }
            Err(fault) => {
                tracing::warn!(policy = %fault.policy, error = %fault.message, "PostClientFlow step failed after the response was sent.");
                break;
            }
        }
    }
}
