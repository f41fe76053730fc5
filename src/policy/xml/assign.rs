//! Mapping of the AssignMessage policy from the element tree to the model: `<AssignTo>`,
//! `<Remove>`, `<Add>`, `<Set>` (with the `<Payload>` text rule) and `<AssignVariable>`; and of
//! RaiseFault, whose `<FaultResponse>` holds the same elements.
//!
//! An `impl` block of the [`Mapper`] in `mapper.rs`; `mod.rs` calls [`Mapper::assign_message`].
//! Kept apart from the cache policies (`cache.rs`), which share none of these elements.

use super::mapper::Mapper;
use super::tree::Node;
use crate::diag::Located;
use crate::policy::check::{self, quoted};
use crate::policy::model::{
    Add, AssignMessage, AssignTo, AssignVariable, MessageTarget, NameValue, Payload, RaiseFault,
    Remove, Set,
};

impl Mapper<'_, '_> {
    pub(super) fn assign_message(&mut self, root: &Node) -> AssignMessage {
        let assign_to = root.child("AssignTo").and_then(|n| self.am_assign_to(n));
        let remove = root.child("Remove").map(|r| Remove {
            headers: r.child("Headers").map(|h| self.name_values(h, "Header")),
            query_params: r
                .child("QueryParams")
                .map(|q| self.name_values(q, "QueryParam")),
            payload: r.child("Payload").is_some_and(|p| {
                let t = p.trimmed();
                t.is_empty() || {
                    match check::parse_bool(t, "<Payload> in <Remove>") {
                        Ok(b) => b,
                        Err(issue) => {
                            self.sink.issue(p.pos, issue);
                            false
                        }
                    }
                }
            }),
        });
        let add = root.child("Add").map(|a| Add {
            headers: a
                .child("Headers")
                .map(|h| self.name_values(h, "Header"))
                .unwrap_or_default(),
            query_params: a
                .child("QueryParams")
                .map(|q| self.name_values(q, "QueryParam"))
                .unwrap_or_default(),
        });
        let set = root.child("Set").map(|s| self.am_set(s));
        let assign_variables = root
            .children_named("AssignVariable")
            .filter_map(|v| self.assign_variable(v))
            .collect();
        let ignore_unresolved_variables = self.bool_elem(root, "IgnoreUnresolvedVariables");
        AssignMessage {
            assign_to,
            remove,
            add,
            set,
            assign_variables,
            ignore_unresolved_variables,
        }
    }

    fn am_assign_to(&mut self, node: &Node) -> Option<AssignTo> {
        if let Some(a) = node.attr("createNew") {
            if self.bool_attr(node, "createNew", false) {
                self.sink.error(
                    a.pos,
                    "cachegate's AssignMessage changes the flow's own request or response; \
                     createNew is not supported",
                    Some("write createNew=\"false\" or leave the attribute out".into()),
                );
            }
        }
        if let Some(a) = node.attr("transport") {
            if !a.value.trim().eq_ignore_ascii_case("http") {
                self.sink.error(
                    a.pos,
                    format!("unsupported transport {} on <AssignTo>", quoted(&a.value)),
                    Some("write transport=\"http\" or leave the attribute out".into()),
                );
            }
        }
        let parse_target = |t: &str| match t {
            "request" => Some(MessageTarget::Request),
            "response" => Some(MessageTarget::Response),
            _ => None,
        };
        let by_type = match node.attr("type") {
            Some(a) => match parse_target(a.value.trim()) {
                Some(t) => Some(t),
                None => {
                    self.sink.error(
                        a.pos,
                        format!("invalid type {} on <AssignTo>", quoted(&a.value)),
                        Some("write type=\"request\" or type=\"response\"".into()),
                    );
                    return None;
                }
            },
            None => None,
        };
        let t = node.trimmed();
        if t.is_empty() {
            return by_type.map(|target| AssignTo {
                pos: node.pos,
                target,
            });
        }
        let Some(target) = parse_target(t) else {
            self.sink.error(
                node.pos,
                format!(
                    "cachegate's AssignMessage changes the flow's own request or response, not {}",
                    quoted(t)
                ),
                Some("write <AssignTo>request</AssignTo> or <AssignTo>response</AssignTo>".into()),
            );
            return None;
        };
        if by_type.is_some_and(|b| b != target) {
            self.sink.error(
                node.pos,
                format!("<AssignTo> names {t} but its type attribute says otherwise"),
                Some(format!("write type=\"{t}\" or leave the attribute out")),
            );
        }
        Some(AssignTo {
            pos: node.pos,
            target,
        })
    }

