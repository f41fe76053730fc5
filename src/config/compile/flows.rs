//! Endpoints, flows, steps and routes: compiled from the source model (`config::source`, written in
//! stage.toml or an Apigee bundle), with the syntax errors of their conditions reported at the
//! file and line where each condition is written.

use crate::config::policies::Conditions;
use crate::config::source::{Site, SrcEndpoint, SrcFlows, SrcRouteTo, SrcStep, SrcSteps};
use crate::diag::{Diagnostic, Diagnostics};
use crate::runtime::flow::condition::Condition;
use crate::runtime::stage::{Endpoint, Flow, FlowSteps, RouteRule, RouteTo, Step, TargetEndpoint};

/// Parses a condition once per load; a syntax error is reported at `at`.
fn condition(
    diags: &mut Diagnostics,
    conditions: &mut Conditions,
    at: &Site,
    text: &str,
) -> Option<Condition> {
    match conditions.parse(text) {
        Ok(c) => Some(c.clone()),
        Err(e) => {
            diags.push(crate::config::policies::condition_error(
                &at.file, at.pos, text, e,
            ));
            None
        }
    }
}

fn steps(diags: &mut Diagnostics, conditions: &mut Conditions, list: &[SrcStep]) -> Vec<Step> {
    list.iter()
        .filter_map(|s| {
            let cond = match &s.condition {
                Some((c, at)) => Some(condition(diags, conditions, at, c)?),
                None => None,
            };
            Some(Step {
                policy: s.policy.clone(),
                condition: cond,
            })
        })
        .collect()
}

fn flow_steps(diags: &mut Diagnostics, conditions: &mut Conditions, s: &SrcSteps) -> FlowSteps {
    FlowSteps {
        request: steps(diags, conditions, &s.request),
        response: steps(diags, conditions, &s.response),
    }
}

/// One endpoint: PreFlow, conditional flows (names checked, unreachable ones warned about) and
/// PostFlow.
fn endpoint(diags: &mut Diagnostics, conditions: &mut Conditions, e: &SrcEndpoint) -> Endpoint {
    let mut flows: Vec<Flow> = Vec::new();
    for f in &e.flows {
        let name = &f.name;
        // Apigee allows any flow name (`/` is a real one); a name only labels metrics and
        // logs, so it must just be printable and short.
        if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
            diags.push(Diagnostic::error(
                &f.at.file,
                f.at.pos,
                format!(
                    "flow name `{}` must be 1 to 255 printable characters",
                    name.escape_debug()
                ),
            ));
        }
        if flows.iter().any(|o| o.name == *name) {
            diags.push(
                Diagnostic::error(
                    &f.at.file,
                    f.at.pos,
                    format!("a second flow named `{name}`"),
                )
                .with_hint("flow names label metrics and must be unique"),
            );
        }
        let cond = match &f.condition {
            Some((c, at)) => condition(diags, conditions, at, c),
            None => None,
        };
        flows.push(Flow {
            name: name.clone(),
            condition: cond,
            steps: flow_steps(diags, conditions, &f.steps),
        });
    }
    if let Some(i) = e.flows.iter().position(|f| f.condition.is_none()) {
        if let Some(later) = e.flows.get(i + 1) {
            diags.push(
                Diagnostic::warning(
                    &later.at.file,
                    later.at.pos,
                    format!(
                        "flow `{}` can never run: flow `{}` before it has no condition",
                        later.name, e.flows[i].name
                    ),
                )
                .with_hint("move the unconditional flow last"),
            );
        }
    }
    Endpoint {
        name: e.name.clone(),
        preflow: flow_steps(diags, conditions, &e.preflow),
        flows,
        postflow: flow_steps(diags, conditions, &e.postflow),
    }
}

/// The compiled endpoints and routes of a stage: `(proxy, targets, routes)`. A route naming a
/// TargetEndpoint that does not exist is an error; RouteRules after an unconditional one can
/// never be chosen and are warned about (apigeelint PD002/PD003).
pub(crate) fn endpoints(
    diags: &mut Diagnostics,
    conditions: &mut Conditions,
    src: &SrcFlows,
) -> (Endpoint, Vec<TargetEndpoint>, Vec<RouteRule>) {
    let proxy = endpoint(diags, conditions, &src.proxy);
    let targets: Vec<TargetEndpoint> = src
        .targets
        .iter()
        .map(|t| TargetEndpoint {
            endpoint: endpoint(diags, conditions, &t.endpoint),
            target: t.target.clone(),
        })
        .collect();
    let mut routes = Vec::new();
    for r in &src.routes {
        let to = match &r.to {
            SrcRouteTo::Endpoint(name) => {
                match targets.iter().position(|t| t.endpoint.name == *name) {
                    Some(i) => RouteTo::Endpoint(i),
                    None => {
                        let names: Vec<&str> =
                            targets.iter().map(|t| t.endpoint.name.as_str()).collect();
                        let hint = match crate::util::did_you_mean(name, names.iter().copied()) {
                            Some(m) => format!("did you mean `{m}`?"),
                            None if names.is_empty() => {
                                "the bundle has no targets/*.xml".to_owned()
                            }
                            None => format!("the TargetEndpoints are: {}", names.join(", ")),
                        };
                        diags.push(
                            Diagnostic::error(
                                &r.at.file,
                                r.at.pos,
                                format!(
                                    "RouteRule `{}` names TargetEndpoint `{name}`, which does not exist",
                                    r.name
                                ),
                            )
                            .with_hint(hint),
                        );
                        continue;
                    }
                }
            }
            SrcRouteTo::Url(t) => RouteTo::Url(t.clone()),
            SrcRouteTo::Null => RouteTo::Null,
        };
        let cond = match &r.condition {
            Some((c, at)) => condition(diags, conditions, at, c),
            None => None,
        };
        routes.push(RouteRule {
            name: r.name.clone(),
            condition: cond,
            to,
        });
    }
    if let Some(i) = src.routes.iter().position(|r| r.condition.is_none()) {
        for later in &src.routes[i + 1..] {
            diags.push(
                Diagnostic::warning(
                    &later.at.file,
                    later.at.pos,
                    format!(
                        "RouteRule `{}` can never be chosen: RouteRule `{}` before it has no condition",
                        later.name, src.routes[i].name
                    ),
                )
                .with_hint("RouteRules are tried in order; put the unconditional one last"),
            );
        }
    }
    (proxy, targets, routes)
}
