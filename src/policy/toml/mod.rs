//! TOML policy files → [`PolicyFile`]: the same model as the Apigee XML, written in TOML.
//!
//! A file holds exactly one top-level table, named by the policy kind (`ResponseCache`,
//! `LookupCache`, `PopulateCache`, `InvalidateCache`, `AssignMessage`, `FlowCallout` or
//! `RaiseFault`). Keys are the XML elements
//! in snake_case. Unknown keys are errors (with a did-you-mean hint), as unknown XML elements are.
//!
//! ```toml
//! [LookupCache]                       # exactly one top-level table, named by the kind
//! name = "LookupCache-tier"           # required: letters, digits, space, - _ . (≤ 255)
//! display_name = "Lookup tier"        # optional
//! description = "…"                   # optional, ignored
//! enabled = true                      # optional (default true)
//! continue_on_error = false           # optional (default false)
//! scope = "Exclusive"                 # optional: Global | Application | Proxy | Target | Exclusive
//! cache_resource = "tiers"            # optional
//! lookup_timeout_secs = 1             # optional (CacheLookupTimeoutInSeconds)
//! assign_to = "client.tier"           # required
//! [LookupCache.cache_key]             # required
//! prefix = "tier"                     # optional
//! fragments = [ { ref = "request.header.x-client-id" }, { literal = "v1" } ]   # a fragment may have both
//! ```
//!
//! Keys per kind (besides `name`, `display_name`, `description`, `enabled`, `continue_on_error`):
//!
//! - **ResponseCache**: `cache_key`, `scope`, `cache_resource`, `expiry`, `lookup_timeout_secs`,
//!   `exclude_error_response`, `skip_cache_lookup` (condition text), `skip_cache_population`,
//!   `use_accept_header`, `use_response_cache_headers`.
//! - **LookupCache**: `cache_key`, `scope`, `cache_resource`, `lookup_timeout_secs`, `assign_to`.
//! - **PopulateCache**: `cache_key`, `scope`, `cache_resource`, `expiry`, `source`. Without
//!   `expiry` entries use the stage TTL (a warning).
//! - **InvalidateCache**: `cache_key`, `scope`, `cache_resource`,
//!   `cache_context = { api_proxy_name = …, proxy_name = …, target_name = … }` (each a string or
//!   `{ ref = "var", value = "fallback" }`), `purge_child_entries`, `ignore_unresolved_variables`.
//! - **AssignMessage**: `assign_to = "request" | "response"`, `ignore_unresolved_variables`, and
//!
//!   ```toml
//!   [AssignMessage.remove]
//!   headers = ["X-Debug"]             # or all_headers = true (remove every header)
//!   query_params = ["debug"]          # or all_query_params = true
//!   payload = true
//!   [AssignMessage.add]
//!   headers = [{ name = "X-Tier", value = "{client.tier}" }]
//!   query_params = [{ name = "v", value = "1" }]
//!   [AssignMessage.set]
//!   headers = [{ name = "Cache-Control", value = "max-age=60" }]
//!   payload = { content_type = "application/json", template = '{"tier": "{client.tier}"}' }
//!   status_code = 200                 # or a "{variable}" template
//!   reason_phrase = "OK"
//!   verb = "GET"
//!   path = "/v1/items"
//!   [[AssignMessage.assign_variable]]
//!   name = "tier.label"
//!   ref = "client.tier"               # and/or template = "…", value = "fallback"
//!   ```
//!
//! - **RaiseFault**: `ignore_unresolved_variables` (default true) and the fault response as
//!   AssignMessage's `remove`, `add`, `set`, `assign_variable` (e.g.
//!   `[RaiseFault.set] status_code = 404`).
//! - **FlowCallout**: `shared_flow_bundle = "name"` (required) and
//!   `parameters = [{ name = "aud", value = "literal" }, { name = "tok", ref = "request.header.t" }]`.
//!
//! `expiry` is exactly one of `{ timeout_secs = 300 }`, `{ date = "12-31-2026" }` (mm-dd-yyyy) or
//! `{ time_of_day = "03:00:00" }` (hh:mm:ss), each optionally with `ref = "flow.var"` (the variable
//! wins when it resolves; the literal is the fallback); `{ ref = "flow.ttl" }` alone is a timeout.
//!
//! As in XML, an empty string for an optional value (`prefix = ""`, `cache_resource = ""`,
//! `ref = ""`) means the value is absent. `remove.headers = []` removes nothing; only
//! `all_headers = true` removes every header.
//!
//! Implementation: serde structs with `deny_unknown_fields` and [`Spanned`] for the values whose
//! positions the model keeps. No `flatten` and no untagged enums — they lose toml's spans; values
//! that take two shapes have hand-written visitors.
//!
//! The code is split by concern, and the files import one way (`mod.rs` → `cache.rs`,
//! `assign.rs`, `callout.rs` → `mapper.rs` → `shape.rs`):
//!
//! - `shape.rs` holds the serde structs, i.e. the file format;
//! - `mapper.rs` turns spans and toml errors into diagnostics and maps what every kind shares;
//! - `cache.rs` maps the four cache policies, `assign.rs` AssignMessage and `callout.rs`
//!   FlowCallout;
//! - this file is the entry point, [`parse`], reads the file's outline (exactly one policy table)
//!   and dispatches on the policy kind;
//! - `write.rs` goes the other way: the model written as this format (`cachegate import`).