    fn name_values(&mut self, list: &Node, item: &str) -> Vec<NameValue> {
        let mut out = Vec::new();
        for n in list.children_named(item) {
            match n.attr_value("name") {
                Some(name) => out.push(NameValue {
                    pos: n.pos,
                    name: name.to_string(),
                    value: n.trimmed().to_string(),
                }),
                None => self.sink.error(
                    n.pos,
                    format!("<{item}> has no name attribute"),
                    Some(format!("write <{item} name=\"x-example\">value</{item}>")),
                ),
            }
        }
        out
    }

    fn am_set(&mut self, s: &Node) -> Set {
        let status_code = s.child("StatusCode").and_then(Node::located_text);
        if let Some(code) = &status_code {
            if let Err(issue) = check::check_status_code(&code.value, "<StatusCode>") {
                self.sink.issue(code.pos, issue);
            }
        }
        Set {
            headers: s
                .child("Headers")
                .map(|h| self.name_values(h, "Header"))
                .unwrap_or_default(),
            query_params: s
                .child("QueryParams")
                .map(|q| self.name_values(q, "QueryParam"))
                .unwrap_or_default(),
            payload: s.child("Payload").map(|p| Payload {
                pos: p.pos,
                content_type: p.attr_value("contentType").map(str::to_string),
                template: payload_text(&p.text).to_string(),
            }),
            status_code,
            reason_phrase: s.child("ReasonPhrase").and_then(Node::located_text),
            verb: s.child("Verb").and_then(Node::located_text),
            path: s.child("Path").and_then(Node::located_text),
        }
    }

    fn assign_variable(&mut self, v: &Node) -> Option<AssignVariable> {
        let name = self.required_text(v, "Name", "<Name>my.variable</Name>")?;
        let reference = v.child("Ref").and_then(Node::located_text);
        let template = v.child("Template").and_then(Node::located_text);
        // An empty <Value/> assigns the empty string, so it is kept.
        let value = v
            .child("Value")
            .map(|n| Located::new(n.trimmed().to_string(), n.pos));
        if reference.is_none() && template.is_none() && value.is_none() {
            self.sink.error(
                v.pos,
                format!("<AssignVariable> for {} has no <Ref>, <Template> or <Value>", name.value),
                Some("add <Value>text</Value>, <Ref>variable</Ref> or <Template>{variable}</Template>".into()),
            );
            return None;
        }
        Some(AssignVariable {
            pos: v.pos,
            name,
            reference,
            template,
            value,
        })
    }

    /// `<RaiseFault>`: its `<FaultResponse>` is mapped as an AssignMessage of the error
    /// response; `<IgnoreUnresolvedVariables>` defaults to true here (Apigee's RaiseFault).
    pub(super) fn raise_fault(&mut self, root: &Node) -> Option<RaiseFault> {
        let node = root.child("FaultResponse")?;
        let mut fault_response = self.assign_message(node);
        fault_response.assign_to = None;
        fault_response.ignore_unresolved_variables = match root
            .child("IgnoreUnresolvedVariables")
            .map(|n| (n.pos, n.trimmed()))
        {
            None | Some((_, "")) => true,
            Some((pos, t)) => match check::parse_bool(t, "<IgnoreUnresolvedVariables>") {
                Ok(b) => b,
                Err(issue) => {
                    self.sink.issue(pos, issue);
                    true
                }
            },
        };
        Some(RaiseFault { fault_response })
    }
}

