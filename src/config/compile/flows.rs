//! Endpoints, flows, steps and routes: compiled from the source model (`config::source`, written in
//! stage.toml or an Apigee bundle), with the syntax errors of their conditions reported at the
//! file and line where each condition is written.

use crate::config::policies::Conditions;
use crate::config::source::{
    Site, SrcEndpoint, SrcFaultRule, SrcFlows, SrcRouteTo, SrcStep, SrcSteps,
};
use crate::diag::{Diagnostic, Diagnostics};
use crate::runtime::flow::condition::Condition;
use crate::runtime::stage::{
    Endpoint, FaultRule, Flow, FlowSteps, RouteRule, RouteTo, Step, TargetEndpoint,
};

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

/// The steps of one list. A step whose condition does not parse is kept without it (the error
/// is reported, so this configuration is never used), so that the FlowCallout spans still count
/// the right steps.
fn steps(diags: &mut Diagnostics, conditions: &mut Conditions, list: &[SrcStep]) -> Vec<Step> {
    list.iter()
        .enumerate()
        .map(|(i, s)| Step {
            policy: s.policy.clone(),
            condition: s
                .condition
                .as_ref()
                .and_then(|(c, at)| condition(diags, conditions, at, c)),
            span: s.span,
            escape: escape(list, i),
        })
        .collect()
}

/// How many steps after step `i` a failure of it passes: to the end of the innermost shared
/// flow around it whose FlowCallout has `continueOnError="true"` (`None`: no such callout).
fn escape(list: &[SrcStep], i: usize) -> Option<usize> {
    // The callouts around `i`, innermost first: the nearest header before it whose span
    // reaches it, then the next one around that, and so on.
    (0..i)
        .rev()
        .filter(|&h| h + list[h].span >= i)
        .find(|&h| list[h].tolerant)
        .map(|h| h + list[h].span - i)
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
    let mut fault_rule = |r: &SrcFaultRule| FaultRule {
        name: r.name.clone(),
        condition: r
            .condition
            .as_ref()
            .and_then(|(c, at)| condition(diags, conditions, at, c)),
        steps: steps(diags, conditions, &r.steps),
        always_enforce: r.always_enforce,
    };
    let fault_rules = e.fault_rules.iter().map(&mut fault_rule).collect();
    let default_fault_rule = e.default_fault_rule.as_ref().map(&mut fault_rule);
    // apigeelint FR001: with several FaultRules, one without a Condition takes every fault.
    if e.fault_rules.len() > 1 {
        for r in e.fault_rules.iter().filter(|r| r.condition.is_none()) {
            diags.push(
                Diagnostic::warning(
                    &r.at.file,
                    r.at.pos,
                    format!("FaultRule `{}` has no <Condition>: it handles every fault, and the other FaultRules of the endpoint may never run", r.name),
                )
                .with_hint("give each FaultRule a Condition such as fault.name = \"RaiseFault\" (apigeelint FR001)"),
            );
        }
    }
    let flows_read_response = flows
        .iter()
        .filter_map(|f| f.condition.as_ref())
        .flat_map(|c| c.variables())
        .any(|v| {
            v == "is.error"
                || [
                    "response.",
                    "message.",
                    "error.",
                    "fault.",
                    "responsecache.",
                ]
                .iter()
                .any(|p| v.starts_with(p))
        });
    Endpoint {
        name: e.name.clone(),
        preflow: flow_steps(diags, conditions, &e.preflow),
        flows,
        flows_read_response,
        post_client_flow: steps(diags, conditions, &e.post_client_flow),
        postflow: flow_steps(diags, conditions, &e.postflow),
        fault_rules,
        default_fault_rule,
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::escape;
    use crate::config::source::{retain_steps, Site, SrcStep};

    fn step(policy: &str, span: usize, tolerant: bool) -> SrcStep {
        SrcStep {
            policy: policy.to_owned(),
            condition: None,
            at: Site {
                file: Arc::from(Path::new("f.xml")),
                pos: None,
            },
            span,
            tolerant,
        }
    }

    /// `outer` (tolerant) runs `a`, `inner` (strict, running `b`) and `c`; `d` is outside both.
    fn nested() -> Vec<SrcStep> {
        vec![
            step("outer", 4, true),
            step("a", 0, false),
            step("inner", 1, false),
            step("b", 0, false),
            step("c", 0, false),
            step("d", 0, false),
        ]
    }

    #[test]
    fn a_failure_leaves_the_innermost_tolerant_callout() {
        let list = nested();
        let got: Vec<Option<usize>> = (0..list.len()).map(|i| escape(&list, i)).collect();
        // `b` fails inside the strict `inner`: the fault reaches `outer`, which leaves after `c`.
        assert_eq!(got, [None, Some(3), Some(2), Some(1), Some(0), None]);
    }

    #[test]
    fn removing_steps_keeps_the_spans_counting_what_is_left() {
        let kept = retain_steps(&nested(), &|s| s.policy != "b");
        let shape: Vec<(&str, usize)> = kept.iter().map(|s| (s.policy.as_str(), s.span)).collect();
        assert_eq!(
            shape,
            [("outer", 3), ("a", 0), ("inner", 0), ("c", 0), ("d", 0)]
        );
        // A callout that goes takes its shared flow with it.
        let kept = retain_steps(&nested(), &|s| s.policy != "inner");
        let names: Vec<&str> = kept.iter().map(|s| s.policy.as_str()).collect();
        assert_eq!(names, ["outer", "a", "c", "d"]);
        assert_eq!(kept[0].span, 2);
    }
}
