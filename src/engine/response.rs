//! The response side of a request's steps: PreFlow, flow and PostFlow response steps, run for
//! hits and misses alike (Apigee runs the response flow on a cache hit too).

use std::time::Duration;

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};

use crate::cache::store::TieredStore;
use crate::engine::message::ResponseMessage;
use crate::engine::request::{Env, RequestState};
use crate::engine::steps::{self, Fault, PendingLookup, StepContext};
use crate::runtime::flow::assign::MessageTarget;
use crate::runtime::key::BuiltKey;
use crate::runtime::stage::{Side, Step};

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
    /// A step failed without `continueOnError`: the response is to become a 500 with it.
    pub fault: Option<Fault>,
}

/// Runs the response steps on `resp`, awaiting LookupCache reads between steps so later
/// conditions see their results. Stops at the first step that fails without `continueOnError`.
pub async fn run_response_steps(
    env: Env<'_>,
    store: &TieredStore,
    req: &RequestHeader,
    resp: &mut ResponseHeader,
    state: &mut RequestState,
) -> ResponseEffects {
    let stage = env.stage;
    let mut out = ResponseEffects::default();
    let sel = state.sel;
    for step in stage.steps(&sel, Side::Response) {
        // The same TTL rule as on the request side, whether or not the request was cacheable
        // (read per step: nothing is computed for a response without steps).
        let cx = StepContext {
            stage,
            store,
            stage_ttl: env.stage_ttl(req, state),
            dry_run: false,
        };
        match run_response_step(env, &cx, req, resp, state, step, &mut out) {
            Ok(Some(lookup)) => {
                for (k, v) in lookup.finish(&stage.name, store).await {
                    state.vars.insert(k, v);
                }
            }
            Ok(None) => {}
            Err(fault) => {
                out.fault = Some(fault);
                break;
            }
        }
    }
    out
}

/// Runs one response step; `Err` when it failed without `continueOnError`.
fn run_response_step(
    env: Env<'_>,
    cx: &StepContext<'_>,
    req: &RequestHeader,
    resp: &mut ResponseHeader,
    state: &mut RequestState,
    step: &Step,
    out: &mut ResponseEffects,
) -> Result<Option<PendingLookup>, Fault> {
    let Some(policy) = steps::enabled_policy(env.stage, step) else {
        return Ok(None);
    };
    // The variables read a snapshot of the response as it is before this step.
    let before = resp.clone();
    let params = state.params();
    let vars = env.vars(req, state, &params, Some(&before));
    if step.condition.as_ref().is_some_and(|c| !c.eval(&vars)) {
        return Ok(None);
    }
    let mut msg = ResponseMessage {
        header: resp,
        payload: None,
    };
    let result = steps::run(policy, cx, &vars, Some(&mut msg), MessageTarget::Response);
    let payload = msg.payload.take();
    drop(params);
    let Some(mut fx) = steps::tolerate(policy, result)? else {
        return Ok(None);
    };
    if let Some((policy, key, ttl)) = fx.populate_from_body.take() {
        out.populate = Some(BodyPopulate { policy, key, ttl });
    }
    if let Some(p) = payload {
        out.replacement = Some(p);
    }
    steps::apply(&mut state.vars, &mut fx);
    Ok(fx.lookup.take())
}