/// `<Payload>` text as written, without the blank lines around it: leading whitespace up to and
/// including the last line break before the content, and trailing whitespace from the first line
/// break after it. Text on the same line as the tags keeps its spaces.
fn payload_text(raw: &str) -> &str {
    let content_start = raw.len() - raw.trim_start().len();
    let start = raw
        .get(..content_start)
        .and_then(|lead| lead.rfind('\n'))
        .map_or(0, |i| i + 1);
    let content_end = raw.trim_end().len();
    let end = raw
        .get(content_end..)
        .and_then(|tail| tail.find(['\r', '\n']))
        .map_or(raw.len(), |i| content_end + i);
    if content_end <= content_start {
        return "";
    }
    raw.get(start..end).unwrap_or(raw)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::parse_ok;
    use super::*;
    use crate::policy::model::Policy;

    #[test]
    fn raise_fault_maps_its_fault_response_and_ignores_unresolved_variables_by_default() {
        let p = parse_ok(
            r#"<RaiseFault name="RF"><FaultResponse><Set><StatusCode>404</StatusCode><Payload contentType="text/plain">gone</Payload></Set></FaultResponse></RaiseFault>"#,
        );
        let Policy::RaiseFault(rf) = p.policy else {
            panic!("not a RaiseFault")
        };
        assert!(rf.fault_response.ignore_unresolved_variables);
        let set = rf.fault_response.set.expect("set");
        assert_eq!(set.status_code.expect("status").value, "404");
        let strict = parse_ok(
            r#"<RaiseFault name="RF"><FaultResponse/><IgnoreUnresolvedVariables>false</IgnoreUnresolvedVariables></RaiseFault>"#,
        );
        let Policy::RaiseFault(rf) = strict.policy else {
            panic!("not a RaiseFault")
        };
        assert!(!rf.fault_response.ignore_unresolved_variables);
    }

    #[test]
    fn payload_text_trims_blank_lines_only() {
        assert_eq!(payload_text("\n    {\"a\": 1}\n  "), "    {\"a\": 1}");
        assert_eq!(payload_text(" {a} "), " {a} ");
        assert_eq!(payload_text("\r\n  x\r\n"), "  x");
        assert_eq!(payload_text("  \n \n"), "");
        assert_eq!(payload_text(""), "");
        assert_eq!(payload_text("a\n\nb\n"), "a\n\nb");
    }

    #[test]
    fn assign_message_subset() {
        let p = parse_ok(
            r#"<AssignMessage name="AM-1">
  <AssignTo createNew="false" transport="http" type="response">response</AssignTo>
  <Remove><Headers/><QueryParams><QueryParam name="debug"/></QueryParams><Payload/></Remove>
  <Add><Headers><Header name="X-Tier">{client.tier}</Header></Headers></Add>
  <Set>
    <Payload contentType="application/json"><![CDATA[{"tier": "{client.tier}"}]]></Payload>
    <StatusCode>200</StatusCode>
    <FormParams/>
  </Set>
  <AssignVariable><Name>a</Name><Value/></AssignVariable>
  <IgnoreUnresolvedVariables>true</IgnoreUnresolvedVariables>
</AssignMessage>"#,
        );
        let Policy::AssignMessage(am) = p.policy else {
            panic!("kind")
        };
        assert_eq!(
            am.assign_to.map(|a| a.target),
            Some(MessageTarget::Response)
        );
        let remove = am.remove.unwrap_or_default();
        assert_eq!(remove.headers, Some(vec![]), "<Headers/> = remove all");
        assert_eq!(remove.query_params.map(|q| q.len()), Some(1));
        assert!(remove.payload);
        assert_eq!(
            am.add.map(|a| a.headers[0].value.clone()).as_deref(),
            Some("{client.tier}")
        );
        let set = am.set.unwrap_or_default();
        assert_eq!(
            set.payload.map(|p| p.template).as_deref(),
            Some("{\"tier\": \"{client.tier}\"}")
        );
        assert_eq!(
            am.assign_variables[0]
                .value
                .as_ref()
                .map(|v| v.value.as_str()),
            Some("")
        );
        assert!(am.ignore_unresolved_variables);
    }
}
