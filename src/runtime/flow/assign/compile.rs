//! The compiled form of an AssignMessage, [`CompiledAssignMessage`]: `{var}` templates parsed
//! and header names validated once, when the configuration is loaded (by `config::assign`), so
//! requests only render templates (see `apply.rs`).

use http::HeaderName;

use super::MessageTarget;
use crate::runtime::flow::template::Template;

/// Which headers or query parameters `<Remove>` drops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selection<T> {
    /// No `<Headers>` / `<QueryParams>` element.
    Nothing,
    /// `<Headers/>`: all of them.
    All,
    /// The listed ones. May be empty when every listed header name was invalid — which still
    /// removes nothing, never everything.
    Listed(Vec<T>),
}

impl<T> Selection<T> {
    pub(crate) fn is_nothing(&self) -> bool {
        matches!(self, Selection::Nothing)
    }
}

/// A header name with its value template.
#[derive(Debug, Clone)]
pub(crate) struct HeaderTemplate {
    pub(crate) name: HeaderName,
    pub(crate) value: Template,
}

/// A query parameter name (plain text, not encoded) with its value template.
#[derive(Debug, Clone)]
pub(crate) struct ParamTemplate {
    pub(crate) name: String,
    pub(crate) value: Template,
}

/// `<Set><Payload>`.
#[derive(Debug, Clone)]
pub(crate) struct PayloadTemplate {
    pub(crate) content_type: Option<String>,
    pub(crate) body: Template,
}

/// One `<AssignVariable>`.
#[derive(Debug, Clone)]
pub(crate) struct VariableAssignment {
    pub(crate) name: String,
    pub(crate) reference: Option<String>,
    pub(crate) template: Option<Template>,
    pub(crate) value: Option<String>,
}

/// An AssignMessage compiled once at load time: templates parsed, header names validated.
///
/// Header names that are not valid HTTP header names (the parser rejects them, so this only
/// happens with a model built some other way) are skipped here, with a warning in the log, rather
/// than failing or panicking: such a header could never be written anyway.
#[derive(Debug, Clone)]
pub struct CompiledAssignMessage {
    pub(crate) assign_to: Option<MessageTarget>,
    pub(crate) remove_headers: Selection<HeaderName>,
    pub(crate) remove_params: Selection<String>,
    pub(crate) remove_payload: bool,
    pub(crate) add_headers: Vec<HeaderTemplate>,
    pub(crate) add_params: Vec<ParamTemplate>,
    pub(crate) set_headers: Vec<HeaderTemplate>,
    pub(crate) set_params: Vec<ParamTemplate>,
    pub(crate) set_payload: Option<PayloadTemplate>,
    pub(crate) set_status: Option<Template>,
    pub(crate) set_reason: Option<Template>,
    pub(crate) set_verb: Option<Template>,
    pub(crate) set_path: Option<Template>,
    pub(crate) variables: Vec<VariableAssignment>,
    pub(crate) ignore_unresolved: bool,
}

impl CompiledAssignMessage {
    /// The test suites of the runtime build their policies from the model, as the loader does.
    #[cfg(test)]
    pub fn compile(am: &crate::policy::model::AssignMessage) -> Self {
        crate::config::assign::compile(am)
    }

    /// Which message the policy changes: its <AssignTo> if present, else the message of the side
    /// the step is attached to.
    pub fn target(&self, side: MessageTarget) -> MessageTarget {
        self.assign_to.unwrap_or(side)
    }
}
