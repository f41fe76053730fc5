//! TOML policy files → [`PolicyFile`]: the same model as the Apigee XML, written in TOML.
//!
//! A file holds exactly one top-level table, named by the policy kind (`ResponseCache`,
//! `LookupCache`, `PopulateCache`, `InvalidateCache` or `AssignMessage`). Keys are the XML elements
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

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use ::toml::Spanned;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::check::{self, quoted, Issue, LineIndex, ScopeMatch, Sink};
use super::model::{
    Add, AssignMessage, AssignTo, AssignVariable, CacheContext, CacheKey, Common, Expiry,
    ExpirySettings, InvalidateCache, KeyFragment, LookupCache, MessageTarget, NameValue, Payload,
    Policy, PolicyFile, PolicyKind, PopulateCache, Remove, ResponseCache, Scope, Set, ValueOrRef,
};
use super::ParseOutcome;
use crate::diag::{Located, Pos};

// ---------------------------------------------------------------------------------------------
// The file's shape.
// ---------------------------------------------------------------------------------------------

/// Defines a policy table: the common keys, then the kind's own.
macro_rules! policy_table {
    ($name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty,)* }) => {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            name: Spanned<String>,
            display_name: Option<String>,
            #[allow(dead_code)]
            description: Option<String>,
            enabled: Option<bool>,
            continue_on_error: Option<bool>,
            $($(#[$fm])* $field: $ty,)*
        }

        impl $name {
            fn common(&self) -> CommonKeys<'_> {
                CommonKeys {
                    name: &self.name,
                    display_name: self.display_name.as_deref(),
                    enabled: self.enabled,
                    continue_on_error: self.continue_on_error,
                }
            }
        }
    };
}

struct CommonKeys<'a> {
    name: &'a Spanned<String>,
    display_name: Option<&'a str>,
    enabled: Option<bool>,
    continue_on_error: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(rename = "ResponseCache")]
    response_cache: Option<ResponseCacheT>,
    #[serde(rename = "LookupCache")]
    lookup_cache: Option<LookupCacheT>,
    #[serde(rename = "PopulateCache")]
    populate_cache: Option<PopulateCacheT>,
    #[serde(rename = "InvalidateCache")]
    invalidate_cache: Option<InvalidateCacheT>,
    #[serde(rename = "AssignMessage")]
    assign_message: Option<AssignMessageT>,
}

policy_table!(ResponseCacheT {
    cache_key: Spanned<CacheKeyT>,
    scope: Option<Spanned<String>>,
    cache_resource: Option<Spanned<String>>,
    expiry: Option<Spanned<ExpiryT>>,
    lookup_timeout_secs: Option<Spanned<i64>>,
    exclude_error_response: Option<bool>,
    skip_cache_lookup: Option<Spanned<String>>,
    skip_cache_population: Option<Spanned<String>>,
    use_accept_header: Option<bool>,
    use_response_cache_headers: Option<bool>,
    stale_while_revalidate_secs: Option<Spanned<i64>>,
    stale_if_error_secs: Option<Spanned<i64>>,
});

policy_table!(LookupCacheT {
    cache_key: Spanned<CacheKeyT>,
    scope: Option<Spanned<String>>,
    cache_resource: Option<Spanned<String>>,
    lookup_timeout_secs: Option<Spanned<i64>>,
    assign_to: Spanned<String>,
});

policy_table!(PopulateCacheT {
    cache_key: Spanned<CacheKeyT>,
    scope: Option<Spanned<String>>,
    cache_resource: Option<Spanned<String>>,
    expiry: Option<Spanned<ExpiryT>>,
    source: Spanned<String>,
});

policy_table!(InvalidateCacheT {
    cache_key: Spanned<CacheKeyT>,
    scope: Option<Spanned<String>>,
    cache_resource: Option<Spanned<String>>,
    cache_context: Option<Spanned<CacheContextT>>,
    purge_child_entries: Option<bool>,
    ignore_unresolved_variables: Option<bool>,
});

