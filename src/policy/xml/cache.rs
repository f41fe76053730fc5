//! Mapping of the four cache policies (ResponseCache, LookupCache, PopulateCache, InvalidateCache)
//! from the element tree to the model, with what only they use: `<CacheKey>`, `<Scope>`,
//! `<ExpirySettings>`, seconds and `<CacheContext>`.
//!
//! An `impl` block of the [`Mapper`] in `mapper.rs`; `mod.rs` calls the four `*_cache` methods.
//! Kept apart from AssignMessage (`assign.rs`), which shares none of these elements.

use super::mapper::Mapper;
use super::spec::{EXPIRY_SETTINGS, REF_TYPE_TEXT};
use super::tree::Node;
use crate::diag::{Located, Pos};
use crate::policy::check::{self, quoted, Issue, ScopeMatch};
use crate::policy::model::{
    CacheContext, CacheKey, Expiry, ExpirySettings, InvalidateCache, KeyFragment, LookupCache,
    PopulateCache, ResponseCache, Scope, ValueOrRef,
};

impl Mapper<'_, '_> {
    fn lookup_timeout(&mut self, parent: &Node) -> Option<Located<u64>> {
        self.seconds_elem(parent, "CacheLookupTimeoutInSeconds")
    }

    /// A non-negative number of seconds in element `name` (empty = absent).
    fn seconds_elem(&mut self, parent: &Node, name: &str) -> Option<Located<u64>> {
        let node = parent.child(name)?;
        let t = node.trimmed();
        if t.is_empty() {
            return None;
        }
        match check::parse_seconds(t, &format!("<{name}>")) {
            Ok(s) => Some(Located::new(s, node.pos)),
            Err(issue) => {
                self.sink.issue(node.pos, issue);
                None
            }
        }
    }

    fn scope(&mut self, parent: &Node) -> Scope {
        let Some(node) = parent.child("Scope") else {
            return Scope::default();
        };
        let t = node.trimmed();
        if t.is_empty() {
            return Scope::default();
        }
        match check::parse_scope(t) {
            Ok(ScopeMatch::Exact(s)) => s,
            Ok(ScopeMatch::WrongCase(s)) => {
                self.sink.warning(
                    node.pos,
                    format!("scope {} is not spelt as Apigee spells it", quoted(t)),
                    Some(format!("write {}", s.as_str())),
                );
                s
            }
            Err(issue) => {
                let hint = match check::did_you_mean(t, &Scope::ALL.map(Scope::as_str)) {
                    Some(s) => Some(format!(
                        "did you mean {s}? {}",
                        issue.hint.unwrap_or_default()
                    )),
                    None => issue.hint,
                };
                self.sink.error(node.pos, issue.message, hint);
                Scope::default()
            }
        }
    }

    fn cache_key(&mut self, parent: &Node) -> Option<CacheKey> {
        let node = parent.child("CacheKey")?;
        let prefix = node.child("Prefix").and_then(Node::located_text);
        let mut fragments = Vec::new();
        for f in node.children_named("KeyFragment") {
            // Kept as written: validation warns about spaces around the name, and compilation
            // trims them (Apigee resolves the trimmed name).
            let reference = f
                .attr("ref")
                .map(|a| a.value.clone())
                .filter(|v| !v.trim().is_empty());
            let literal = Some(f.trimmed().to_string()).filter(|t| !t.is_empty());
            // A fragment with a misspelt attribute was already reported; "empty" would be noise.
            let misspelt = f
                .attrs
                .iter()
                .any(|a| !REF_TYPE_TEXT.attrs.contains(&a.name.as_str()));
            if reference.is_none() && literal.is_none() && !misspelt {
                self.sink.error(
                    f.pos,
                    "empty <KeyFragment>",
                    Some(
                        "write <KeyFragment ref=\"request.uri\"/> for a variable or \
                         <KeyFragment>text</KeyFragment> for a literal"
                            .into(),
                    ),
                );
                continue;
            }
            if reference.is_none() && literal.is_none() {
                continue;
            }
            let type_ = f.attr_value("type").map(str::to_string);
            fragments.push(KeyFragment {
                pos: f.pos,
                reference,
                literal,
                type_,
            });
        }
        Some(CacheKey {
            pos: node.pos,
            prefix,
            fragments,
        })
    }

