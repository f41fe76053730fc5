//! Compiling the policy model of an AssignMessage into a [`CompiledAssignMessage`], once, when the
//! configuration is loaded: `{var}` templates are parsed and header names validated, so requests
//! only render templates (see `apply.rs`).

use http::HeaderName;

use super::error::escaped;
use crate::policy::model::{AssignMessage, MessageTarget, NameValue};
use crate::runtime::flow::template::Template;

/// Which headers or query parameters `<Remove>` drops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Selection<T> {
    /// No `<Headers>` / `<QueryParams>` element.
    Nothing,
    /// `<Headers/>`: all of them.
    All,
    /// The listed ones. May be empty when every listed header name was invalid — which still
    /// removes nothing, never everything.
    Listed(Vec<T>),
}

impl<T> Selection<T> {
    pub(super) fn is_nothing(&self) -> bool {
        matches!(self, Selection::Nothing)
    }
}

/// A header name with its value template.
#[derive(Debug, Clone)]
pub(super) struct HeaderTemplate {
    pub(super) name: HeaderName,
    pub(super) value: Template,
}

/// A query parameter name (plain text, not encoded) with its value template.
#[derive(Debug, Clone)]
pub(super) struct ParamTemplate {
    pub(super) name: String,
    pub(super) value: Template,
}

/// `<Set><Payload>`.
#[derive(Debug, Clone)]
pub(super) struct PayloadTemplate {
    pub(super) content_type: Option<String>,
    pub(super) body: Template,
}

/// One `<AssignVariable>`.
#[derive(Debug, Clone)]
pub(super) struct VariableAssignment {
    pub(super) name: String,
    pub(super) reference: Option<String>,
    pub(super) template: Option<Template>,
    pub(super) value: Option<String>,
}

/// An AssignMessage compiled once at load time: templates parsed, header names validated.
///
/// Header names that are not valid HTTP header names (the parser rejects them, so this only
/// happens with a model built some other way) are skipped here, with a warning in the log, rather
/// than failing or panicking: such a header could never be written anyway.
#[derive(Debug, Clone)]
pub struct CompiledAssignMessage {
    assign_to: Option<MessageTarget>,
    pub(super) remove_headers: Selection<HeaderName>,
    pub(super) remove_params: Selection<String>,
    pub(super) remove_payload: bool,
    pub(super) add_headers: Vec<HeaderTemplate>,
    pub(super) add_params: Vec<ParamTemplate>,
    pub(super) set_headers: Vec<HeaderTemplate>,
    pub(super) set_params: Vec<ParamTemplate>,
    pub(super) set_payload: Option<PayloadTemplate>,
    pub(super) set_status: Option<Template>,
    pub(super) set_reason: Option<Template>,
    pub(super) set_verb: Option<Template>,
    pub(super) set_path: Option<Template>,
    pub(super) variables: Vec<VariableAssignment>,
    pub(super) ignore_unresolved: bool,
}

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

impl CompiledAssignMessage {
    /// Compiles `am` once, at load time, so that requests only render templates. Never fails:
    /// invalid header names are skipped (see the type's documentation).
    pub fn compile(am: &AssignMessage) -> Self {
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
                    Some(list) => {
                        Selection::Listed(list.iter().map(|nv| nv.name.clone()).collect())
                    }
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
        Self {
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

    /// Which message the policy changes: its <AssignTo> if present, else the message of the side
    /// the step is attached to.
    pub fn target(&self, side: MessageTarget) -> MessageTarget {
        self.assign_to.unwrap_or(side)
    }
}
