//! The [`EndpointMapper`] and the checks every endpoint element shares: unknown children and
//! stray text (warnings), elements written twice (errors), text elements, required names, and the
//! list of unsupported elements.
//!
//! `endpoint.rs` (flows, steps, fault rules, the ProxyEndpoint parts) and `target.rs` (the
//! TargetEndpoint connection) add further `impl EndpointMapper` blocks that use these; this file
//! uses neither, so the files import one way, as in `policy::xml`.

use crate::diag::{Located, Pos};
use crate::policy::check::{self, shown, Sink};
use crate::policy::xml::tree::Node;

/// Ignored wherever they appear: UI text and transport settings cachegate does not use.
const IGNORED: &[&str] = &["Description", "Properties"];

/// Maps the tree of one endpoint file, collecting diagnostics and the unsupported elements.
pub(super) struct EndpointMapper<'s, 'p> {
    pub(super) sink: &'s mut Sink<'p>,
    pub(super) unsupported: Vec<Located<String>>,
}

impl EndpointMapper<'_, '_> {
    /// Warns about children of `node` that are neither in `known` nor ignored everywhere, and
    /// about text where only elements belong. Warnings, not errors: Apigee ignores them too.
    pub(super) fn expect(&mut self, node: &Node, known: &[&str]) {
        if let Some(tp) = node.text_pos {
            self.sink.warning(
                tp,
                format!("text in <{}> is ignored", node.name),
                Some(format!("<{}> holds only elements", node.name)),
            );
        }
        for c in &node.children {
            let name = c.name.as_str();
            if known.contains(&name) || IGNORED.contains(&name) {
                continue;
            }
            let listed = known
                .iter()
                .map(|k| format!("<{k}>"))
                .collect::<Vec<_>>()
                .join(", ");
            let reads = format!("cachegate reads {listed} here");
            let hint = match check::did_you_mean(name, known) {
                Some(s) => format!("did you mean <{s}>? {reads}"),
                None => reads,
            };
            self.unknown(c, node, hint);
        }
    }

    /// Warns about elements inside `node`, which holds text.
    pub(super) fn text_only(&mut self, node: &Node) {
        for c in &node.children {
            self.unknown(c, node, format!("<{}> holds only text", node.name));
        }
    }

    fn unknown(&mut self, child: &Node, parent: &Node, hint: String) {
        self.sink.warning(
            child.pos,
            format!(
                "unknown element <{}> in <{}> is ignored",
                shown(&child.name),
                parent.name
            ),
            Some(hint),
        );
    }

    /// The child `name` of `parent`, which may appear once; a repeat is an error.
    pub(super) fn single<'n>(&mut self, parent: &'n Node, name: &str) -> Option<&'n Node> {
        let mut found = parent.children.iter().filter(|c| c.name == name);
        let first = found.next()?;
        for dup in found {
            self.sink.error(
                dup.pos,
                format!("duplicate <{name}> in <{}>", parent.name),
                Some(format!(
                    "write <{name}> once (the first one is at line {})",
                    first.pos.line
                )),
            );
        }
        Some(first)
    }

    /// The trimmed text of the child `name` (once), or `None` when absent or blank.
    pub(super) fn text(&mut self, parent: &Node, name: &str) -> Option<Located<String>> {
        let node = self.single(parent, name)?;
        self.text_only(node);
        node.located_text()
    }

    /// `@name` of an element that must have one; a missing or blank name is an error.
    pub(super) fn required_name(&mut self, node: &Node) -> Option<Located<String>> {
        let name = node
            .attr_value("name")
            .map(|n| Located::new(n.to_string(), node.pos));
        if name.is_none() {
            self.sink.error(
                node.pos,
                format!("missing name attribute on <{}>", node.name),
                Some(format!("write <{} name=\"default\">", node.name)),
            );
        }
        name
    }

    pub(super) fn unsupported(&mut self, what: impl Into<String>, pos: Pos) {
        self.unsupported.push(Located::new(what.into(), pos));
    }
}