mod assign;
mod cache;
mod callout;
mod mapper;
mod shape;
pub mod write;

use std::collections::BTreeMap;
use std::path::Path;

use ::toml::Spanned;

use super::check::{self, LineIndex, Sink};
use super::model::{Policy, PolicyFile, PolicyKind, RaiseFault};
use super::ParseOutcome;
use crate::diag::Pos;
use mapper::Mapper;
use shape::Document;

/// Parses a TOML policy file. `path` is used in diagnostics as given.
pub fn parse(path: &Path, text: &str) -> ParseOutcome {
    let mut sink = Sink::new(path);
    let mut p = Mapper {
        sink: &mut sink,
        lines: LineIndex::new(text),
    };
    let policy = p.file(path, text);
    let policy = if sink.has_errors() { None } else { policy };
    ParseOutcome {
        policy,
        diagnostics: sink.finish(),
    }
}

impl Mapper<'_, '_, '_> {
    fn file(&mut self, path: &Path, text: &str) -> Option<PolicyFile> {
        if text.len() > check::MAX_POLICY_FILE_BYTES {
            self.sink.error(
                Pos::new(1, 1),
                format!(
                    "policy file is {} bytes, more than the {} byte limit",
                    text.len(),
                    check::MAX_POLICY_FILE_BYTES
                ),
                Some("policy files are small; split or shorten the file".into()),
            );
            return None;
        }
        // First pass: the top-level keys, to say clearly what is wrong with the file's outline.
        let top: BTreeMap<Spanned<String>, ::toml::Value> = match ::toml::from_str(text) {
            Ok(t) => t,
            Err(e) => {
                self.toml_error(&e);
                if let Some(d) = self.sink.diags.last_mut() {
                    d.hint.get_or_insert_with(|| {
                        "fix the TOML syntax: strings need closing quotes, tables are written \
                         [Name], and each key is written once"
                            .to_string()
                    });
                }
                return None;
            }
        };
        let mut keys: Vec<(&Spanned<String>, &::toml::Value)> = top.iter().collect();
        keys.sort_by_key(|(k, _)| k.span().start);
        let mut policies: Vec<(PolicyKind, Pos)> = Vec::new();
        let kind_names: Vec<&str> = PolicyKind::ALL.iter().map(|k| k.as_str()).collect();
        for (key, value) in keys {
            let pos = self.at(key);
            let name = key.get_ref().as_str();
            if let Some(kind) = PolicyKind::from_name(name) {
                policies.push((kind, pos));
            } else if value.is_table() {
                let supported = format!("cachegate supports {}", PolicyKind::list("[", "]"));
                let hint = match check::did_you_mean(name, &kind_names) {
                    Some(s) => format!("did you mean [{s}]? {supported}"),
                    None => supported,
                };
                self.sink.error(
                    pos,
                    format!("unsupported policy type [{}]", check::shown(name)),
                    Some(hint),
                );
            } else {
                self.sink.error(
                    pos,
                    format!("unexpected top-level key `{}`: policy settings go inside the policy's table", check::shown(name)),
                    Some("move the key below the table header, e.g. [LookupCache]".into()),
                );
            }
        }
        match policies.as_slice() {
            [] if !self.sink.has_errors() => {
                self.sink.error(
                    Pos::new(1, 1),
                    "no policy table in the file",
                    Some(format!(
                        "start the file with a table named by the policy kind: {}",
                        PolicyKind::list("[", "]")
                    )),
                );
            }
            [(first, _), (second, pos), ..] => {
                self.sink.error(
                    *pos,
                    format!(
                        "more than one policy table: [{}] and [{}]",
                        first.as_str(),
                        second.as_str()
                    ),
                    Some("put each policy in its own file".into()),
                );
            }
            _ => {}
        }
        let [(kind, root_pos)] = policies.as_slice() else {
            return None;
        };
        if self.sink.has_errors() {
            return None;
        }
        let (kind, root_pos) = (*kind, *root_pos);
        // Second pass: the policy itself.
        let doc: Document = match ::toml::from_str(text) {
            Ok(d) => d,
            Err(e) => {
                self.toml_error(&e);
                return None;
            }
        };
        let (common, policy) = match (kind, doc) {
            (
                PolicyKind::ResponseCache,
                Document {
                    response_cache: Some(t),
                    ..
                },
            ) => (
                self.common(&t.common()),
                self.response_cache(t).map(Policy::ResponseCache),
            ),
            (
                PolicyKind::LookupCache,
                Document {
                    lookup_cache: Some(t),
                    ..
                },
            ) => (
                self.common(&t.common()),
                self.lookup_cache(t).map(Policy::LookupCache),
            ),
            (
                PolicyKind::PopulateCache,
                Document {
                    populate_cache: Some(t),
                    ..
                },
            ) => {
                let common = self.common(&t.common());
                (
                    common,
                    self.populate_cache(t, root_pos).map(Policy::PopulateCache),
                )
            }
            (
                PolicyKind::InvalidateCache,
                Document {
                    invalidate_cache: Some(t),
                    ..
                },
            ) => (
                self.common(&t.common()),
                self.invalidate_cache(t).map(Policy::InvalidateCache),
            ),
            (
                PolicyKind::AssignMessage,
                Document {
                    assign_message: Some(t),
                    ..
                },
            ) => (
                self.common(&t.common()),
                self.assign_message(t).map(Policy::AssignMessage),
            ),
            (
                PolicyKind::FlowCallout,
                Document {
                    flow_callout: Some(t),
                    ..
                },
            ) => (
                self.common(&t.common()),
                self.flow_callout(t).map(Policy::FlowCallout),
            ),
            (
                PolicyKind::RaiseFault,
                Document {
                    raise_fault: Some(t),
                    ..
                },
            ) => (
                self.common(&t.common()),
                self.assign_message(t.into_assign())
                    .map(|fault_response| Policy::RaiseFault(RaiseFault { fault_response })),
            ),
            _ => return None,
        };
        Some(PolicyFile {
            path: path.to_path_buf(),
            pos: root_pos,
            common,
            policy: policy?,
        })
    }
}

