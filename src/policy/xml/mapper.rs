//! The tree → model [`Mapper`] and what every policy kind shares: the check of the tree against the
//! [`Spec`] table (unknown, misspelt, duplicate and missing elements and attributes, stray text),
//! the root element's common attributes, and the boolean and required-text helpers.
//!
//! The kinds' own mappings are further `impl Mapper` blocks in `cache.rs` (the four cache policies)
//! and `assign.rs` (AssignMessage); `mod.rs` dispatches on the kind. Kept apart so those files
//! depend on this one and never on each other or on `mod.rs`.

use super::spec::{Content, Spec};
use super::tree::Node;
use crate::diag::{Located, Pos};
use crate::policy::check::{self, shown, Sink};
use crate::policy::model::Common;

/// Maps a read tree to the model, recording every problem in `sink`.
pub(super) struct Mapper<'s, 'p> {
    pub(super) sink: &'s mut Sink<'p>,
}

impl Mapper<'_, '_> {
    /// Checks `node` (and everything under it) against `spec`: attributes, children, duplicates,
    /// required children, stray text.
    pub(super) fn check(&mut self, node: &Node, spec: &Spec) {
        for a in &node.attrs {
            if spec.attrs.contains(&a.name.as_str()) {
                continue;
            }
            let hint = if spec.attrs.is_empty() {
                format!("<{}> takes no attributes", node.name)
            } else {
                let expected = spec.attrs.join(", ");
                match check::did_you_mean(&a.name, spec.attrs) {
                    Some(s) => format!("did you mean {s}? expected one of {expected}"),
                    None => format!("expected one of {expected}"),
                }
            };
            self.sink.error(
                a.pos,
                format!("unknown attribute {} on <{}>", shown(&a.name), node.name),
                Some(hint),
            );
        }
        match spec.content {
            Content::Skip => {}
            Content::Text => {
                for c in &node.children {
                    self.sink.error(
                        c.pos,
                        format!("unknown element <{}> in <{}>", shown(&c.name), node.name),
                        Some(if node.name == "Payload" {
                            "<Payload> holds text; write an XML payload inside <![CDATA[…]]>"
                                .to_string()
                        } else {
                            format!("<{}> holds text, not elements", node.name)
                        }),
                    );
                }
            }
            Content::Elements => {
                let names: Vec<&str> = spec.children.iter().map(|c| c.name).collect();
                if let Some(tp) = node.text_pos {
                    self.sink.error(
                        tp,
                        format!("unexpected text in <{}>", node.name),
                        Some(format!(
                            "<{}> holds only elements: {}",
                            node.name,
                            element_list(&names)
                        )),
                    );
                }
                let mut seen: Vec<(&str, Pos)> = Vec::new();
                for c in &node.children {
                    if let Some(child) = spec.children.iter().find(|s| s.name == c.name) {
                        if !child.many {
                            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == child.name) {
                                self.sink.error(
                                    c.pos,
                                    format!("duplicate <{}> in <{}>", c.name, node.name),
                                    Some(format!(
                                        "write <{}> once (the first one is at line {})",
                                        c.name, first.line
                                    )),
                                );
                            } else {
                                seen.push((child.name, c.pos));
                            }
                        }
                        self.check(c, child.spec);
                    } else if let Some((_, hint)) =
                        spec.unsupported.iter().find(|(n, _)| *n == c.name)
                    {
                        // An empty one (`<FormParams/>`, as Apigee's UI writes) changes nothing.
                        if c.children.is_empty() && c.located_text().is_none() {
                            continue;
                        }
                        self.sink.error(
                            c.pos,
                            format!("<{}> is not supported by cachegate's AssignMessage", c.name),
                            Some((*hint).to_string()),
                        );
                    } else {
                        let expected = format!("expected one of {}", element_list(&names));
                        let hint = match check::did_you_mean(&c.name, &names) {
                            Some(s) => format!("did you mean <{s}>? {expected}"),
                            None => expected,
                        };
                        self.sink.error(
                            c.pos,
                            format!("unknown element <{}> in <{}>", shown(&c.name), node.name),
                            Some(hint),
                        );
                    }
                }
                for child in spec.children {
                    if let Some(example) = child.required {
                        if node.child(child.name).is_none() {
                            self.sink.error(
                                node.pos,
                                format!("missing <{}> in <{}>", child.name, node.name),
                                Some(format!("add {example}")),
                            );
                        }
                    }
                }
            }
        }
    }

    pub(super) fn common(&mut self, root: &Node) -> Option<Common> {
        let name = match root.attr("name") {
            Some(a) => {
                if let Err(issue) = check::check_name(&a.value) {
                    self.sink.issue(a.pos, issue);
                }
                Located::new(a.value.clone(), a.pos)
            }
            None => {
                self.sink.error(
                    root.pos,
                    format!("missing name attribute on <{}>", root.name),
                    Some(format!("write <{} name=\"{}-1\">", root.name, root.name)),
                );
                return None;
            }
        };
        let display_name = root
            .child("DisplayName")
            .map(|d| d.trimmed().to_string())
            .filter(|d| !d.is_empty());
        Some(Common {
            name,
            display_name,
            enabled: self.bool_attr(root, "enabled", true),
            continue_on_error: self.bool_attr(root, "continueOnError", false),
            async_: self.bool_attr(root, "async", false),
        })
    }

    pub(super) fn bool_attr(&mut self, node: &Node, name: &str, default: bool) -> bool {
        let Some(a) = node.attr(name) else {
            return default;
        };
        match check::parse_bool(a.value.trim(), &format!("{name} on <{}>", node.name)) {
            Ok(b) => b,
            Err(issue) => {
                self.sink.issue(a.pos, issue);
                default
            }
        }
    }

    /// A boolean element; absent or empty = false.
    pub(super) fn bool_elem(&mut self, parent: &Node, name: &str) -> bool {
        let Some(node) = parent.child(name) else {
            return false;
        };
        let t = node.trimmed();
        if t.is_empty() {
            return false;
        }
        match check::parse_bool(t, &format!("<{name}>")) {
            Ok(b) => b,
            Err(issue) => {
                self.sink.issue(node.pos, issue);
                false
            }
        }
    }

    pub(super) fn required_text(
        &mut self,
        parent: &Node,
        name: &str,
        example: &str,
    ) -> Option<Located<String>> {
        let node = parent.child(name)?;
        let located = node.located_text();
        if located.is_none() {
            self.sink.error(
                node.pos,
                format!("empty <{name}> in <{}>", parent.name),
                Some(format!("write the flow variable's name, e.g. {example}")),
            );
        }
        located
    }
}

fn element_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("<{n}>"))
        .collect::<Vec<_>>()
        .join(", ")
}
