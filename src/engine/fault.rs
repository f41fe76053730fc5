//! The error flow (apigee-bundles.md §5): what a request gets when a step raises (RaiseFault)
//! or fails without `continueOnError`.
//!
//! The normal pipeline stops at once: no further request or response steps run, nothing is
//! forwarded or stored. The error response starts as a `500` — a RaiseFault's `<FaultResponse>`
//! shapes it, a failed policy's is the JSON naming the policy — and then the endpoint where the
//! fault happened runs its fault rules on it: the first FaultRule whose condition holds
//! (a ProxyEndpoint's are tried from the last one up, a TargetEndpoint's from the first down, as
//! Apigee documents), then the DefaultFaultRule when no FaultRule ran, or also after one when
//! it has `<AlwaysEnforce>` — unless a RaiseFault ran in that FaultRule. Fault rule steps see
//! `fault.name`, `is.error` and the `error.*` variables, and change the error response
//! (AssignMessage); a RaiseFault among them reshapes it and the rule goes on.
//!
//! Which endpoint: the one whose steps were running. A fault in a TargetEndpoint is offered to
//! that endpoint's rules only; whether Apigee then offers it to the ProxyEndpoint's is not
//! confirmed (§11), and cachegate does not.

use std::sync::Arc;

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};

use crate::cache::store::TieredStore;
use crate::engine::message::ResponseMessage;
use crate::engine::response::{run_response_step, ResponseEffects};
use crate::engine::state::{Env, RequestState};
use crate::engine::steps::{self, Fault, FaultOrigin, StepContext};
use crate::runtime::stage::{Endpoint, FaultRule, StepPolicy};

/// The response the error flow made.
#[derive(Debug)]
pub struct ErrorResponse {
    /// Status and headers.
    pub header: ResponseHeader,
    /// The body.
    pub body: Bytes,
}

/// The body of a failed policy's error response (names the policy; never values, which may be
/// secret).
pub fn fault_body(fault: &Fault) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "error": "policy_error",
            "policy": fault.policy,
            "message": fault.message,
        })
        .to_string(),
    )
}

/// Runs the error flow for `fault`, which happened in `origin`'s steps, and returns the error
/// response to send.
pub async fn error_flow(
    env: Env<'_>,
    store: &TieredStore,
    req: &RequestHeader,
    state: &mut RequestState,
    fault: &Fault,
    origin: FaultOrigin,
) -> pingora::Result<ErrorResponse> {
    tracing::warn!(policy = %fault.policy, fault = fault.name, error = %fault.message, "Policy fault: the request enters the error flow.");
    let mut header = ResponseHeader::build(500, Some(4))?;
    header.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    let mut body = Bytes::new();
    for (k, v) in [
        ("fault.name", fault.name),
        ("fault.category", "Step"),
        ("fault.reason", fault.message.as_str()),
        ("error.message", fault.message.as_str()),
        ("is.error", "true"),
    ] {
        state.vars.insert(k.to_owned(), v.to_owned());
    }
    match &fault.raised {
        Some(policy) => raise(env, req, state, &mut header, &mut body, policy),
        None => {
            header.insert_header(http::header::CONTENT_TYPE, "application/json")?;
            body = fault_body(fault);
        }
    }
    let stage = env.stage;
    let endpoint: Option<&Endpoint> = match origin {
        FaultOrigin::Proxy => Some(&stage.proxy),
        FaultOrigin::Target(t) => stage.targets.get(t).map(|t| &t.endpoint),
    };
    let Some(endpoint) = endpoint else {
        return Ok(ErrorResponse { header, body });
    };
    let chosen = {
        let params = state.params();
        let vars = env.vars(req, state, &params, Some(&header));
        let holds = |r: &&FaultRule| r.condition.as_ref().is_none_or(|c| c.eval(&vars));
        match origin {
            FaultOrigin::Proxy => endpoint.fault_rules.iter().rev().find(holds),
            FaultOrigin::Target(_) => endpoint.fault_rules.iter().find(holds),
        }
    };
    let mut raised_in_rule = false;
    if let Some(rule) = chosen {
        raised_in_rule = run_rule(env, store, req, state, &mut header, &mut body, rule).await;
    }
    if let Some(default) = &endpoint.default_fault_rule {
        let enforced = chosen.is_none() || (default.always_enforce && !raised_in_rule);
        let holds = {
            let params = state.params();
            let vars = env.vars(req, state, &params, Some(&header));
            default.condition.as_ref().is_none_or(|c| c.eval(&vars))
        };
        if enforced && holds {
            run_rule(env, store, req, state, &mut header, &mut body, default).await;
        }
    }
    Ok(ErrorResponse { header, body })
}

/// Runs one fault rule's steps on the error response; whether a RaiseFault ran among them. A
/// step that fails ends the rule (the error response is kept as it is).
async fn run_rule(
    env: Env<'_>,
    store: &TieredStore,
    req: &RequestHeader,
    state: &mut RequestState,
    header: &mut ResponseHeader,
    body: &mut Bytes,
    rule: &FaultRule,
) -> bool {
    let mut raised = false;
    let mut out = ResponseEffects::default();
    let mut i = 0;
    while let Some(step) = rule.steps.get(i) {
        i += 1;
        let cx = StepContext {
            stage: env.stage,
            store,
            stage_ttl: env.stage_ttl(req, state),
            dry_run: false,
        };
        let result = run_response_step(env, &cx, req, header, state, step, &mut out);
        // A RaiseFault in a FaultRule reshapes the error response; the rule goes on.
        if let Err(Fault {
            raised: Some(policy),
            ..
        }) = &result
        {
            raise(env, req, state, header, body, policy);
            raised = true;
        } else {
            // Spans and a tolerant FlowCallout's escape as in any flow.
            match steps::after(step, result) {
                Ok((pass, lookup)) => {
                    i += pass;
                    if let Some(lookup) = lookup {
                        for (k, v) in lookup.finish(&env.stage.name, store).await {
                            state.vars.insert(k, v);
                        }
                    }
                }
                Err(f) => {
                    tracing::warn!(policy = %f.policy, error = %f.message, rule = %rule.name, "Fault rule step failed; the error response is sent as it is.");
                    break;
                }
            }
        }
        if let Some(p) = out.replacement.take() {
            *body = p;
        }
    }
    raised
}

/// Applies a RaiseFault's `<FaultResponse>` to the error response.
fn raise(
    env: Env<'_>,
    req: &RequestHeader,
    state: &mut RequestState,
    header: &mut ResponseHeader,
    body: &mut Bytes,
    policy: &Arc<StepPolicy>,
) {
    let StepPolicy::RaiseFault(p) = &**policy else {
        return;
    };
    state
        .vars
        .insert("fault.name".to_owned(), "RaiseFault".to_owned());
    let before = header.clone();
    let params = state.params();
    let vars = env.vars(req, state, &params, Some(&before));
    let mut msg = ResponseMessage {
        header,
        payload: None,
    };
    let result = p.assign.apply(&mut msg, &vars);
    let payload = msg.payload.take();
    drop(params);
    match result {
        Ok(assigned) => {
            if let Some(p) = payload {
                *body = p;
            }
            for (k, v) in assigned {
                state.vars.insert(k, v);
            }
        }
        Err(e) => {
            tracing::warn!(policy = %p.name, error = %e, "RaiseFault could not build its response; the error response stays a 500.");
        }
    }
}
