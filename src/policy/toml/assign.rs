//! Mapping of the AssignMessage policy from its TOML table to the model: `assign_to`, `remove`,
//! `add`, `set` and `assign_variable`.
//!
//! An `impl` block of the [`Mapper`] in `mapper.rs`; `mod.rs` calls [`Mapper::assign_message`].
//! Kept apart from the cache policies (`cache.rs`), which share none of these keys.

use ::toml::Spanned;

use super::mapper::Mapper;
use super::shape::{AssignMessageT, AssignVariableT, NameValueT, SetT};
use crate::diag::Located;
use crate::policy::check::{self, quoted};
use crate::policy::model::{
    Add, AssignMessage, AssignTo, AssignVariable, MessageTarget, NameValue, Payload, Remove, Set,
};

impl Mapper<'_, '_, '_> {
    pub(super) fn assign_message(&mut self, t: AssignMessageT) -> Option<AssignMessage> {
        let assign_to = match t.assign_to {
            Some(a) => {
                let pos = self.at(&a);
                match a.get_ref().trim() {
                    "request" => Some(AssignTo {
                        pos,
                        target: MessageTarget::Request,
                    }),
                    "response" => Some(AssignTo {
                        pos,
                        target: MessageTarget::Response,
                    }),
                    other => {
                        self.sink.error(
                            pos,
                            format!(
                                "cachegate's AssignMessage changes the flow's own request or \
                                 response, not {}",
                                quoted(other)
                            ),
                            Some(
                                "write assign_to = \"request\" or assign_to = \"response\"".into(),
                            ),
                        );
                        None
                    }
                }
            }
            None => None,
        };
        let remove = t.remove.map(|r| Remove {
            headers: self.remove_list(r.headers, r.all_headers, "headers", "all_headers"),
            query_params: self.remove_list(
                r.query_params,
                r.all_query_params,
                "query_params",
                "all_query_params",
            ),
            payload: r.payload.unwrap_or(false),
        });
        let add = t.add.map(|a| Add {
            headers: self.name_values(a.headers),
            query_params: self.name_values(a.query_params),
        });
        let set = t.set.map(|s| self.set(s));
        let assign_variables = t
            .assign_variable
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| self.assign_variable(v))
            .collect();
        Some(AssignMessage {
            assign_to,
            remove,
            add,
            set,
            assign_variables,
            ignore_unresolved_variables: t.ignore_unresolved_variables.unwrap_or(false),
        })
    }

    /// `None` = nothing to remove; `Some(vec![])` = remove all; `Some(list)` = remove those.
    fn remove_list(
        &mut self,
        list: Option<Vec<Spanned<String>>>,
        all: Option<Spanned<bool>>,
        key: &str,
        all_key: &str,
    ) -> Option<Vec<NameValue>> {
        let list = list.unwrap_or_default();
        let all_pos = all.as_ref().map(|a| self.at(a));
        let all = all.is_some_and(|a| *a.get_ref());
        let mut out = Vec::new();
        for name in list {
            let pos = self.at(&name);
            let name = name.into_inner();
            if name.trim().is_empty() {
                self.sink.error(
                    pos,
                    format!("empty name in {key}"),
                    Some("write a name, e.g. \"X-Debug\"".into()),
                );
                continue;
            }
            out.push(NameValue {
                pos,
                name: name.trim().to_string(),
                value: String::new(),
            });
        }
        if all {
            if let (false, Some(pos)) = (out.is_empty(), all_pos) {
                self.sink.error(
                    pos,
                    format!("both {all_key} = true and {key} are given"),
                    Some(format!(
                        "{all_key} = true already removes every one; drop {key}"
                    )),
                );
            }
            return Some(Vec::new());
        }
        (!out.is_empty()).then_some(out)
    }

    fn name_values(&mut self, list: Option<Vec<Spanned<NameValueT>>>) -> Vec<NameValue> {
        let mut out = Vec::new();
        for nv in list.unwrap_or_default() {
            let pos = self.at(&nv);
            let nv = nv.into_inner();
            if nv.name.trim().is_empty() {
                self.sink.error(
                    pos,
                    "empty name",
                    Some("write { name = \"X-Example\", value = \"…\" }".into()),
                );
                continue;
            }
            out.push(NameValue {
                pos,
                name: nv.name.trim().to_string(),
                value: nv.value.trim().to_string(),
            });
        }
        out
    }

    fn set(&mut self, s: SetT) -> Set {
        let status_code = s.status_code.and_then(|c| {
            let pos = self.at(&c);
            let raw = c.into_inner().0.trim().to_string();
            if raw.is_empty() {
                return None;
            }
            if let Err(issue) = check::check_status_code(&raw, "status_code") {
                self.sink.issue(pos, issue);
            }
            Some(Located::new(raw, pos))
        });
        Set {
            headers: self.name_values(s.headers),
            query_params: self.name_values(s.query_params),
            payload: s.payload.map(|p| {
                let pos = self.at(&p);
                let p = p.into_inner();
                Payload {
                    pos,
                    content_type: p.content_type.filter(|c| !c.trim().is_empty()),
                    template: p.template,
                }
            }),
            status_code,
            reason_phrase: self.located(s.reason_phrase),
            verb: self.located(s.verb),
            path: self.located(s.path),
        }
    }

    fn assign_variable(&mut self, v: Spanned<AssignVariableT>) -> Option<AssignVariable> {
        let pos = self.at(&v);
        let v = v.into_inner();
        let name = self.required(v.name, "name", "my.variable");
        let reference = self.located(v.reference);
        let template = self.located(v.template);
        // An empty value assigns the empty string, so it is kept.
        let value = v.value.map(|s| {
            let vpos = self.at(&s);
            Located::new(s.into_inner().trim().to_string(), vpos)
        });
        let name = name?;
        if reference.is_none() && template.is_none() && value.is_none() {
            self.sink.error(
                pos,
                format!(
                    "assign_variable for {} has no ref, template or value",
                    name.value
                ),
                Some(
                    "add value = \"text\", ref = \"variable\" or template = \"{variable}\"".into(),
                ),
            );
            return None;
        }
        Some(AssignVariable {
            pos,
            name,
            reference,
            template,
            value,
        })
    }
}
