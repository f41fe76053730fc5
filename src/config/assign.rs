//! Compiling the policy model of an AssignMessage into the runtime's [`CompiledAssignMessage`],
//! once, when the configuration is loaded.

use http::HeaderName;

use crate::policy::model::{AssignMessage, NameValue};
use crate::runtime::flow::assign::compile::{
    CompiledAssignMessage, HeaderTemplate, ParamTemplate, PayloadTemplate, Selection,
    VariableAssignment,
};
use crate::runtime::flow::assign::escaped;
use crate::runtime::flow::template::Template;

fn header_name(nv: &NameValue) -> Option<HeaderName> {
    match HeaderName::from_bytes(nv.name.trim().as_bytes()) {
        Ok(n) => Some(n),
        Err(_) => {
            tracing::warn!(
                name = %escaped(&nv.name),
                line = nv.pos.line,
                "AssignMessage: skipping invalid header name"
            );
            None
        }
    }
}

fn header_templates(list: &[NameValue]) -> Vec<HeaderTemplate> {
    list.iter()
        .filter_map(|nv| {
            header_name(nv).map(|name| HeaderTemplate {
                name,
                value: Template::compile(&nv.value),
            })
        })
        .collect()
}

fn param_templates(list: &[NameValue]) -> Vec<ParamTemplate> {
    list.iter()
        .map(|nv| ParamTemplate {
            name: nv.name.clone(),
            value: Template::compile(&nv.value),
        })
        .collect()
}

/// Compiles `am` once, at load time, so that requests only render templates. Never fails:
/// invalid header names are skipped (see the type's documentation).
pub(crate) fn compile(am: &AssignMessage) -> CompiledAssignMessage {
    let (remove_headers, remove_params, remove_payload) = match &am.remove {
        None => (Selection::Nothing, Selection::Nothing, false),
        Some(r) => {
            let headers = match &r.headers {
                None => Selection::Nothing,
                Some(list) if list.is_empty() => Selection::All,
                Some(list) => Selection::Listed(list.iter().filter_map(header_name).collect()),
            };
            let params = match &r.query_params {
                None => Selection::Nothing,
                Some(list) if list.is_empty() => Selection::All,
                Some(list) => Selection::Listed(list.iter().map(|nv| nv.name.clone()).collect()),
            };
            (headers, params, r.payload)
        }
    };
    let (add_headers, add_params) = match &am.add {
        None => (Vec::new(), Vec::new()),
        Some(a) => (
            header_templates(&a.headers),
            param_templates(&a.query_params),
        ),
    };
    let set = am.set.as_ref();
    let set_headers = set
        .map(|s| header_templates(&s.headers))
        .unwrap_or_default();
    let set_params = set
        .map(|s| param_templates(&s.query_params))
        .unwrap_or_default();
    let set_payload = set
        .and_then(|s| s.payload.as_ref())
        .map(|p| PayloadTemplate {
            content_type: p.content_type.clone(),
            body: Template::compile(&p.template),
        });
    let located =
        |v: Option<&crate::diag::Located<String>>| v.map(|l| Template::compile(l.value.trim()));
    let variables = am
        .assign_variables
        .iter()
        .map(|v| VariableAssignment {
            name: v.name.value.clone(),
            reference: v
                .reference
                .as_ref()
                .map(|r| r.value.trim().to_owned())
                .filter(|r| !r.is_empty()),
            template: v.template.as_ref().map(|t| Template::compile(&t.value)),
            value: v.value.as_ref().map(|l| l.value.clone()),
        })
        .collect();
    CompiledAssignMessage {
        assign_to: am.assign_to.as_ref().map(|a| a.target),
        remove_headers,
        remove_params,
        remove_payload,
        add_headers,
        add_params,
        set_headers,
        set_params,
        set_payload,
        set_status: located(set.and_then(|s| s.status_code.as_ref())),
        set_reason: located(set.and_then(|s| s.reason_phrase.as_ref())),
        set_verb: located(set.and_then(|s| s.verb.as_ref())),
        set_path: located(set.and_then(|s| s.path.as_ref())),
        variables,
        ignore_unresolved: am.ignore_unresolved_variables,
    }
}
