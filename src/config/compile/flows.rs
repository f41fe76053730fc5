//! Flows and steps: the pre- and post-flow steps, the conditional flows, and the parsing of their
//! conditions, whose syntax errors are reported here with the character they point at.

use toml::Spanned;

use super::ctx::FileCtx;
use super::values::is_name;
use crate::config::file::{FileStage, FileSteps};
use crate::config::policies::Conditions;
use crate::runtime::flow::condition::Condition;
use crate::runtime::stage::{Flow, FlowSteps, Step};

fn condition(
    cx: &mut FileCtx,
    conditions: &mut Conditions,
    at: &Spanned<String>,
    text: &str,
) -> Option<Condition> {
    match conditions.parse(text) {
        Ok(c) => Some(c.clone()),
        Err(e) => {
            let d = crate::config::policies::condition_error(cx.path, cx.pos(at), text, e);
            cx.diags.push(d);
            None
        }
    }
}

fn steps(
    cx: &mut FileCtx,
    conditions: &mut Conditions,
    list: &[Spanned<crate::config::file::FileStep>],
) -> Vec<Step> {
    list.iter()
        .filter_map(|s| {
            let step = s.get_ref();
            let cond = match &step.condition {
                Some(c) => Some(condition(
                    cx,
                    conditions,
                    &Spanned::new(s.span(), c.clone()),
                    c,
                )?),
                None => None,
            };
            Some(Step {
                policy: step.policy.clone(),
                condition: cond,
            })
        })
        .collect()
}

/// Pre-/post-flow steps.
pub(crate) fn flow_steps(
    cx: &mut FileCtx,
    conditions: &mut Conditions,
    s: &FileSteps,
) -> FlowSteps {
    FlowSteps {
        request: steps(cx, conditions, &s.request),
        response: steps(cx, conditions, &s.response),
    }
}

/// Conditional flows.
pub(crate) fn flows(cx: &mut FileCtx, conditions: &mut Conditions, s: &FileStage) -> Vec<Flow> {
    let mut out: Vec<Flow> = Vec::new();
    for f in &s.flows {
        let name = f.name.get_ref();
        if !is_name(name) {
            cx.error(
                &f.name,
                format!("flow name `{name}` must be letters, digits, `-`, `_` or `.`"),
                None,
            );
        }
        if out.iter().any(|o| o.name == *name) {
            cx.error(
                &f.name,
                format!("a second flow named `{name}`"),
                Some("flow names label metrics and must be unique".into()),
            );
        }
        let cond = match &f.condition {
            Some(c) => condition(cx, conditions, c, c.get_ref()),
            None => None,
        };
        out.push(Flow {
            name: name.clone(),
            condition: cond,
            steps: FlowSteps {
                request: steps(cx, conditions, &f.request),
                response: steps(cx, conditions, &f.response),
            },
        });
    }
    if let Some(i) = s.flows.iter().position(|f| f.condition.is_none()) {
        if let Some(later) = s.flows.get(i + 1) {
            cx.warning(
                &later.name,
                format!(
                    "flow `{}` can never run: flow `{}` before it has no condition",
                    later.name.get_ref(),
                    s.flows[i].name.get_ref()
                ),
                Some("move the unconditional flow last".into()),
            );
        }
    }
    out
}
