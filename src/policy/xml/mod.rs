//! Apigee XML policy files → [`PolicyFile`].
//!
//! Parsing happens in two steps. First `quick-xml` reads the text into a small element tree that
//! keeps the position of every element and attribute (the `<` of a start tag, 1-based line:col);
//! entities and CDATA are resolved there, comments and the `<?xml …?>` declaration are dropped, and
//! `<!DOCTYPE …>` is refused (no entity expansion, ever). The tree is bounded: 1 MiB of text, 32
//! levels of nesting, 10,000 elements. Then the tree is checked against a table of what each
//! element may contain (`Spec`) — unknown or misspelt elements and attributes, duplicates and
//! missing required elements are errors with a did-you-mean hint — and mapped to the model.
//!
//! Child elements may come in any order, as in Apigee. Empty elements (`<Prefix/>`,
//! `<CacheResource></CacheResource>`, `<ExpiryDate/>`, `<SkipCacheLookup/>`, …) are treated as
//! absent, which is how Apigee's generated skeletons use them.
//!
//! The same table drives [`known_elements`] and [`known_attributes`], which a test compares with
//! `schemas/policies.xsd` so that the schema and the parser cannot drift apart.
//!
//! The code is split by step, one concern a file, and the files import one way (`mod.rs` →
//! `cache.rs`, `assign.rs`, `callout.rs` → `mapper.rs` → `spec.rs` → `tree.rs`):
//!
//! - `tree.rs` reads the text into the position-tracking element tree;
//! - `spec.rs` holds the table of what each element may contain;
//! - `mapper.rs` checks the tree against the table and maps what every kind shares;
//! - `cache.rs` maps the four cache policies, `assign.rs` AssignMessage and `callout.rs`
//!   FlowCallout;
//! - this file is the entry point, [`parse`], and dispatches on the policy kind.

mod assign;
mod cache;
mod callout;
mod mapper;
mod spec;
pub(crate) mod tree;

use std::path::Path;

use super::check::{self, shown, Sink};
use super::model::{Policy, PolicyFile, PolicyKind};
use super::ParseOutcome;
use crate::diag::Pos;
use mapper::Mapper;
use spec::root_spec;
use tree::{Node, TreeBuilder};

#[cfg(test)]
pub use spec::{known_attributes, known_elements};

/// Parses an Apigee XML policy file. `path` is used in diagnostics as given.
pub fn parse(path: &Path, text: &str) -> ParseOutcome {
    let mut sink = Sink::new(path);
    if text.len() > check::MAX_POLICY_FILE_BYTES {
        sink.error(
            Pos::new(1, 1),
            format!(
                "policy file is {} bytes, more than the {} byte limit",
                text.len(),
                check::MAX_POLICY_FILE_BYTES
            ),
            Some("policy files are small; split or shorten the file".into()),
        );
        return ParseOutcome {
            policy: None,
            diagnostics: sink.finish(),
        };
    }
    let builder = TreeBuilder::new(text, &mut sink);
    let root = builder.build();
    let policy = root.and_then(|root| Mapper { sink: &mut sink }.policy_file(path, &root));
    let policy = if sink.has_errors() { None } else { policy };
    ParseOutcome {
        policy,
        diagnostics: sink.finish(),
    }
}

impl Mapper<'_, '_> {
    fn policy_file(&mut self, path: &Path, root: &Node) -> Option<PolicyFile> {
        let Some(kind) = PolicyKind::from_name(&root.name) else {
            let names: Vec<&str> = PolicyKind::ALL.iter().map(|k| k.as_str()).collect();
            let supported = format!("cachegate supports {}", PolicyKind::list("<", ">"));
            let hint = match check::did_you_mean(&root.name, &names) {
                Some(s) => format!("did you mean <{s}>? {supported}"),
                None => supported,
            };
            self.sink.error(
                root.pos,
                format!("unsupported policy type <{}>", shown(&root.name)),
                Some(hint),
            );
            return None;
        };
        self.check(root, root_spec(kind));
        let common = self.common(root);
        let policy = match kind {
            PolicyKind::ResponseCache => self.response_cache(root).map(Policy::ResponseCache),
            PolicyKind::LookupCache => self.lookup_cache(root).map(Policy::LookupCache),
            PolicyKind::PopulateCache => self.populate_cache(root).map(Policy::PopulateCache),
            PolicyKind::InvalidateCache => self.invalidate_cache(root).map(Policy::InvalidateCache),
            PolicyKind::AssignMessage => Some(Policy::AssignMessage(self.assign_message(root))),
            PolicyKind::FlowCallout => self.flow_callout(root).map(Policy::FlowCallout),
            PolicyKind::RaiseFault => self.raise_fault(root).map(Policy::RaiseFault),
        };
        Some(PolicyFile {
            path: path.to_path_buf(),
            pos: root.pos,
            common: common?,
            policy: policy?,
        })
    }
}

/// Helpers shared by the unit tests of the files in this folder.
#[cfg(test)]
mod test_util {
    use std::path::Path;

    use super::parse;
    use crate::policy::model::PolicyFile;

    pub(super) fn parse_ok(text: &str) -> PolicyFile {
        let out = parse(Path::new("t.xml"), text);
        let shown: Vec<String> = out.diagnostics.iter().map(|d| d.to_string()).collect();
        assert!(out.diagnostics.iter().all(|d| !d.is_error()), "{shown:#?}");
        out.policy
            .unwrap_or_else(|| panic!("no policy: {shown:#?}"))
    }

    pub(super) fn messages(text: &str) -> Vec<String> {
        parse(Path::new("t.xml"), text)
            .diagnostics
            .iter()
            .map(|d| d.to_string())
            .collect()
    }
}