policy_table!(AssignMessageT {
    assign_to: Option<Spanned<String>>,
    ignore_unresolved_variables: Option<bool>,
    remove: Option<RemoveT>,
    add: Option<AddT>,
    set: Option<SetT>,
    assign_variable: Option<Vec<Spanned<AssignVariableT>>>,
});

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheKeyT {
    prefix: Option<Spanned<String>>,
    #[serde(default)]
    fragments: Vec<Spanned<FragmentT>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FragmentT {
    #[serde(rename = "ref")]
    reference: Option<String>,
    literal: Option<String>,
    #[serde(rename = "type")]
    type_: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpiryT {
    timeout_secs: Option<Spanned<i64>>,
    date: Option<Spanned<String>>,
    time_of_day: Option<Spanned<String>>,
    #[serde(rename = "ref")]
    reference: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheContextT {
    api_proxy_name: Option<Spanned<StrOrRef>>,
    proxy_name: Option<Spanned<StrOrRef>>,
    target_name: Option<Spanned<StrOrRef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveT {
    headers: Option<Vec<Spanned<String>>>,
    all_headers: Option<Spanned<bool>>,
    query_params: Option<Vec<Spanned<String>>>,
    all_query_params: Option<Spanned<bool>>,
    payload: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddT {
    headers: Option<Vec<Spanned<NameValueT>>>,
    query_params: Option<Vec<Spanned<NameValueT>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetT {
    headers: Option<Vec<Spanned<NameValueT>>>,
    query_params: Option<Vec<Spanned<NameValueT>>>,
    payload: Option<Spanned<PayloadT>>,
    status_code: Option<Spanned<StrOrInt>>,
    reason_phrase: Option<Spanned<String>>,
    verb: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NameValueT {
    name: String,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadT {
    content_type: Option<String>,
    template: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignVariableT {
    name: Spanned<String>,
    #[serde(rename = "ref")]
    reference: Option<Spanned<String>>,
    template: Option<Spanned<String>>,
    value: Option<Spanned<String>>,
}

/// A string, or `{ ref = "var", value = "fallback" }` (hand-written so toml keeps spans).
#[derive(Debug, Default)]
struct StrOrRef {
    reference: Option<String>,
    value: Option<String>,
}

impl<'de> Deserialize<'de> for StrOrRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrOrRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a table { ref = \"variable\", value = \"fallback\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrOrRef, E> {
                Ok(StrOrRef {
                    reference: None,
                    value: Some(v.to_string()),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrOrRef, A::Error> {
                let mut out = StrOrRef::default();
                while let Some(key) = map.next_key::<String>()? {
                    let slot = match key.as_str() {
                        "ref" => &mut out.reference,
                        "value" => &mut out.value,
                        other => return Err(de::Error::unknown_field(other, &["ref", "value"])),
                    };
                    if slot.is_some() {
                        return Err(de::Error::custom(format!("duplicate key `{key}`")));
                    }
                    *slot = Some(map.next_value::<String>()?);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

/// A string or an integer, kept as text (`status_code = 200` or `status_code = "{code}"`).
#[derive(Debug)]
struct StrOrInt(String);

impl<'de> Deserialize<'de> for StrOrInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StrOrInt;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrOrInt, E> {
                Ok(StrOrInt(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrOrInt, E> {
                Ok(StrOrInt(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrOrInt, E> {
                Ok(StrOrInt(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------------
// Entry point.
// ---------------------------------------------------------------------------------------------

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

struct Mapper<'s, 'p, 't> {
    sink: &'s mut Sink<'p>,
    lines: LineIndex<'t>,
}

impl Mapper<'_, '_, '_> {
    fn at<T>(&mut self, s: &Spanned<T>) -> Pos {
        self.lines.pos(s.span().start)
    }

    fn toml_error(&mut self, e: &::toml::de::Error) {
        let pos = e.span().map_or(Pos::new(1, 1), |s| self.lines.pos(s.start));
        let mut lines = e.message().lines().map(str::trim).filter(|l| !l.is_empty());
        let mut message = lines.next().unwrap_or("invalid TOML").to_string();
        let rest: Vec<&str> = lines.collect();
        if !rest.is_empty() {
            message = format!("{message}: {}", rest.join("; "));
        }
        let message = message.replace("expected i64", "expected an integer");
        let hint = error_hint(&message);
        self.sink.error(pos, message, hint);
    }

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
            _ => return None,
        };
        Some(PolicyFile {
            path: path.to_path_buf(),
            pos: root_pos,
            common,
            policy: policy?,
        })
    }

    fn common(&mut self, c: &CommonKeys<'_>) -> Common {
        let pos = self.at(c.name);
        if let Err(issue) = check::check_name(c.name.get_ref()) {
            self.sink.issue(pos, issue);
        }
        Common {
            name: Located::new(c.name.get_ref().clone(), pos),
            display_name: c
                .display_name
                .map(str::to_string)
                .filter(|d| !d.trim().is_empty()),
            enabled: c.enabled.unwrap_or(true),
            continue_on_error: c.continue_on_error.unwrap_or(false),
            async_: false,
        }
    }

    /// An optional string: empty = absent.
    fn located(&mut self, s: Option<Spanned<String>>) -> Option<Located<String>> {
        let s = s?;
        let pos = self.at(&s);
        let v = s.into_inner();
        (!v.trim().is_empty()).then(|| Located::new(v.trim().to_string(), pos))
    }

    /// A required string: empty is an error.
    fn required(
        &mut self,
        s: Spanned<String>,
        key: &str,
        example: &str,
    ) -> Option<Located<String>> {
        let pos = self.at(&s);
        let v = s.into_inner();
        if v.trim().is_empty() {
            self.sink.error(
                pos,
                format!("empty {key}"),
                Some(format!(
                    "write the flow variable's name, e.g. {key} = \"{example}\""
                )),
            );
            return None;
        }
        Some(Located::new(v.trim().to_string(), pos))
    }

    fn scope(&mut self, s: Option<Spanned<String>>) -> Scope {
        let Some(s) = s else { return Scope::default() };
        let pos = self.at(&s);
        let raw = s.get_ref().trim();
        if raw.is_empty() {
            return Scope::default();
        }
        match check::parse_scope(raw) {
            Ok(ScopeMatch::Exact(scope)) => scope,
            Ok(ScopeMatch::WrongCase(scope)) => {
                self.sink.warning(
                    pos,
                    format!("scope {} is not spelt as Apigee spells it", quoted(raw)),
                    Some(format!("write \"{}\"", scope.as_str())),
                );
                scope
            }
            Err(issue) => {
                let hint = match check::did_you_mean(raw, &Scope::ALL.map(Scope::as_str)) {
                    Some(s) => Some(format!(
                        "did you mean {s}? {}",
                        issue.hint.unwrap_or_default()
                    )),
                    None => issue.hint,
                };
                self.sink.error(pos, issue.message, hint);
                Scope::default()
            }
        }
    }

    fn seconds(&mut self, s: &Spanned<i64>, what: &str) -> Option<u64> {
        let pos = self.at(s);
        match u64::try_from(*s.get_ref()) {
            Ok(v) => Some(v),
            Err(_) => {
                self.sink
                    .issue(pos, check::negative_timeout(&s.get_ref().to_string(), what));
                None
            }
        }
    }

    fn cache_key(&mut self, key: Spanned<CacheKeyT>) -> CacheKey {
        let pos = self.at(&key);
        let key = key.into_inner();
        let prefix = self.located(key.prefix);
        let mut fragments = Vec::new();
        for f in key.fragments {
            let fpos = self.at(&f);
            let f = f.into_inner();
            let nonempty = |s: Option<String>| s.filter(|v| !v.trim().is_empty());
            let reference = nonempty(f.reference).map(|r| r.trim().to_string());
            let literal = nonempty(f.literal).map(|l| l.trim().to_string());
            if reference.is_none() && literal.is_none() {
                self.sink.error(
                    fpos,
                    "empty cache key fragment",
                    Some(
                        "write { ref = \"request.uri\" } for a variable or { literal = \"text\" }"
                            .into(),
                    ),
                );
                continue;
            }
            fragments.push(KeyFragment {
                pos: fpos,
                reference,
                literal,
                type_: nonempty(f.type_),
            });
        }
        CacheKey {
            pos,
            prefix,
            fragments,
        }
    }

    fn lookup_timeout(&mut self, s: Option<Spanned<i64>>) -> Option<Located<u64>> {
        self.seconds_key(s, "lookup_timeout_secs")
    }

    /// A non-negative number of seconds under `key`.
    fn seconds_key(&mut self, s: Option<Spanned<i64>>, key: &str) -> Option<Located<u64>> {
        let s = s?;
        let pos = self.at(&s);
        self.seconds(&s, key).map(|v| Located::new(v, pos))
    }

    fn expiry(&mut self, e: Option<Spanned<ExpiryT>>) -> Option<ExpirySettings> {
        let e = e?;
        let pos = self.at(&e);
        let e = e.into_inner();
        let reference = e
            .reference
            .map(Spanned::into_inner)
            .filter(|r| !r.trim().is_empty());
        let mut kinds: Vec<(&str, Pos)> = Vec::new();
        if let Some(t) = &e.timeout_secs {
            kinds.push(("timeout_secs", self.at(t)));
        }
        if let Some(d) = &e.date {
            kinds.push(("date", self.at(d)));
        }
        if let Some(t) = &e.time_of_day {
            kinds.push(("time_of_day", self.at(t)));
        }
        if let [(first, _), (second, second_pos), ..] = kinds.as_slice() {
            self.sink.error(
                *second_pos,
                format!("expiry has more than one kind of expiry: `{first}` and `{second}`"),
                Some("keep exactly one of timeout_secs, date or time_of_day".into()),
            );
            return None;
        }
        let expiry = if let Some(t) = e.timeout_secs {
            let tpos = self.at(&t);
            let secs = self.seconds(&t, "timeout_secs")?;
            if let Some(issue) = check::long_timeout(secs, "timeout_secs") {
                self.sink.warning(tpos, issue.message, issue.hint);
            }
            Expiry::Timeout(ValueOrRef {
                pos: tpos,
                reference,
                literal: Some(secs),
            })
        } else if let Some(d) = e.date {
            let dpos = self.at(&d);
            let date = self.checked(dpos, check::parse_date(d.get_ref().trim(), "date"))?;
            Expiry::Date(ValueOrRef {
                pos: dpos,
                reference,
                literal: Some(date),
            })
        } else if let Some(t) = e.time_of_day {
            let tpos = self.at(&t);
            let time = self.checked(
                tpos,
                check::parse_time_of_day(t.get_ref().trim(), "time_of_day"),
            )?;
            Expiry::TimeOfDay(ValueOrRef {
                pos: tpos,
                reference,
                literal: Some(time),
            })
        } else if reference.is_some() {
            Expiry::Timeout(ValueOrRef {
                pos,
                reference,
                literal: None,
            })
        } else {
            self.sink.error(
                pos,
                "expiry sets no expiry",
                Some("write expiry = { timeout_secs = 300 }".into()),
            );
            return None;
        };
        Some(ExpirySettings { pos, expiry })
    }

    fn checked<T>(&mut self, pos: Pos, r: Result<T, Issue>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(issue) => {
                self.sink.issue(pos, issue);
                None
            }
        }
    }

    fn response_cache(&mut self, t: ResponseCacheT) -> Option<ResponseCache> {
        Some(ResponseCache {
            cache_key: self.cache_key(t.cache_key),
            scope: self.scope(t.scope),
            cache_resource: self.located(t.cache_resource),
            expiry: self.expiry(t.expiry),
            lookup_timeout_secs: self.lookup_timeout(t.lookup_timeout_secs),
            exclude_error_response: t.exclude_error_response.unwrap_or(false),
            skip_cache_lookup: self.located(t.skip_cache_lookup),
            skip_cache_population: self.located(t.skip_cache_population),
            use_accept_header: t.use_accept_header.unwrap_or(false),
            use_response_cache_headers: t.use_response_cache_headers.unwrap_or(false),
            stale_while_revalidate_secs: self
                .seconds_key(t.stale_while_revalidate_secs, "stale_while_revalidate_secs"),
            stale_if_error_secs: self.seconds_key(t.stale_if_error_secs, "stale_if_error_secs"),
        })
    }

    fn lookup_cache(&mut self, t: LookupCacheT) -> Option<LookupCache> {
        let cache_key = self.cache_key(t.cache_key);
        let scope = self.scope(t.scope);
        let cache_resource = self.located(t.cache_resource);
        let lookup_timeout_secs = self.lookup_timeout(t.lookup_timeout_secs);
        let assign_to = self.required(t.assign_to, "assign_to", "cached.value");
        Some(LookupCache {
            cache_key,
            scope,
            cache_resource,
            lookup_timeout_secs,
            assign_to: assign_to?,
        })
    }

    fn populate_cache(&mut self, t: PopulateCacheT, root: Pos) -> Option<PopulateCache> {
        let cache_key = self.cache_key(t.cache_key);
        let scope = self.scope(t.scope);
        let cache_resource = self.located(t.cache_resource);
        if t.expiry.is_none() {
            self.sink.warning(
                root,
                "no expiry: entries use the stage TTL",
                Some("add expiry = { timeout_secs = 300 }".into()),
            );
        }
        let expiry = self.expiry(t.expiry);
        let source = self.required(t.source, "source", "response.content");
        Some(PopulateCache {
            cache_key,
            scope,
            cache_resource,
            expiry,
            source: source?,
        })
    }

    fn invalidate_cache(&mut self, t: InvalidateCacheT) -> Option<InvalidateCache> {
        let cache_context = t.cache_context.map(|c| {
            let pos = self.at(&c);
            let c = c.into_inner();
            let mut value = |v: Option<Spanned<StrOrRef>>| {
                let v = v?;
                let vpos = self.at(&v);
                let v = v.into_inner();
                let nonempty =
                    |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
                let (reference, literal) = (nonempty(v.reference), nonempty(v.value));
                (reference.is_some() || literal.is_some()).then_some(ValueOrRef {
                    pos: vpos,
                    reference,
                    literal,
                })
            };
            CacheContext {
                pos,
                api_proxy_name: value(c.api_proxy_name),
                proxy_name: value(c.proxy_name),
                target_name: value(c.target_name),
            }
        });
        Some(InvalidateCache {
            cache_key: self.cache_key(t.cache_key),
            scope: self.scope(t.scope),
            cache_resource: self.located(t.cache_resource),
            cache_context,
            purge_child_entries: t.purge_child_entries.unwrap_or(false),
            ignore_unresolved_variables: t.ignore_unresolved_variables.unwrap_or(false),
        })
    }

    fn assign_message(&mut self, t: AssignMessageT) -> Option<AssignMessage> {
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

/// A hint for a serde/toml error message: did-you-mean for unknown keys, an example for missing
/// ones.
fn error_hint(message: &str) -> Option<String> {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (word, expected) = rest.split_once('`')?;
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return check::did_you_mean(word, &candidates).map(|s| format!("did you mean `{s}`?"));
    }
    if message.starts_with("invalid type:") {
        let hint = if message.ends_with("expected a boolean") {
            "write true or false, without quotes"
        } else if message.ends_with("expected an integer") {
            "write a whole number, without quotes"
        } else if message.ends_with("expected a string") {
            "write the value in quotes"
        } else {
            return None;
        };
        return Some(hint.to_string());
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let (field, _) = rest.split_once('`')?;
        let example = match field {
            "name" => "name = \"LookupCache-1\"",
            "cache_key" => "cache_key = { fragments = [{ ref = \"request.uri\" }] }",
            "assign_to" => "assign_to = \"cached.value\"",
            "source" => "source = \"response.content\"",
            "template" => "template = \"{variable}\"",
            _ => return Some(format!("add {field} = …")),
        };
        return Some(format!("add {example}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(text: &str) -> ParseOutcome {
        parse(Path::new("t.toml"), text)
    }

    fn messages(text: &str) -> Vec<String> {
        outcome(text)
            .diagnostics
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn lookup_cache_example() {
        let out = outcome(
            r#"[LookupCache]
name = "LookupCache-tier"
display_name = "Lookup tier"
scope = "Exclusive"
cache_resource = "tiers"
lookup_timeout_secs = 1
assign_to = "client.tier"
[LookupCache.cache_key]
prefix = "tier"
fragments = [ { ref = "request.header.x-client-id" }, { literal = "v1" } ]
"#,
        );
        assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
        let Some(p) = out.policy else {
            panic!("no policy")
        };
        assert_eq!(p.name(), "LookupCache-tier");
        assert_eq!(p.pos, Pos::new(1, 2));
        assert_eq!(p.common.name.pos, Pos::new(2, 8));
        let Policy::LookupCache(lc) = p.policy else {
            panic!("kind")
        };
        assert_eq!(lc.assign_to.value, "client.tier");
        assert_eq!(lc.assign_to.pos, Pos::new(7, 13));
        assert_eq!(lc.lookup_timeout_secs.map(|l| l.value), Some(1));
        assert_eq!(
            lc.cache_key.prefix.map(|p| p.value).as_deref(),
            Some("tier")
        );
        assert_eq!(lc.cache_key.fragments.len(), 2);
        assert_eq!(lc.cache_key.fragments[1].literal.as_deref(), Some("v1"));
    }

    #[test]
    fn unknown_key_has_suggestion() {
        let m = messages(
            "[ResponseCache]\nname = \"r\"\nexclude_error_respons = true\ncache_key = { fragments = [{ ref = \"request.uri\" }] }\n",
        );
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].starts_with("t.toml:3:1: error: unknown field `exclude_error_respons`"),
            "{m:?}"
        );
        assert!(
            m[0].contains("hint: did you mean `exclude_error_response`?"),
            "{m:?}"
        );
    }

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
    fn expiry_forms() {
        let base = "[PopulateCache]\nname='p'\nsource='v'\ncache_key={fragments=[{literal='a'}]}\n";
        let ok = |e: &str| {
            let out = outcome(&format!("{base}expiry = {e}\n"));
            assert!(!out.has_errors(), "{e}: {:?}", out.diagnostics);
            out.policy.and_then(|p| match p.policy {
                Policy::PopulateCache(pc) => pc.expiry.map(|e| e.expiry),
                _ => None,
            })
        };
        assert!(
            matches!(ok("{ timeout_secs = 300 }"), Some(Expiry::Timeout(v)) if v.literal == Some(300))
        );
        assert!(
            matches!(ok("{ ref = 'flow.ttl' }"), Some(Expiry::Timeout(v)) if v.literal.is_none() && v.reference.is_some())
        );
        assert!(matches!(
            ok("{ date = '12-31-2026', ref = 'd' }"),
            Some(Expiry::Date(_))
        ));
        assert!(matches!(
            ok("{ time_of_day = '03:00:00' }"),
            Some(Expiry::TimeOfDay(_))
        ));
        for (e, want) in [
            ("{}", "sets no expiry"),
            (
                "{ timeout_secs = 1, date = '12-31-2026' }",
                "more than one kind",
            ),
            ("{ timeout_secs = -1 }", "InvalidTimeout"),
            ("{ date = '2026-12-31' }", "mm-dd-yyyy"),
            ("{ time_of_day = '3:00' }", "hh:mm:ss"),
            ("{ timeout = 3 }", "unknown field `timeout`"),
        ] {
            let m = messages(&format!("{base}expiry = {e}\n"));
            assert!(m.iter().any(|m| m.contains(want)), "{e}: {m:?}");
        }
        let m = messages(base);
        assert!(m.iter().any(|m| m.contains("warning: no expiry")), "{m:?}");
    }

    #[test]
    fn cache_context_and_assign_message() {
        let out = outcome(
            "[InvalidateCache]\nname='i'\ncache_key={fragments=[{literal='a'}]}\n\
             cache_context = { api_proxy_name = 'items', proxy_name = { ref = 'p', value = 'default' } }\n",
        );
        assert!(!out.has_errors(), "{:?}", out.diagnostics);
        let Some(Policy::InvalidateCache(ic)) = out.policy.map(|p| p.policy) else {
            panic!("kind")
        };
        let ctx = ic.cache_context.unwrap_or_default();
        assert_eq!(
            ctx.api_proxy_name.and_then(|v| v.literal).as_deref(),
            Some("items")
        );
        assert_eq!(
            ctx.proxy_name.and_then(|v| v.reference).as_deref(),
            Some("p")
        );
        let m = messages(
            "[InvalidateCache]\nname='i'\ncache_key={fragments=[{literal='a'}]}\ncache_context = { proxy_name = { reff = 'p' } }\n",
        );
        assert!(
            m.iter()
                .any(|m| m.contains("unknown field `reff`") && m.contains("did you mean `ref`")),
            "{m:?}"
        );

        let out = outcome(
            "[AssignMessage]\nname='am'\nassign_to='response'\n[AssignMessage.remove]\nall_headers=true\n\
             [AssignMessage.set]\nstatus_code=203\n[[AssignMessage.assign_variable]]\nname='x'\nvalue=''\n",
        );
        assert!(!out.has_errors(), "{:?}", out.diagnostics);
        let Some(Policy::AssignMessage(am)) = out.policy.map(|p| p.policy) else {
            panic!("kind")
        };
        assert_eq!(am.remove.and_then(|r| r.headers), Some(vec![]));
        assert_eq!(
            am.set
                .and_then(|s| s.status_code)
                .map(|s| s.value)
                .as_deref(),
            Some("203")
        );
        assert_eq!(am.assign_variables.len(), 1);
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