    fn expiry(&mut self, parent: &Node) -> Option<ExpirySettings> {
        let node = parent.child("ExpirySettings")?;
        // The first of each child that says something; empty ones are absent.
        let mut parts: Vec<&Node> = Vec::new();
        for c in &node.children {
            let known = EXPIRY_SETTINGS.children.iter().any(|s| s.name == c.name);
            let empty = c.trimmed().is_empty() && c.attr_value("ref").is_none();
            if !known || empty || parts.iter().any(|p| p.name == c.name) {
                continue;
            }
            if c.name == "TimeoutInSec" {
                self.sink.warning(
                    c.pos,
                    "<TimeoutInSec> is deprecated",
                    Some("write <TimeoutInSeconds>".into()),
                );
            }
            parts.push(c);
        }
        let [part] = parts.as_slice() else {
            match parts.as_slice() {
                [] => self.sink.error(
                    node.pos,
                    "<ExpirySettings> has no expiry",
                    Some("write <TimeoutInSeconds>300</TimeoutInSeconds> inside it".into()),
                ),
                [first, second, ..] => {
                    let timeouts = ["TimeoutInSeconds", "TimeoutInSec"];
                    let message = if timeouts.contains(&first.name.as_str())
                        && timeouts.contains(&second.name.as_str())
                    {
                        "<ExpirySettings> has both <TimeoutInSeconds> and <TimeoutInSec>"
                            .to_string()
                    } else {
                        format!(
                            "<ExpirySettings> has more than one kind of expiry: <{}> and <{}>",
                            first.name, second.name
                        )
                    };
                    self.sink.error(
                        second.pos,
                        message,
                        Some(
                            "keep exactly one of <TimeoutInSeconds>, <ExpiryDate> or <TimeOfDay>"
                                .into(),
                        ),
                    );
                }
                [_] => {}
            }
            return None;
        };
        let reference = part.attr_value("ref").map(str::to_string);
        let raw = part.trimmed();
        let what = format!("<{}>", part.name);
        let expiry = match part.name.as_str() {
            "ExpiryDate" => {
                let literal = self.literal(raw, part.pos, |r| check::parse_date(r, &what))?;
                Expiry::Date(ValueOrRef {
                    pos: part.pos,
                    reference,
                    literal,
                })
            }
            "TimeOfDay" => {
                let literal =
                    self.literal(raw, part.pos, |r| check::parse_time_of_day(r, &what))?;
                Expiry::TimeOfDay(ValueOrRef {
                    pos: part.pos,
                    reference,
                    literal,
                })
            }
            _ => {
                let literal = self.literal(raw, part.pos, |r| check::parse_seconds(r, &what))?;
                if let Some(issue) = literal.and_then(|s| check::long_timeout(s, &what)) {
                    self.sink.warning(part.pos, issue.message, issue.hint);
                }
                Expiry::Timeout(ValueOrRef {
                    pos: part.pos,
                    reference,
                    literal,
                })
            }
        };
        Some(ExpirySettings {
            pos: node.pos,
            expiry,
        })
    }

    /// Parses an optional literal: `Some(None)` when empty, `None` (error recorded) when invalid.
    fn literal<T>(
        &mut self,
        raw: &str,
        pos: Pos,
        parse: impl FnOnce(&str) -> Result<T, Issue>,
    ) -> Option<Option<T>> {
        if raw.is_empty() {
            return Some(None);
        }
        match parse(raw) {
            Ok(v) => Some(Some(v)),
            Err(issue) => {
                self.sink.issue(pos, issue);
                None
            }
        }
    }