/// Helpers shared by the unit tests of the files in this folder.
#[cfg(test)]
mod test_util {
    use std::path::Path;

    use super::parse;
    use crate::policy::ParseOutcome;

    pub(super) fn outcome(text: &str) -> ParseOutcome {
        parse(Path::new("t.toml"), text)
    }

    pub(super) fn messages(text: &str) -> Vec<String> {
        outcome(text)
            .diagnostics
            .iter()
            .map(|d| d.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::{messages, outcome};

    #[test]
    fn outline_errors() {
        assert!(messages("").iter().any(|m| m.contains("no policy table")));
        assert!(
            messages("[LookupCache]\nname='a'\n[PopulateCache]\nname='b'\n")
                .iter()
                .any(|m| m.contains("t.toml:3:2: error: more than one policy table"))
        );
        assert!(messages("[Quota]\nname='a'\n")
            .iter()
            .any(|m| m.contains("unsupported policy type [Quota]")));
        assert!(messages("name='a'\n")
            .iter()
            .any(|m| m.contains("unexpected top-level key `name`")));
        assert!(messages("[LookupCache\n")
            .iter()
            .any(|m| m.contains("t.toml:1:")));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!(
            "[LookupCache]\nname = {}{}\n",
            "[".repeat(50_000),
            "]".repeat(50_000)
        );
        assert!(outcome(&deep).has_errors());
        let deep = format!(
            "[LookupCache]\nname = {}1{}\n",
            "{a=".repeat(50_000),
            "}".repeat(50_000)
        );
        assert!(outcome(&deep).has_errors());
    }
}