    pub(super) fn response_cache(&mut self, root: &Node) -> Option<ResponseCache> {
        let cache_key = self.cache_key(root);
        let scope = self.scope(root);
        let cache_resource = root.child("CacheResource").and_then(Node::located_text);
        let expiry = self.expiry(root);
        let lookup_timeout_secs = self.lookup_timeout(root);
        let exclude_error_response = self.bool_elem(root, "ExcludeErrorResponse");
        let skip_cache_lookup = root.child("SkipCacheLookup").and_then(Node::located_text);
        let skip_cache_population = root
            .child("SkipCachePopulation")
            .and_then(Node::located_text);
        let use_accept_header = self.bool_elem(root, "UseAcceptHeader");
        let use_response_cache_headers = self.bool_elem(root, "UseResponseCacheHeaders");
        let stale_while_revalidate_secs = self.seconds_elem(root, "StaleWhileRevalidateInSeconds");
        let stale_if_error_secs = self.seconds_elem(root, "StaleIfErrorInSeconds");
        Some(ResponseCache {
            cache_key: cache_key?,
            scope,
            cache_resource,
            expiry,
            lookup_timeout_secs,
            exclude_error_response,
            skip_cache_lookup,
            skip_cache_population,
            use_accept_header,
            use_response_cache_headers,
            stale_while_revalidate_secs,
            stale_if_error_secs,
        })
    }

    pub(super) fn lookup_cache(&mut self, root: &Node) -> Option<LookupCache> {
        let cache_key = self.cache_key(root);
        let scope = self.scope(root);
        let cache_resource = root.child("CacheResource").and_then(Node::located_text);
        let lookup_timeout_secs = self.lookup_timeout(root);
        let assign_to = self.required_text(root, "AssignTo", "<AssignTo>cached.value</AssignTo>");
        Some(LookupCache {
            cache_key: cache_key?,
            scope,
            cache_resource,
            lookup_timeout_secs,
            assign_to: assign_to?,
        })
    }

    pub(super) fn populate_cache(&mut self, root: &Node) -> Option<PopulateCache> {
        let cache_key = self.cache_key(root);
        let scope = self.scope(root);
        let cache_resource = root.child("CacheResource").and_then(Node::located_text);
        let expiry = self.expiry(root);
        if root.child("ExpirySettings").is_none() {
            self.sink.warning(
                root.pos,
                "no <ExpirySettings>: entries use the stage TTL",
                Some(
                    "add <ExpirySettings><TimeoutInSeconds>300</TimeoutInSeconds></ExpirySettings>"
                        .into(),
                ),
            );
        }
        let source = self.required_text(root, "Source", "<Source>response.content</Source>");
        Some(PopulateCache {
            cache_key: cache_key?,
            scope,
            cache_resource,
            expiry,
            source: source?,
        })
    }

    pub(super) fn invalidate_cache(&mut self, root: &Node) -> Option<InvalidateCache> {
        let cache_key = self.cache_key(root);
        let scope = self.scope(root);
        let cache_resource = root.child("CacheResource").and_then(Node::located_text);
        let cache_context = root.child("CacheContext").map(|c| {
            let value = |name: &str| {
                let n = c.child(name)?;
                let reference = n.attr_value("ref").map(str::to_string);
                let literal = Some(n.trimmed().to_string()).filter(|t| !t.is_empty());
                (reference.is_some() || literal.is_some()).then_some(ValueOrRef {
                    pos: n.pos,
                    reference,
                    literal,
                })
            };
            CacheContext {
                pos: c.pos,
                api_proxy_name: value("APIProxyName"),
                proxy_name: value("ProxyName"),
                target_name: value("TargetName"),
            }
        });
        let purge_child_entries = self.bool_elem(root, "PurgeChildEntries");
        let ignore_unresolved_variables = self.bool_elem(root, "IgnoreUnresolvedVariables");
        Some(InvalidateCache {
            cache_key: cache_key?,
            scope,
            cache_resource,
            cache_context,
            purge_child_entries,
            ignore_unresolved_variables,
        })
    }
}
